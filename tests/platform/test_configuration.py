"""Settings from the configuration file (TIDBOK_CONFIG) and the environment.

Unit level: config_source.load(environ=...) with files written here, then Settings.from_env(source)
and EiSettings.from_env(source), as every process reads them. What matters to an operator: the
file's values are used, a variable overrides its key, and every refusal names the setting where
the operator wrote it ("[server] port in <file>", or the variable). The CLI tests run the real
`python -m producer` to show that a bad file stops it at once with exit status 2.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from support.pki import Authority
from support.server import PYTHON, REPO, ProducerServer, free_port, fresh_database, http_get, subprocess_env

from engagement_index.config import EiSettings
from producer.admin_api.auth import Tokens
from producer.platform import settings_source as config_source
from producer.platform.consumers import Consumer, Consumers
from producer.platform.settings import ConfigError, Settings
from producer.platform.settings_source import FILE_KEYS

EXAMPLE = REPO / "tidbok.example.toml"
PLATFORM = "SE2321000016-VP01"
READER = "SE2321000016-RO01"
A100, A200 = "SE2321000016-A100", "SE2321000016-A200"
PROXY = '[proxy]\nclient_cert_header = "X-Client-Cert"\ntrusted = ["127.0.0.1"]\n'


def write(tmp_path: Path, text: str, name: str = "tidbok.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def source(path: Path | None = None, **env: str) -> config_source.Source:
    """The merged settings of `path` (if any) and exactly the variables given (not os.environ)."""
    environ = dict(env)
    if path is not None:
        environ["TIDBOK_CONFIG"] = str(path)
    return config_source.load(environ=environ)


def settings(path: Path | None = None, **env: str) -> Settings:
    return Settings.from_env(source(path, **env))


def refusal(path: Path | None = None, **env: str) -> str:
    """The ConfigError message for these settings (load and Settings both count)."""
    with pytest.raises(ConfigError) as caught:
        settings(path, **env)
    return str(caught.value)


# -- the example file ----------------------------------------------------------------------------

_EXAMPLE_LINE = re.compile(r"^# ?([a-z_]+) = (.+)$")
_SECTION = re.compile(r"^#? ?\[(\[?[a-z_]+\]?)\]\s*$")


def example_keys() -> dict[str, set[str]]:
    """The settings the example shows, as (commented) `key = value` lines under their section."""
    found: dict[str, set[str]] = {}
    section = None
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if heading := _SECTION.match(line):
            section = heading.group(1).strip("[]")
        elif (setting := _EXAMPLE_LINE.match(line)) and section is not None:
            found.setdefault(section, set()).add(setting.group(1))
    return found


def test_the_example_documents_every_setting_with_its_variable() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    keys = example_keys()
    expected = {section: set(names) for section, names in FILE_KEYS.items()}
    expected["consumer"] = set(config_source.CONSUMER_KEYS)
    assert keys == expected, "the example's `# key = value` lines differ from config_source.FILE_KEYS"
    for names in FILE_KEYS.values():
        for variable in names.values():
            assert variable in text, f"the example does not name {variable}"
    assert "TIDBOK_CONSUMERS" in text
    assert "TIDBOK_CONFIG" in text


def test_the_example_as_shipped_changes_nothing() -> None:
    """Every setting is commented out: used as is, the defaults apply."""
    loaded = source(EXAMPLE)
    assert dict(loaded.values) == {}
    assert loaded.consumers is None
    assert Settings.from_env(loaded) == Settings()
    assert EiSettings.from_env(loaded) == EiSettings()


def uncommented_example(keep_commented: frozenset[tuple[str, str]] = frozenset()) -> str:
    """The example with its `# key = value` lines (and `# [[consumer]]`) uncommented."""
    lines, section = [], None
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if heading := _SECTION.match(line):
            section = heading.group(1).strip("[]")
        setting = _EXAMPLE_LINE.match(line)
        if (setting and (section, setting.group(1)) not in keep_commented) or line.strip() == "# [[consumer]]":
            line = line.removeprefix("#").lstrip()
        lines.append(line)
    return "\n".join(lines)


def test_the_examples_values_load_when_uncommented(tmp_path: Path) -> None:
    """The commented values are real examples: uncommented, each is a known key in its section."""
    loaded = source(write(tmp_path, uncommented_example()))
    assert set(loaded.values) == {v for names in FILE_KEYS.values() for v in names.values()}
    assert loaded.consumers is not None and len(loaded.consumers) == 2


def test_the_examples_values_are_valid(tmp_path: Path) -> None:
    """...and valid, all at once, except what needs files that exist ([tls], EI's certificates) or
    excludes something else ([tls] and [proxy] exclude each other)."""
    files = {("tls", "cert"), ("tls", "key"), ("tls", "ca"), ("ei", "client_cert"), ("ei", "client_key")}
    files |= {("ep", "cert"), ("ep", "key"), ("ep", "ca")}
    loaded = source(write(tmp_path, uncommented_example(frozenset(files | {("ei", "ca_bundle")}))))
    example = Settings.from_env(loaded)
    assert example.transport == "proxy" and len(example.consumers) == 2
    assert example.consumers.refusal("SE2321000016-ABCD", "GetAvailableDates", "SE2321000016-A100") is None
    assert example.consumers.refusal("SE2321000016-ABCD", "MakeBooking") is not None
    assert Tokens.parse(example.admin_tokens).grant("change-me-fedcba9876543210") is not None
    assert EiSettings.from_env(loaded).update_url
    assert example.ep_url and example.ep_namespace and example.ep_timeout_seconds == 10


# -- file and environment ------------------------------------------------------------------------


def test_file_values_are_used(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[database]
url = "postgresql://tidbok@db.example.se/tidbok"
pool_size = 6
timeout = 3

[server]
host = "0.0.0.0"
port = 9090
workers = 3
max_request_bytes = 4096
shutdown_timeout = 12

[bookings]
id_policy = "per-slot"
max_search_days = 120

[logging]
format = "json"
level = "DEBUG"
""",
    )
    loaded = settings(path)
    assert loaded.database_url == "postgresql://tidbok@db.example.se/tidbok"
    assert (loaded.db_pool_size, loaded.db_timeout_seconds) == (6, 3)
    assert (loaded.host, loaded.port, loaded.workers) == ("0.0.0.0", 9090, 3)
    assert (loaded.max_request_bytes, loaded.shutdown_timeout_seconds) == (4096, 12)
    assert (loaded.booking_id_policy, loaded.max_search_days) == ("per-slot", 120)
    assert (loaded.log_format, loaded.log_level) == ("json", "DEBUG")
    assert loaded.transport == "open"


def test_without_a_file_the_environment_alone_counts() -> None:
    loaded = settings(TIDBOK_PORT="9191", TIDBOK_LOG_FORMAT="json")
    assert (loaded.port, loaded.log_format) == (9191, "json")
    assert settings() == Settings()


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 9090\nworkers = 3\n[logging]\nformat = "json"\n')
    loaded = settings(path, TIDBOK_PORT="9191", TIDBOK_LOG_FORMAT="text")
    assert (loaded.port, loaded.workers, loaded.log_format) == (9191, 3, "text")


def test_lists_in_the_file(tmp_path: Path) -> None:
    """Lists become what the variables spell: comma-separated, admin tokens ";"-separated (a token's
    units are comma-separated themselves)."""
    token_a, token_b = "a" * 16, "b" * 16
    path = write(
        tmp_path,
        '[proxy]\nclient_cert_header = "X-Client-Cert"\ntrusted = ["10.0.0.5", "10.1.0.0/16"]\n'
        f'[server]\nadmin_tokens = ["{token_a}={A100},{A200}", "{token_b}=*"]\n'
        f'[[consumer]]\nhsa_id = "{PLATFORM}"\n',
    )
    loaded = settings(path)
    assert [str(n) for n in loaded.trusted_proxies] == ["10.0.0.5/32", "10.1.0.0/16"]
    tokens = Tokens.parse(loaded.admin_tokens)
    grant_a, grant_b = tokens.grant(token_a), tokens.grant(token_b)
    assert grant_a is not None and grant_a.covers(A200) and not grant_a.all_units
    assert grant_b is not None and grant_b.all_units


def test_ei_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[ei]
update_url = "https://vp.example.se/Update/1/rivtabp21"
categorization = "NA"
batch_size = 500
retry_initial_ms = 1000
retry_max_ms = 8000
poll_ms = 50
source_system = "se2321000016-tidb"
""",
    )
    ei = EiSettings.from_env(source(path, TIDBOK_EI_BATCH_SIZE="250"))
    assert ei.update_url == "https://vp.example.se/Update/1/rivtabp21"
    assert (ei.categorization, ei.batch_size) == ("NA", 250)
    assert (ei.retry_initial_ms, ei.retry_max_ms, ei.poll_seconds) == (1000, 8000, 0.05)
    assert ei.source_system == "SE2321000016-TIDB"


@pytest.mark.parametrize(
    ("text", "label", "problem"),
    [
        ('[ei]\nbatch_size = "many"\n', "[ei] batch_size", "whole number"),
        ("[ei]\nbatch_size = 2000\n", "[ei] batch_size", "at most 1000"),
        ('[ei]\ncategorization = "Booking"\n', "[ei] categorization", "split or NA"),
        ('[ei]\nca_bundle = "/nonexistent/ca.pem"\n', "[ei] ca_bundle", "not a readable file"),
    ],
)
def test_bad_ei_values_name_the_file_key(tmp_path: Path, text: str, label: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        EiSettings.from_env(source(path))
    assert f"{label} in {path}" in str(caught.value)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[ei]\nretry_initial_ms = 9000\nretry_max_ms = 8000\n", "[ei] retry_max_ms in {path}"),
        ('[ei]\nclient_cert = "{path}"\n', "[ei] client_cert in {path}"),
    ],
)
def test_ei_cross_checks_name_the_file_keys(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "tidbok.toml"
    write(tmp_path, text.format(path=path))  # the file itself stands in for a certificate: it exists
    with pytest.raises(ConfigError) as caught:
        EiSettings.from_env(source(path))
    assert named.format(path=path) in str(caught.value), str(caught.value)


# -- refusals name the setting -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[server]\nport = "eighty"\n', "must be a whole number, got 'eighty'"),
        ("[server]\nport = 0\n", "must be at least 1"),
        ("[server]\nport = 80.5\n", "must be a whole number"),
        ("[server]\nport = [8080]\n", "must be a string, a number or a list of strings"),
        ("[server]\nport = {number = 8080}\n", "must be a string, a number or a list of strings"),
    ],
)
def test_a_bad_value_from_the_file_names_the_file_key(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    message = refusal(path)
    assert message.startswith(f"[server] port in {path}"), message
    assert problem in message


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 8080\n")
    message = refusal(path, TIDBOK_PORT="eighty")
    assert message.startswith("TIDBOK_PORT must be a whole number"), message
    assert str(path) not in message


@pytest.mark.parametrize(
    ("key", "value", "label", "problem"),
    [
        ("bookings", "max_search_days = 30", "[bookings] max_search_days", "at least 62"),
        ("bookings", 'id_policy = "random"', "[bookings] id_policy", "one of stable, per-slot"),
        ("logging", 'format = "xml"', "[logging] format", "one of text, json"),
        ("logging", 'level = "info"', "[logging] level", "one of DEBUG, INFO, WARNING, ERROR"),
        ("server", "max_request_bytes = 100", "[server] max_request_bytes", "at least 1024"),
        ("proxy", 'trusted = ["10.0.0.300"]', "[proxy] trusted", "not an IP address or network"),
        ("tls", 'cert = "/nonexistent/server.pem"', "[tls] cert", "not a readable file"),
        ("database", 'replica_url = "mysql://db/tidbok"', "[database] replica_url", "must be a postgresql://"),
        ("database", 'replica_url = "postgresql://db/tidbok?sslmode"', "[database] replica_url", "not a usable"),
        ("database", "replica_max_lag = 0.1", "[database] replica_max_lag", "must be from 0.5 to 3600, got 0.1"),
        ("database", 'replica_max_lag = "soon"', "[database] replica_max_lag", "must be a number, got 'soon'"),
        ("database", 'replica_max_lag = "nan"', "[database] replica_max_lag", "must be from 0.5 to 3600"),
        ("database", "replica_max_lag_bytes = -1", "[database] replica_max_lag_bytes", "at least 0"),
    ],
)
def test_other_bad_file_values(tmp_path: Path, key: str, value: str, label: str, problem: str) -> None:
    path = write(tmp_path, f"[{key}]\n{value}\n")
    message = refusal(path)
    assert f"{label} in {path}" in message, message
    assert problem in message


def test_the_replica_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[database]\nreplica_url = "postgresql://reader@replica.example.se/tidbok"\n'
        "replica_max_lag = 1.5\nreplica_max_lag_bytes = 16777216\n",
    )
    read = settings(path)
    assert read.replica_url == "postgresql://reader@replica.example.se/tidbok"
    assert (read.replica_max_lag_seconds, read.replica_max_lag_bytes) == (1.5, 16777216)
    assert settings(path, TIDBOK_DATABASE_REPLICA_MAX_LAG="3").replica_max_lag_seconds == 3.0
    assert settings(path, TIDBOK_DATABASE_REPLICA_URL="").replica_url is None
    assert (Settings().replica_url, Settings().replica_max_lag_seconds, Settings().replica_max_lag_bytes) == (
        None,
        2.0,
        0,
    )


def test_an_unknown_section_is_named_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[serve]\nport = 8080\n")
    message = refusal(path)
    assert "[serve]" in message and str(path) in message


def test_an_unknown_key_is_named_with_its_section_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nprot = 8080\n")
    message = refusal(path)
    assert "[server] prot" in message and str(path) in message
    assert "port" in message.split("known:", 1)[1], "the known keys help find the typo"


def test_a_key_outside_any_section_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 8080\n")
    message = refusal(path)
    assert "port" in message and str(path) in message


def test_a_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server\nport = 8080\n")
    message = refusal(path)
    assert str(path) in message and "not valid TOML" in message
    assert "line 1" in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    message = refusal(path)
    assert "TIDBOK_CONFIG" in message and str(path) in message and "does not exist" in message


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    message = refusal(tmp_path)
    assert "TIDBOK_CONFIG" in message and str(tmp_path) in message


# -- consumers -----------------------------------------------------------------------------------


def consumers_file(tmp_path: Path, *tables: str) -> Path:
    return write(tmp_path, PROXY + "".join(f"[[consumer]]\n{t}\n" for t in tables))


def test_consumers_from_the_file(tmp_path: Path) -> None:
    path = consumers_file(
        tmp_path,
        f'hsa_id = "{PLATFORM.lower()}"',
        f'hsa_id = "{READER}"\ncontracts = ["GetAllTimeTypes", "GetAvailableDates"]\nunits = ["{A100.lower()}"]',
    )
    loaded = settings(path)
    assert loaded.transport == "proxy"
    assert len(loaded.consumers) == 2
    assert loaded.consumers.refusal(PLATFORM, "MakeBooking", A200) is None
    assert loaded.consumers.refusal(READER, "GetAvailableDates", A100) is None
    assert READER in (loaded.consumers.refusal(READER, "MakeBooking") or "")
    assert "care unit" in (loaded.consumers.refusal(READER, "GetAllTimeTypes", A200) or "")


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            f'hsa_id = "{READER}"\ncontracts = ["MakeBookings"]',
            "'MakeBookings', which is not a crm:scheduling contract",
        ),
        ('hsa_id = "1177"', "'1177' is not an HSA-id"),
        (f'hsa_id = "{READER}"\nunits = ["A100"]', "'A100', which is not an HSA-id"),
        (f'hsa_id = "{READER}"\ncontract = ["MakeBooking"]', "unknown setting contract"),
        ('contracts = ["MakeBooking"]', "hsa_id is required"),
        (f'hsa_id = "{READER}"\ncontracts = []', "contracts must be a non-empty list"),
        (f'hsa_id = "{READER}"\nunits = "{A100}"', "units must be a non-empty list"),
    ],
)
def test_a_bad_consumer_is_named_by_its_place_in_the_file(tmp_path: Path, table: str, problem: str) -> None:
    path = consumers_file(tmp_path, f'hsa_id = "{PLATFORM}"', table)
    message = refusal(path)
    assert message.startswith(f"[[consumer]] number 2 in {path}"), message
    assert problem in message


@pytest.mark.parametrize(
    "text", ['[consumer]\nhsa_id = "SE2321000016-VP01"\n', 'consumer = ["SE2321000016-VP01"]\n', "consumer = [1]\n"]
)
def test_consumers_must_be_tables(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text + PROXY)
    message = refusal(path)
    assert message == f"{path}: consumers are written as [[consumer]] tables"


def test_tidbok_consumers_replaces_the_files_list(tmp_path: Path) -> None:
    path = consumers_file(tmp_path, f'hsa_id = "{PLATFORM}"')
    loaded = settings(path, TIDBOK_CONSUMERS=f" {READER.lower()} , SE2321000016-XY99,")
    assert len(loaded.consumers) == 2
    assert loaded.consumers.refusal(READER, "MakeBooking", A200) is None
    assert loaded.consumers.refusal("SE2321000016-XY99", "CancelBooking", A100) is None
    assert loaded.consumers.refusal(PLATFORM, "GetAllTimeTypes") is not None


def test_a_bad_hsa_id_in_tidbok_consumers_names_the_variable() -> None:
    message = refusal(TIDBOK_PROXY_CERT_HEADER="X-Client-Cert", TIDBOK_TRUSTED_PROXIES="127.0.0.1",
                      TIDBOK_CONSUMERS=f"{PLATFORM},VP01")  # fmt: skip
    assert message.startswith("TIDBOK_CONSUMERS"), message
    assert "'VP01'" in message


class TestRefusal:
    """Consumers.refusal: who may call what, and messages that say which consumer was refused."""

    consumers = Consumers(
        [
            Consumer(PLATFORM),
            Consumer(READER, contracts=frozenset({"GetAllTimeTypes"}), units=frozenset({A100})),
        ]
    )

    def test_an_unknown_consumer_is_refused_by_name(self) -> None:
        message = self.consumers.refusal("SE2321000016-XY99", "GetAllTimeTypes")
        assert message is not None and "SE2321000016-XY99" in message and "not authorized" in message

    @pytest.mark.parametrize("hsa_id", [PLATFORM, PLATFORM.lower(), "Se2321000016-vP01", f" {PLATFORM} "])
    def test_hsa_ids_compare_case_insensitively(self, hsa_id: str) -> None:
        assert self.consumers.refusal(hsa_id, "MakeBooking", A200.lower()) is None

    def test_a_consumer_without_narrowing_may_call_everything(self) -> None:
        from producer.soap.scheduling import INTERACTIONS

        for interaction in INTERACTIONS:
            assert self.consumers.refusal(PLATFORM, interaction, A200) is None

    def test_contracts_narrow(self) -> None:
        assert self.consumers.refusal(READER, "GetAllTimeTypes") is None
        message = self.consumers.refusal(READER.lower(), "MakeBooking")
        assert message is not None and READER.lower() in message and "MakeBooking" in message

    def test_units_narrow_once_the_unit_is_known(self) -> None:
        assert self.consumers.refusal(READER, "GetAllTimeTypes", None) is None
        assert self.consumers.refusal(READER, "GetAllTimeTypes", A100.lower()) is None
        message = self.consumers.refusal(READER, "GetAllTimeTypes", A200)
        assert message is not None and READER in message and "care unit" in message

    def test_size(self) -> None:
        assert len(self.consumers) == 2 and self.consumers
        assert not Consumers()


# -- transport coherence -------------------------------------------------------------------------


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, str]:
    """Files that exist (their contents are only read once the settings are coherent)."""
    names = {}
    for key in ("cert", "key", "ca"):
        path = tmp_path / f"{key}.pem"
        path.write_text("not read\n")
        names[key] = str(path)
    return names


@pytest.mark.parametrize("given", [("cert",), ("cert", "key"), ("key", "ca"), ("ca",)])
def test_partial_tls_settings_name_what_is_missing(pem_files: dict[str, str], given: tuple[str, ...]) -> None:
    env = {f"TIDBOK_TLS_{k.upper()}": pem_files[k] for k in given}
    message = refusal(**env, TIDBOK_CONSUMERS=PLATFORM)
    missing = next(k for k in ("cert", "key", "ca") if k not in given)
    assert f"TIDBOK_TLS_{missing.upper()}" in message or f"[tls] {missing}" in message, message
    assert "is needed too" in message


def test_partial_tls_settings_in_the_file(tmp_path: Path, pem_files: dict[str, str]) -> None:
    path = write(tmp_path, f'[tls]\ncert = "{pem_files["cert"]}"\nca = "{pem_files["ca"]}"\n')
    message = refusal(path)
    assert "TIDBOK_TLS_KEY" in message or "[tls] key" in message, message


def test_a_proxy_header_needs_trusted_proxies(tmp_path: Path) -> None:
    path = write(tmp_path, f'[proxy]\nclient_cert_header = "X-Client-Cert"\n[[consumer]]\nhsa_id = "{PLATFORM}"\n')
    message = refusal(path)
    assert "TIDBOK_TRUSTED_PROXIES" in message or "[proxy] trusted" in message, message


def test_consumers_need_a_transport_that_identifies_callers(tmp_path: Path) -> None:
    """Named where the operator listed them, with what to set, in the file's and the variables' terms."""
    path = write(tmp_path, f'[[consumer]]\nhsa_id = "{PLATFORM}"\n')
    from_file = refusal(path)
    assert from_file.startswith(f"[[consumer]] in {path}"), from_file
    from_env = refusal(TIDBOK_CONSUMERS=PLATFORM)
    assert from_env.startswith("TIDBOK_CONSUMERS"), from_env
    for message in (from_file, from_env):
        assert "nothing identifies callers" in message
        assert "[tls]" in message and "TIDBOK_TLS_CERT" in message
        assert "[proxy]" in message and "TIDBOK_PROXY_CERT_HEADER" in message


def test_a_blank_proxy_header_is_the_open_mode() -> None:
    assert settings(TIDBOK_PROXY_CERT_HEADER="  ").transport == "open"


def test_identifying_callers_needs_consumers(pem_files: dict[str, str]) -> None:
    proxy = refusal(TIDBOK_PROXY_CERT_HEADER="X-Client-Cert", TIDBOK_TRUSTED_PROXIES="127.0.0.1")
    assert proxy.startswith("TIDBOK_CONSUMERS"), proxy
    mtls = refusal(TIDBOK_TLS_CERT=pem_files["cert"], TIDBOK_TLS_KEY=pem_files["key"], TIDBOK_TLS_CA=pem_files["ca"])
    assert mtls.startswith("TIDBOK_CONSUMERS"), mtls
    empty = refusal(TIDBOK_PROXY_CERT_HEADER="X-Client-Cert", TIDBOK_TRUSTED_PROXIES="127.0.0.1", TIDBOK_CONSUMERS="")
    assert empty.startswith("TIDBOK_CONSUMERS"), empty


def test_tls_and_a_proxy_exclude_each_other(tmp_path: Path, pem_files: dict[str, str]) -> None:
    path = write(
        tmp_path,
        f'[tls]\ncert = "{pem_files["cert"]}"\nkey = "{pem_files["key"]}"\nca = "{pem_files["ca"]}"\n'
        f'{PROXY}[[consumer]]\nhsa_id = "{PLATFORM}"\n',
    )
    message = refusal(path)
    assert f"[proxy] client_cert_header in {path}" in message and f"[tls] cert in {path}" in message
    assert "exclude each other" in message


def test_mutual_tls_with_real_files(tmp_path: Path) -> None:
    ca = Authority(tmp_path, "config")
    server = ca.server()
    path = write(
        tmp_path,
        f'[tls]\ncert = "{server.cert}"\nkey = "{server.key}"\nca = "{ca.bundle}"\n'
        f'[[consumer]]\nhsa_id = "{PLATFORM}"\n',
    )
    loaded = settings(path)
    assert loaded.transport == "mtls"
    assert (loaded.tls_cert, loaded.tls_key, loaded.tls_ca) == (server.cert, server.key, ca.bundle)


def test_mutual_tls_files_that_are_not_pem_are_named(tmp_path: Path, pem_files: dict[str, str]) -> None:
    path = write(
        tmp_path,
        f'[tls]\ncert = "{pem_files["cert"]}"\nkey = "{pem_files["key"]}"\nca = "{pem_files["ca"]}"\n'
        f'[[consumer]]\nhsa_id = "{PLATFORM}"\n',
    )
    message = refusal(path)
    assert f"[tls] cert in {path}" in message and f"[tls] key in {path}" in message, message


# -- the command line ----------------------------------------------------------------------------


def run(args: list[str], env: Mapping[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`python -m producer <args>` with exactly our TIDBOK_* settings, whatever the result."""
    return subprocess.run(
        [PYTHON, "-m", "producer", *args],
        cwd=REPO,
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[bookings]\nmax_search_days = 30\n", "[bookings] max_search_days in {path}"),
        ("[server]\nprot = 8080\n", "[server] prot"),
        ("[server\n", "{path} is not valid TOML"),
    ],
)
def test_serve_with_a_bad_file_exits_2_at_once(tmp_path: Path, text: str, named: str) -> None:
    path = write(tmp_path, text)
    port = free_port()
    started = time.monotonic()
    # No DATABASE_URL: were the file not refused first, an embedded PostgreSQL would be started.
    env = {k: v for k, v in subprocess_env({}).items() if k != "DATABASE_URL"}
    env.update({"TIDBOK_CONFIG": str(path), "TIDBOK_PORT": str(port), "TIDBOK_PGDATA": str(tmp_path / "pgdata")})
    result = subprocess.run(
        [PYTHON, "-m", "producer", "serve"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert "tidbok: configuration error:" in result.stderr
    assert named.format(path=path) in result.stderr, result.stderr
    assert elapsed < 10, f"took {elapsed:.1f}s to refuse"
    assert "serving on" not in result.stdout + result.stderr
    assert not (tmp_path / "pgdata").exists(), "a database was started for a refused configuration"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "something listens on the configured port"


def test_a_missing_file_stops_every_command(tmp_path: Path) -> None:
    result = run(["outbox", "status"], {"TIDBOK_CONFIG": str(tmp_path / "absent.toml")})
    assert result.returncode == 2
    assert "tidbok: configuration error: TIDBOK_CONFIG" in result.stderr


def test_the_cli_uses_the_files_database(pg_admin_url: str, tmp_path: Path) -> None:
    """`tidbok migrate` with the database only in the file: the file reaches the real command."""
    url = fresh_database(pg_admin_url, "tidbok_test_configfile")
    path = write(tmp_path, f'[database]\nurl = "{url}"\n')
    env = {k: v for k, v in subprocess_env({"TIDBOK_CONFIG": str(path)}).items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [PYTHON, "-m", "producer", "migrate"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS tidbok_test_configfile WITH (FORCE)")


# -- everything checked before anything starts ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [("70000", "must be at most 65535, got 70000"), ("0", "must be at least 1, got 0"), (" 8080 ", None)],
)
def test_ports_are_in_range(value: str, problem: str | None) -> None:
    if problem is None:
        assert settings(TIDBOK_PORT=value).port == 8080
    else:
        assert refusal(TIDBOK_PORT=value) == f"TIDBOK_PORT {problem}"


@pytest.mark.parametrize(
    ("text", "label", "problem"),
    [
        ('[ei]\nupdate_url = "notaurl"\n', "[ei] update_url", "must be a http:// or https://host/… URL"),
        ('[ei]\nupdate_url = "ftp://ei.example.se/Update"\n', "[ei] update_url", "must be a http:// or https://"),
        ('[ei]\nupdate_url = "https://ei.example.se:99999/Update"\n', "[ei] update_url", "is not a URL"),
        ("[ei]\ntimeout = 100000\n", "[ei] timeout", "at most 3600"),
    ],
)
def test_ei_urls_and_ranges_are_checked(tmp_path: Path, text: str, label: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        EiSettings.from_env(source(path))
    assert str(caught.value).startswith(f"{label} in {path}"), caught.value
    assert problem in str(caught.value)


def test_ei_tls_material_is_loaded_at_start(tmp_path: Path) -> None:
    """A client certificate that is not one, or a CA bundle that is not one, is named before the
    publisher starts (not at its first call to EI)."""
    ca = Authority(tmp_path, "ei")
    client = ca.function_certificate(PLATFORM, "publisher")
    junk = write(tmp_path, "not a certificate\n", "junk.pem")
    good = EiSettings.from_env(
        source(
            TIDBOK_EI_CLIENT_CERT=str(client.cert),
            TIDBOK_EI_CLIENT_KEY=str(client.key),
            TIDBOK_EI_CA_BUNDLE=str(ca.bundle),
        )
    )
    assert good.client_cert == client.cert
    with pytest.raises(ConfigError, match="TIDBOK_EI_CLIENT_CERT and TIDBOK_EI_CLIENT_KEY are not a certificate"):
        EiSettings.from_env(source(TIDBOK_EI_CLIENT_CERT=str(junk), TIDBOK_EI_CLIENT_KEY=str(client.key)))
    path = write(tmp_path, f'[ei]\nca_bundle = "{junk}"\n')
    with pytest.raises(ConfigError, match=re.escape(f"[ei] ca_bundle in {path} is not a PEM bundle")):
        EiSettings.from_env(source(path))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://db/tidbok", "must be a postgresql://… URL"),
        ("postgresql://h/db?sslmode", "not a usable PostgreSQL URL"),
    ],
)
def test_the_database_url_is_checked(tmp_path: Path, url: str, problem: str) -> None:
    path = write(tmp_path, f'[database]\nurl = "{url}"\n')
    message = refusal(path)
    assert message.startswith(f"[database] url in {path}") and problem in message, message


def test_an_unwritable_pgdata_is_named(tmp_path: Path) -> None:
    afile = write(tmp_path, "", "afile")
    assert "which is not a folder" in refusal(TIDBOK_PGDATA=str(afile))
    assert "cannot be created" in refusal(TIDBOK_PGDATA=str(afile / "below"))
    assert settings(DATABASE_URL="postgresql://h/db", TIDBOK_PGDATA=str(afile)).database_url  # unused then


def test_a_short_admin_token_in_the_file_names_the_file_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nadmin_tokens = ["short=*"]\n')
    with pytest.raises(ConfigError) as caught:
        Tokens.parse(settings(path).admin_tokens, label=source(path).label("TIDBOK_ADMIN_TOKENS"))
    assert str(caught.value) == f"[server] admin_tokens in {path}: the token of entry 1 has 5 characters; at least 16"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[server]\nport = 70000\n", "[server] port in {path} must be at most 65535, got 70000"),
        ('[server]\nadmin_tokens = ["short=*"]\n', "[server] admin_tokens in {path}: the token of entry 1"),
        ('[ei]\nupdate_url = "notaurl"\n', "[ei] update_url in {path} must be a http:// or https://"),
        ('[ei]\nclient_cert = "{path}"\nclient_key = "{path}"\n', "[ei] client_cert in {path} and [ei] client_key"),
    ],
)
def test_run_refuses_a_bad_setting_before_anything_starts(tmp_path: Path, text: str, named: str) -> None:
    """`tidbok run` starts the database, the EI stub, the publisher and the server: none of them may
    be started for a configuration that one of them would refuse."""
    path = tmp_path / "tidbok.toml"
    write(tmp_path, text.format(path=path))
    port, stub_port = free_port(), free_port()
    env = {k: v for k, v in subprocess_env({}).items() if k != "DATABASE_URL"}
    env.update(
        {
            "TIDBOK_CONFIG": str(path),
            "TIDBOK_EI_STUB_PORT": str(stub_port),
            "TIDBOK_PGDATA": str(tmp_path / "pgdata"),
        }
    )
    if "port =" not in text:
        env["TIDBOK_PORT"] = str(port)
    result = subprocess.run(
        [PYTHON, "-m", "producer", "run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("tidbok: configuration error: " + named.format(path=path)), result.stderr
    assert not (tmp_path / "pgdata").exists(), "a database was started for a refused configuration"
    assert "started" not in result.stderr
    for used in (port, stub_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", used)) != 0, f"something listens on {used}"


@pytest.fixture
def mtls_files(tmp_path: Path) -> dict[str, str]:
    ca = Authority(tmp_path, "inuse")
    server = ca.server()
    return {"TIDBOK_TLS_CERT": str(server.cert), "TIDBOK_TLS_KEY": str(server.key), "TIDBOK_TLS_CA": str(ca.bundle)}


@pytest.mark.parametrize("mode", ["open", "proxy", "mtls"])
@pytest.mark.parametrize("command", ["serve", "run"])
def test_a_port_in_use_is_refused_in_every_server_mode(
    producer_server: ProducerServer, mtls_files: dict[str, str], tmp_path: Path, mode: str, command: str
) -> None:
    """granian listens with SO_REUSEPORT: a second server on a used port would share it with the
    first. The running test producer holds its port; a second one must refuse it, in every mode."""
    port = urlsplit(producer_server.base_url).port
    env = {k: v for k, v in subprocess_env({}).items() if k != "DATABASE_URL"}
    env.update(
        {"TIDBOK_PORT": str(port), "TIDBOK_PGDATA": str(tmp_path / "pgdata"), "TIDBOK_EI_STUB_PORT": str(free_port())}
    )
    if mode == "proxy":
        env.update({"TIDBOK_PROXY_CERT_HEADER": "X-Client-Cert", "TIDBOK_TRUSTED_PROXIES": "127.0.0.1"})
    if mode == "mtls":
        env.update(mtls_files)
    if mode != "open":
        env["TIDBOK_CONSUMERS"] = PLATFORM
    result = subprocess.run(
        [PYTHON, "-m", "producer", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stderr
    assert f"port {port} is already in use" in result.stderr, result.stderr
    assert "(TIDBOK_PORT)" in result.stderr
    assert not (tmp_path / "pgdata").exists()
    status, _, body = http_get(f"{producer_server.base_url}/health")
    assert (status, body) == (200, b"ok\n"), "the first server must go on serving"


def test_the_ei_stubs_port_in_use_is_refused(producer_server: ProducerServer, tmp_path: Path) -> None:
    port = urlsplit(producer_server.base_url).port
    env = {k: v for k, v in subprocess_env({}).items() if k != "DATABASE_URL"}
    env.update(
        {"TIDBOK_PORT": str(free_port()), "TIDBOK_EI_STUB_PORT": str(port), "TIDBOK_PGDATA": str(tmp_path / "pg")}
    )
    result = subprocess.run(
        [PYTHON, "-m", "producer", "run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stderr
    assert f"port {port} is already in use" in result.stderr and "TIDBOK_EI_STUB_PORT" in result.stderr


@pytest.mark.parametrize("command", ["run", "migrate", "demo", "serve", "publish", "sweep", "outbox", "load", "staff"])
def test_each_command_has_its_own_help(command: str) -> None:
    result = run([command, "--help"], {"TIDBOK_CONFIG": "/nonexistent/never-read.toml"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: tidbok {command}"), result.stdout[:200]


def test_outbox_actions_have_their_own_help() -> None:
    result = run(["outbox", "retry", "--help"], {})
    assert result.returncode == 0 and result.stdout.startswith("usage: tidbok outbox retry"), result.stdout
    assert run(["outbox", "resync"], {}).returncode == 2  # the unit is required: a usage error


def test_a_configuration_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "tidbok.toml"
    path.write_bytes('[server]\nhost = "127.0.0.1"\n# Vårdcentralen\n'.encode("cp1252"))
    message = refusal(path)
    assert message.startswith(f"{path}: line 3: not UTF-8 text"), message


def test_a_host_that_is_not_this_machines_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nhost = "203.0.113.9"\n')  # TEST-NET-3: never an address of ours
    env = {k: v for k, v in subprocess_env({}).items() if k != "DATABASE_URL"}
    env.update({"TIDBOK_CONFIG": str(path), "TIDBOK_PORT": str(free_port()), "TIDBOK_PGDATA": str(tmp_path / "pg")})
    result = subprocess.run(
        [PYTHON, "-m", "producer", "serve"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"tidbok: configuration error: host '203.0.113.9' is not an address of this machine ([server] host in {path})"
    )
