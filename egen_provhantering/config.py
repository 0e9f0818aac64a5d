"""The OfferInteraction client's configuration: ClientConfig, and how it comes from Settings
(TIDBOK_EP_* or the [ep] section of the configuration file, checked by producer.platform.settings)."""

from __future__ import annotations

from dataclasses import dataclass

from egen_provhantering.contract import DEFAULT_NAMESPACE
from producer.platform.settings import Settings


@dataclass(frozen=True)
class ClientConfig:
    """Where EP is and how to reach it. cert_file/key_file: the SITHS function certificate (both or
    neither); ca_file: the CAs EP's server certificate must chain to (None: requests' certifi bundle,
    which holds no SITHS CA). An http:// url is for tests and development only: EP itself is https
    with mutual TLS. timeout: seconds to connect, and to wait for each part of the answer."""

    url: str
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    timeout: float = 10.0
    namespace: str = DEFAULT_NAMESPACE  # the service's, from the QA ?wsdl (TIDBOK_EP_NAMESPACE)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientConfig | None:
        """The client's configuration, or None when no EP is configured (TIDBOK_EP_URL unset)."""
        if settings.ep_url is None:
            return None
        return cls(
            url=settings.ep_url,
            cert_file=None if settings.ep_cert is None else str(settings.ep_cert),
            key_file=None if settings.ep_key is None else str(settings.ep_key),
            ca_file=None if settings.ep_ca is None else str(settings.ep_ca),
            timeout=float(settings.ep_timeout_seconds),
            namespace=settings.ep_namespace or DEFAULT_NAMESPACE,
        )
