"""The EP stub fixtures of support.ep (ep_stub, ep, ep_pki, ep_tls_stub, ep_tls) for the tests here."""

from support.ep import ep, ep_pki, ep_stub, ep_tls, ep_tls_stub

__all__ = ["ep", "ep_pki", "ep_stub", "ep_tls", "ep_tls_stub"]
