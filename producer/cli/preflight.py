"""Every setting a command will use, checked before it starts anything.

A start that fails half-way (the embedded database, the EI stub and the publisher up, then the
server refusing its port) leaves an operator with processes to clean up and a message about the
wrong thing. So each command's settings are all read here first, the server's port is tried, and a
problem is a ConfigError naming the setting where it was written (file and key, or variable).
"""

from __future__ import annotations

from dataclasses import dataclass

from egen_provhantering.publisher_config import PublishingSettings
from engagement_index.config import EiSettings
from engagement_index.stub.config import StubConfigError, StubSettings
from producer.admin_api.auth import Tokens
from producer.http.serving import port_problem
from producer.platform import settings_source
from producer.platform.settings import ConfigError, Settings
from producer.platform.settings_source import Source
from producer.staff.accounts import Accounts

SERVING = ("run", "serve")
PUBLISHING = ("run", "publish", "sweep")


@dataclass(frozen=True)
class Checked:
    """The settings of a command that passed every check."""

    settings: Settings
    source: Source
    ei: EiSettings | None = None
    stub: StubSettings | None = None  # `run` with no EI configured starts the stub with these


def check(command: str) -> Checked:
    """Read and check everything `command` needs; raises ConfigError naming the first problem."""
    source = settings_source.load()
    settings = Settings.from_env(source)
    ei = stub = None
    if command in SERVING:
        accounts = Accounts.parse(settings.staff_accounts, source.label("TIDBOK_STAFF_ACCOUNTS"))
        Tokens.parse(settings.admin_tokens, accounts, label=source.label("TIDBOK_ADMIN_TOKENS"))
    if command in PUBLISHING:
        ei = EiSettings.from_env(source)
    if command in ("run", "ep"):
        PublishingSettings.from_env(source)  # the EP publisher's (run starts one when TIDBOK_EP_URL is set)
    if command == "publish" and ei is not None and not ei.update_url:
        raise ConfigError(f"{source.label('TIDBOK_EI_UPDATE_URL')} is not set: where is EI's Update endpoint?")
    if command == "run" and ei is not None and not ei.update_url:
        try:
            stub = StubSettings.from_env()
        except StubConfigError as exc:
            raise ConfigError(str(exc)) from None
        if (stub.host, stub.port) == (settings.host, settings.port):
            raise ConfigError(
                f"TIDBOK_EI_STUB_PORT and {source.label('TIDBOK_PORT')} are both {stub.port}: the EI stub needs its own"
            )
    if command in SERVING:
        problem = port_problem(settings.host, settings.port)
        if problem is not None:
            setting = "TIDBOK_HOST" if problem.startswith("host") else "TIDBOK_PORT"
            raise ConfigError(f"{problem} ({source.label(setting)})")
    if stub is not None:
        problem = port_problem(stub.host, stub.port)
        if problem is not None:
            raise ConfigError(f"{problem} (TIDBOK_EI_STUB_PORT, the EI stub's)")
    return Checked(settings, source, ei, stub)
