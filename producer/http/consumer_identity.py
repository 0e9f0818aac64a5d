"""Who is calling: the HSA-id in the SERIALNUMBER of the client certificate's subject (seed 000:
SITHS function certificates carry e.g. SE2321000016-A2G2 there).

With our own TLS the certificate comes from the verified connection; behind a TLS-terminating
proxy it comes, URL-escaped PEM as nginx's $ssl_client_escaped_cert gives it, in a header that is
believed only from the configured proxy addresses.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.x509.oid import NameOID

from producer.platform.settings import Settings
from producer.sweden.identifiers import is_valid_hsa_id, normalise_hsa_id

_BEGIN, _END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
_PEM = re.compile(re.escape(_BEGIN) + r"([A-Za-z0-9+/=\s]+)" + re.escape(_END))


class NotIdentified(Exception):
    """The caller could not be identified; the message says why (it never quotes certificate data),
    `reason` is the metrics label of the refusal."""

    def __init__(self, message: str, reason: str = "no_identity") -> None:
        super().__init__(message)
        self.reason = reason


def from_peer_certificate(certificate: dict[str, Any] | None) -> str:
    """The HSA-id of a certificate as ssl.SSLSocket.getpeercert() describes it."""
    if not certificate:
        raise NotIdentified("no client certificate was presented")
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "serialNumber":
                return _hsa_id(value)
    raise NotIdentified("the client certificate's subject has no SERIALNUMBER (HSA-id)")


@lru_cache(maxsize=256)  # the platform presents a handful of certificates, on every call
def from_forwarded_pem(header: str) -> str:
    """The HSA-id of a URL-escaped (or plain) PEM certificate forwarded by the proxy."""
    text = unquote(header).strip()
    if not text:
        raise NotIdentified("the proxy forwarded no client certificate")
    try:
        certificate = x509.load_pem_x509_certificate(_pem(text).encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise NotIdentified("the forwarded client certificate is not a PEM certificate") from None
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise NotIdentified("the forwarded client certificate is not valid now")
    values = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if not values:
        raise NotIdentified("the client certificate's subject has no SERIALNUMBER (HSA-id)")
    return _hsa_id(str(values[0].value))


def _pem(text: str) -> str:
    """The PEM text with its line breaks back, for proxies that forward them as spaces or tabs."""
    match = _PEM.fullmatch(text)
    if match is None:
        return text
    body = "".join(match.group(1).split())
    return "\n".join([_BEGIN, *(body[i : i + 64] for i in range(0, len(body), 64)), _END, ""])


def _hsa_id(value: str) -> str:
    hsa_id = normalise_hsa_id(value)
    if not is_valid_hsa_id(hsa_id):
        raise NotIdentified("the client certificate's SERIALNUMBER is not an HSA-id")
    return hsa_id


def identify(settings: Settings, environ: dict[str, Any]) -> str | None:
    """The calling consumer's HSA-id; None in the open (plain HTTP) mode. Raises NotIdentified."""
    if settings.transport == "mtls":
        sock = environ.get("gunicorn.socket")
        if not isinstance(sock, ssl.SSLSocket):
            raise NotIdentified("the connection is not TLS")
        return from_peer_certificate(sock.getpeercert())
    if settings.transport == "proxy":
        if not _trusted(settings, environ.get("REMOTE_ADDR", "")):
            raise NotIdentified("the call did not come through a trusted proxy", "untrusted_proxy")
        header = "HTTP_" + (settings.proxy_cert_header or "").upper().replace("-", "_")
        return from_forwarded_pem(environ.get(header, ""))
    return None


def _trusted(settings: Settings, address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return any(ip in network for network in settings.trusted_proxies)
