"""The stub's settings, read from the environment so `python -m` and the granian worker agree."""

from __future__ import annotations

import os
from dataclasses import dataclass

NATIONAL_EI_HSA_ID = "5565594230"  # the national EI's id (skltp/ei helm config, EI_HSA_ID)


class StubConfigError(ValueError):
    """A setting has a value the stub cannot use; the message names the variable."""


@dataclass(frozen=True)
class StubSettings:
    host: str = "127.0.0.1"
    port: int = 8081
    hsa_id: str = NATIONAL_EI_HSA_ID
    alternative_hsa_id: str | None = None
    reserved_hsa_ids: frozenset[str] = frozenset({NATIONAL_EI_HSA_ID})

    @property
    def accepted_logical_addresses(self) -> frozenset[str]:
        return frozenset(a for a in (self.hsa_id, self.alternative_hsa_id) if a)

    @classmethod
    def from_env(cls) -> StubSettings:
        env = os.environ
        raw_port = env.get("TIDBOK_EI_STUB_PORT", "").strip() or "8081"
        try:
            port = int(raw_port)
        except ValueError:
            raise StubConfigError(f"TIDBOK_EI_STUB_PORT must be a port number, got {raw_port!r}") from None
        if not 0 < port < 65536:
            raise StubConfigError(f"TIDBOK_EI_STUB_PORT must be between 1 and 65535, got {port}")
        hsa_id = env.get("TIDBOK_EI_HSA_ID", "").strip() or NATIONAL_EI_HSA_ID
        reserved_raw = env.get("TIDBOK_EI_RESERVED_HSA_IDS")
        # Like the real default (update-notification.not.allowed.hsaid.list): the index's own id.
        reserved = {hsa_id} if reserved_raw is None else {r.strip() for r in reserved_raw.split(",") if r.strip()}
        return cls(
            host=env.get("TIDBOK_EI_STUB_HOST", "").strip() or "127.0.0.1",
            port=port,
            hsa_id=hsa_id,
            alternative_hsa_id=env.get("TIDBOK_EI_ALTERNATIVE_HSA_ID", "").strip() or None,
            reserved_hsa_ids=frozenset(reserved),
        )
