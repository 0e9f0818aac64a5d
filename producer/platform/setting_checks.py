"""Checks of settings that go together (a retry interval, a certificate with its key and CA), shared
by the producer's, EI's and EP's settings. May import: ssl, producer.platform.settings_source.

Each names the settings in its error as settings_source does (the variable, or the file key it was
read from), so a bad value stops the start with the same words whichever peer it is for.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from producer.platform.settings_source import ConfigError, Source


def retry_interval(source: Source, initial_name: str, maximum_name: str) -> tuple[int, int]:
    """A publisher's first and longest wait after a failure, in ms (defaults 5 s and 5 min): the
    backoff doubles from the one up to the other, so the longest must not be below the first."""
    initial = source.integer(initial_name, 5000, 1)
    maximum = source.integer(maximum_name, 300_000, 1)
    if maximum < initial:
        raise ConfigError(f"{source.label(maximum_name)} must not be below {source.label(initial_name)}")
    return initial, maximum


def paired(source: Source, cert_name: str, key_name: str, cert: Path | None, key: Path | None) -> None:
    """A client certificate and its key are given both or neither."""
    if (cert is None) != (key is None):
        raise ConfigError(f"{source.label(cert_name)} and {source.label(key_name)} go together")


def tls_files(
    source: Source,
    names: tuple[str, str, str],
    cert: Path | None,
    key: Path | None,
    ca: Path | None,
    purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
) -> None:
    """Load the certificate and key (when both are given) and the CA bundle (when given) as the
    client or server that uses them will, now, so a wrong file is named before anything starts.
    `names`: the certificate's, the key's and the CA bundle's settings."""
    cert_name, key_name, ca_name = names
    context = ssl.create_default_context(purpose)
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(str(cert), str(key))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"{source.label(cert_name)} and {source.label(key_name)} are not a certificate and its private key"
                f" (PEM): {exc}"
            ) from None
    if ca is not None:
        try:
            context.load_verify_locations(cafile=str(ca))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"{source.label(ca_name)} is not a PEM bundle of CA certificates: {exc}") from None
