"""The EP stub's start settings: the environment (TIDBOK_EP_STUB_*), overridden by the command line,
so `python -m egen_provhantering.stub` and the granian worker it starts agree."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from egen_provhantering.contract import DEFAULT_NAMESPACE, namespace_problem

ANY = "*"  # residents / unit offers: every valid one is known
DEFAULT_LIMIT_SECONDS = 3600.0  # EP's real limit is its own configuration; the seed gives no figure


class StubConfigError(ValueError):
    """A setting has a value the stub cannot use; the message names the variable or option."""


@dataclass(frozen=True)
class StubSettings:
    host: str = "127.0.0.1"
    port: int = 8082
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None  # given: mutual TLS, a client certificate from this CA required
    namespace: str = DEFAULT_NAMESPACE
    residents: tuple[str, ...] | None = None  # None: every valid personnummer is folkbokförd
    unit_offer_ids: tuple[str, ...] | None = None  # None: every whole number names an offer
    limit_seconds: float = DEFAULT_LIMIT_SECONDS

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def as_env(self) -> dict[str, str]:
        """The same settings as variables, for the granian worker (a new interpreter)."""
        env = {
            "TIDBOK_EP_STUB_HOST": self.host,
            "TIDBOK_EP_STUB_PORT": str(self.port),
            "TIDBOK_EP_STUB_NAMESPACE": self.namespace,
            "TIDBOK_EP_STUB_RESIDENTS": ANY if self.residents is None else ",".join(self.residents),
            "TIDBOK_EP_STUB_UNIT_OFFERS": ANY if self.unit_offer_ids is None else ",".join(self.unit_offer_ids),
            "TIDBOK_EP_STUB_LIMIT_SECONDS": repr(self.limit_seconds),
        }
        for name, path in (("CERT", self.tls_cert), ("KEY", self.tls_key), ("CLIENT_CA", self.client_ca)):
            if path is not None:
                env[f"TIDBOK_EP_STUB_TLS_{name}"] = str(path)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, argv: Sequence[str] | None = None) -> StubSettings:
        env = os.environ if env is None else env
        args = _parser().parse_args(list(argv or []))

        def pick(option: str | None, variable: str) -> tuple[str, str]:
            """The value and how to name it in an error: the option when given, else the variable."""
            if option is not None:
                return option, f"--{variable.removeprefix('TIDBOK_EP_STUB_').lower().replace('_', '-')}"
            return env.get(variable, "").strip(), variable

        raw_port, port_name = pick(None if args.port is None else str(args.port), "TIDBOK_EP_STUB_PORT")
        try:
            port = int(raw_port or "8082")
        except ValueError:
            raise StubConfigError(f"{port_name} must be a port number, got {raw_port!r}") from None
        if not 0 < port < 65536:
            raise StubConfigError(f"{port_name} must be between 1 and 65535, got {port}")
        cert = _file(*pick(args.tls_cert, "TIDBOK_EP_STUB_TLS_CERT"))
        key = _file(*pick(args.tls_key, "TIDBOK_EP_STUB_TLS_KEY"))
        client_ca = _file(*pick(args.client_ca, "TIDBOK_EP_STUB_TLS_CLIENT_CA"))
        if (cert is None) != (key is None):
            raise StubConfigError("--tls-cert and --tls-key (TIDBOK_EP_STUB_TLS_CERT/_KEY) go together")
        if client_ca is not None and cert is None:
            raise StubConfigError("--client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first")
        namespace, namespace_name = pick(args.namespace, "TIDBOK_EP_STUB_NAMESPACE")
        namespace = namespace or DEFAULT_NAMESPACE
        if (problem := namespace_problem(namespace)) is not None:
            raise StubConfigError(f"{namespace_name} {problem}")
        raw_limit, limit_name = pick(
            None if args.limit_seconds is None else str(args.limit_seconds), "TIDBOK_EP_STUB_LIMIT_SECONDS"
        )
        try:
            limit = float(raw_limit) if raw_limit else DEFAULT_LIMIT_SECONDS
        except ValueError:
            raise StubConfigError(f"{limit_name} must be a number of seconds, got {raw_limit!r}") from None
        if not 0 <= limit <= 10**8:
            raise StubConfigError(f"{limit_name} must be from 0 to 100000000 seconds, got {limit}")
        return cls(
            host=pick(args.host, "TIDBOK_EP_STUB_HOST")[0] or "127.0.0.1",
            port=port,
            tls_cert=cert,
            tls_key=key,
            client_ca=client_ca,
            namespace=namespace,
            residents=_listed(*pick(args.residents, "TIDBOK_EP_STUB_RESIDENTS")),
            unit_offer_ids=_listed(*pick(args.unit_offers, "TIDBOK_EP_STUB_UNIT_OFFERS")),
            limit_seconds=limit,
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m egen_provhantering.stub", description="A local Egen provhantering OfferInteraction service"
    )
    parser.add_argument("--host", help="listen address (TIDBOK_EP_STUB_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (TIDBOK_EP_STUB_PORT, default 8082)")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM) (TIDBOK_EP_STUB_TLS_CERT)")
    parser.add_argument("--tls-key", help="...and its key (PEM) (TIDBOK_EP_STUB_TLS_KEY)")
    parser.add_argument(
        "--client-ca", help="require a client certificate issued by these CAs (PEM) (TIDBOK_EP_STUB_TLS_CLIENT_CA)"
    )
    parser.add_argument("--namespace", help="the contract's namespace (TIDBOK_EP_STUB_NAMESPACE, default ours)")
    parser.add_argument("--residents", help="comma list of known personnummer, or * (TIDBOK_EP_STUB_RESIDENTS)")
    parser.add_argument("--unit-offers", help="comma list of known UnitOfferIDs, or * (TIDBOK_EP_STUB_UNIT_OFFERS)")
    parser.add_argument("--limit-seconds", type=float, help="identical offers refused within (default 3600)")
    return parser


def _file(raw: str, name: str) -> Path | None:
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise StubConfigError(f"{name} names {raw!r}, which is not a readable file")
    return path


def _listed(raw: str, _name: str) -> tuple[str, ...] | None:
    if not raw or raw == ANY:
        return None
    return tuple(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
