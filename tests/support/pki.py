"""A throw-away PKI made at test time: a CA like the SITHS one, a server certificate for loopback,
and function certificates whose subject SERIALNUMBER carries an HSA-id (seed 000)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class Issued:
    """A certificate and its key on disk, for ssl, requests and the producer's settings."""

    cert: Path
    key: Path

    @property
    def pair(self) -> tuple[str, str]:
        return str(self.cert), str(self.key)

    def escaped_pem(self) -> str:
        """As nginx's $ssl_client_escaped_cert forwards it."""
        return quote(self.cert.read_text(), safe="")


class Authority:
    """A CA that issues into `directory`."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
        now = datetime.now(UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(self._subject)
            .issuer_name(self._subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.bundle = directory / f"{name}-ca.pem"
        self.bundle.write_bytes(self._cert.public_bytes(PEM))

    def server(self, filename: str = "server") -> Issued:
        return self._issue(
            filename,
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
            ExtendedKeyUsageOID.SERVER_AUTH,
        )

    def function_certificate(self, hsa_id: str | None, filename: str, *, expired: bool = False) -> Issued:
        """A client certificate; `hsa_id` None leaves SERIALNUMBER out of the subject."""
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, f"{filename} function")]
        if hsa_id is not None:
            attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, hsa_id))
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Testregionen"))
        return self._issue(filename, x509.Name(attributes), None, ExtendedKeyUsageOID.CLIENT_AUTH, expired=expired)

    def _issue(
        self,
        filename: str,
        subject: x509.Name,
        names: list[x509.GeneralName] | None,
        usage: x509.ObjectIdentifier,
        *,
        expired: bool = False,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        start, end = (
            (now - timedelta(days=10), now - timedelta(days=1))
            if expired
            else (now - timedelta(hours=1), now + timedelta(days=7))
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = Issued(self.directory / f"{filename}.pem", self.directory / f"{filename}.key")
        issued.cert.write_bytes(cert.public_bytes(PEM))
        issued.key.write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        issued.key.chmod(0o600)
        return issued
