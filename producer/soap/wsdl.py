"""A contract's WSDLs and XSDs over HTTP, as RIV-TA consumers fetch them, for the producer and the EI stub.

A consumer points its tooling at `<endpoint>?wsdl` and then follows the relative schemaLocations
(`<Op>Responder_x.y.xsd` next to the endpoint, `../../core_components/*.xsd`), so those paths are
served straight from the contract tree. No database here: the EI stub runs without one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from producer.soap.contract import contract_file

_ENDPOINT = re.compile(r"^/([A-Za-z]+)/1/rivtabp21/?$")  # RIVTABP21 endpoint path; group 1 is the interaction
_INTERACTION_FILE = re.compile(r"^/([A-Za-z]+)/1/([A-Za-z0-9_.]+\.xsd)$")
_CORE_FILE = re.compile(r"^/core_components/([A-Za-z0-9_.]+\.xsd)$")
_SOAP_ADDRESS = re.compile(r'(<soap:address\s+location=")[^"]*(")')


def endpoint_name(path: str) -> str | None:
    """The interaction a RIVTABP21 endpoint path names (`/<Name>/1/rivtabp21`), known or not; None
    for any other path. The one place the endpoint pattern is matched."""
    match = _ENDPOINT.match(path)
    return match.group(1) if match else None


class ContractFiles:
    """The WSDL of each interaction (read once) and the XSDs below root, for GET requests."""

    def __init__(self, root: Path, interactions: Mapping[str, Path]) -> None:
        """root: the contract tree (holding interactions/ and core_components/); interactions: name -> WSDL."""
        self.root = root
        self._wsdl_text = {name: path.read_text(encoding="utf-8") for name, path in interactions.items()}

    def get(self, environ: dict[str, Any], endpoint: str | None) -> bytes | None:
        """What a request fetches from the contract (`<endpoint>?wsdl` or an XSD), or None if it fetches
        nothing from it: then it is the app's to route (a SOAP POST, /health, a 404). `endpoint`: what
        endpoint_name found in the path."""
        if environ.get("REQUEST_METHOD", "GET") != "GET":
            return None
        if endpoint is None:
            return self.file(environ.get("PATH_INFO", ""))
        if endpoint in self._wsdl_text and environ.get("QUERY_STRING", "").lower() in ("wsdl", "wsdl="):
            return self.wsdl(endpoint, environ)
        return None

    def wsdl(self, name: str, environ: dict[str, Any]) -> bytes:
        """The interaction's WSDL with soap:address set to the URL it was fetched from, so a client
        generated from it calls this server (behind a proxy too, via X-Forwarded-Proto and Host)."""
        scheme = environ.get("HTTP_X_FORWARDED_PROTO") or environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        url = f"{scheme}://{host}{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}"
        return _SOAP_ADDRESS.sub(lambda m: m.group(1) + url + m.group(2), self._wsdl_text[name]).encode()

    def file(self, path: str) -> bytes | None:
        """The XSD a request path names, or None if it names none (or would leave the contract tree)."""
        match = _INTERACTION_FILE.match(path)
        if match and match.group(1) in self._wsdl_text:
            relative = f"interactions/{match.group(1)}Interaction/{match.group(2)}"
        else:
            match = _CORE_FILE.match(path)
            if not match:
                return None
            relative = f"core_components/{match.group(1)}"
        found = contract_file(self.root, relative)
        return found.read_bytes() if found else None
