"""The EP client's settings (TIDBOK_EP_* or [ep] in the configuration file): what the client gets,
and every refusal naming the setting as the operator wrote it, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.ep import EpPki, EpStub

from egen_provhantering.client import GivenOffer, OfferClient
from egen_provhantering.config import ClientConfig
from egen_provhantering.contract import DEFAULT_NAMESPACE
from producer.platform import settings_source
from producer.platform.settings import ConfigError, Settings

URL = "https://qa.services.pep.minavardkontakter.se/OfferExternalService/OfferInteraction.svc"
THEIRS = "http://schemas.example.se/ep/offer/2021/04"


def settings(path: Path | None = None, **env: str) -> Settings:
    environ = dict(env) | ({"TIDBOK_CONFIG": str(path)} if path else {})
    return Settings.from_env(settings_source.load(environ=environ))


def refusal(path: Path | None = None, **env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        settings(path, **env)
    return str(caught.value)


def test_no_url_no_ep() -> None:
    assert ClientConfig.from_settings(settings()) is None


def test_the_environment_configures_the_client(ep_pki: EpPki) -> None:
    loaded = settings(
        TIDBOK_EP_URL=URL,
        TIDBOK_EP_CERT=str(ep_pki.client.cert),
        TIDBOK_EP_KEY=str(ep_pki.client.key),
        TIDBOK_EP_CA=str(ep_pki.authority.bundle),
        TIDBOK_EP_TIMEOUT="4",
        TIDBOK_EP_NAMESPACE=THEIRS,
    )
    assert ClientConfig.from_settings(loaded) == ClientConfig(
        url=URL,
        cert_file=str(ep_pki.client.cert),
        key_file=str(ep_pki.client.key),
        ca_file=str(ep_pki.authority.bundle),
        timeout=4.0,
        namespace=THEIRS,
    )


def test_the_file_configures_the_client_and_the_defaults_fill_in(tmp_path: Path) -> None:
    path = tmp_path / "tidbok.toml"
    path.write_text(f'[ep]\nurl = "{URL}"\n', encoding="utf-8")
    config = ClientConfig.from_settings(settings(path))
    assert config == ClientConfig(url=URL, timeout=10.0, namespace=DEFAULT_NAMESPACE)


def test_a_file_value_is_named_by_its_key(tmp_path: Path) -> None:
    path = tmp_path / "tidbok.toml"
    path.write_text('[ep]\nurl = "http://127.0.0.1:8082/x"\nnamespace = "no uri"\n', encoding="utf-8")
    assert refusal(path).startswith(f"[ep] namespace in {path} must be an absolute URI")


def test_refusals_name_the_setting(ep_pki: EpPki, tmp_path: Path) -> None:
    cert, key, ca = str(ep_pki.client.cert), str(ep_pki.client.key), str(ep_pki.authority.bundle)
    assert refusal(TIDBOK_EP_URL="ftp://ep/x").startswith("TIDBOK_EP_URL must be a http:// or https://")
    assert refusal(TIDBOK_EP_URL=URL, TIDBOK_EP_CERT=cert) == "TIDBOK_EP_CERT and TIDBOK_EP_KEY go together"
    assert refusal(TIDBOK_EP_CA=ca) == "TIDBOK_EP_CA is set but TIDBOK_EP_URL is not"
    plain = refusal(TIDBOK_EP_URL="http://127.0.0.1:8082/x", TIDBOK_EP_CERT=cert, TIDBOK_EP_KEY=key)
    assert plain.startswith("TIDBOK_EP_CERT needs an https:// TIDBOK_EP_URL")
    mismatched = refusal(TIDBOK_EP_URL=URL, TIDBOK_EP_CERT=cert, TIDBOK_EP_KEY=str(ep_pki.stranger.key))
    assert mismatched.startswith("TIDBOK_EP_CERT and TIDBOK_EP_KEY are not a certificate and its private key")
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate\n", encoding="utf-8")
    assert refusal(TIDBOK_EP_URL=URL, TIDBOK_EP_CA=str(not_pem)).startswith("TIDBOK_EP_CA is not a PEM bundle")
    assert "not a readable file" in refusal(TIDBOK_EP_URL=URL, TIDBOK_EP_CA=str(tmp_path / "missing.pem"))
    assert refusal(TIDBOK_EP_URL=URL, TIDBOK_EP_TIMEOUT="0") == "TIDBOK_EP_TIMEOUT must be at least 1, got 0"
    assert refusal(TIDBOK_EP_URL=URL, TIDBOK_EP_NAMESPACE='urn:a"b').startswith("TIDBOK_EP_NAMESPACE must be")


def test_settings_reach_ep_over_mutual_tls(ep_tls: EpStub, ep_pki: EpPki) -> None:
    loaded = settings(
        TIDBOK_EP_URL=ep_tls.url,
        TIDBOK_EP_CERT=str(ep_pki.client.cert),
        TIDBOK_EP_KEY=str(ep_pki.client.key),
        TIDBOK_EP_CA=str(ep_pki.authority.bundle),
    )
    config = ClientConfig.from_settings(loaded)
    assert config is not None
    offer = GivenOffer("SE2321000016-14FM", "SE2321000016-RCC1", " ", " ", False, "191212121212", "6")
    with OfferClient(config) as client:
        assert client.add(offer).outcome == "given"
    assert len(ep_tls.given("191212121212")) == 1
