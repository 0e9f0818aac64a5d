"""EP's OfferInteraction as tidbok renders it (contracts/offerinteraction_1.0): the two operations by
name, the namespace (ours by default, the operator's from TIDBOK_EP_NAMESPACE) and the XSD compiled
for that namespace.

EP serves its WSDL only in QA (seed 000), so the rendition's namespace is a placeholder of ours: the
same file is compiled with whatever namespace is configured, so client, stub and validation agree.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cache

from lxml import etree

from producer.soap.envelope import describe_schema_errors
from producer.soap.hardened_xml import hardened_parser
from producer.soap.scheduling import CONTRACTS_DIR

CONTRACT_DIR = CONTRACTS_DIR / "offerinteraction_1.0"
XSD_PATH = CONTRACT_DIR / "OfferInteraction_1.0.xsd"
WSDL_PATH = CONTRACT_DIR / "OfferInteraction_1.0.wsdl"
DEFAULT_NAMESPACE = "urn:tidbok:egenprovhantering:offerinteraction:1"  # ours, see contracts/README.md
SERVICE_CONTRACT = "IOfferInteraction"  # a WCF service's default port type name; the seed names none
SERVICE_PATH = "/OfferExternalService/OfferInteraction.svc"  # as in the seed's production and QA URLs

# An absolute URI without white space or characters that would need escaping in XML or an HTTP header.
_OFFENDING = re.compile(r"^Element '(?:\{[^}]*\})?([A-Za-z_][\w.-]*)'")
_NAMESPACE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s\"'<>&\\]+")

# The request's seven elements in wire order (the seed's examples), with GivenOffer's field names.
REQUEST_FIELDS = (
    ("AccessUnitID", "access_unit_id"),
    ("HCProfessionalFirstName", "hc_first_name"),
    ("HCProfessionalID", "hc_professional_id"),
    ("HCProfessionalLastName", "hc_last_name"),
    ("NotifyResident", "notify_resident"),
    ("PersonalNumber", "personal_number"),
    ("UnitOfferID", "unit_offer_id"),
)


@dataclass(frozen=True)
class Operation:
    name: str  # AddGivenOfferByExternalSystem
    flag: str  # the answer's boolean beside ResultOfCall

    @property
    def request(self) -> str:
        return f"{self.name}Request"

    @property
    def response(self) -> str:
        return f"{self.name}Response"


ADD = Operation("AddGivenOfferByExternalSystem", "OfferAlreadyGivenWithinTimeLimitTryLater")
UNDO = Operation("UndoGivenOfferByExternalSystem", "GivenOfferFoundAndDeleted")
OPERATIONS = {op.name: op for op in (ADD, UNDO)}


def namespace_problem(namespace: str) -> str | None:
    """Why `namespace` cannot be used as the contract's namespace, or None."""
    if not _NAMESPACE.fullmatch(namespace):
        return "must be an absolute URI (http://… or urn:…) without spaces, quotes, <, > or &"
    return None


def soap_action(namespace: str, operation: Operation) -> str:
    """WCF's default action: the namespace, '/' unless it ends with one, the contract, the operation."""
    separator = "" if namespace.endswith("/") else "/"
    return f"{namespace}{separator}{SERVICE_CONTRACT}/{operation.name}"


def in_namespace(text: str, namespace: str) -> str:
    """A file of the rendition with our placeholder namespace replaced by `namespace`."""
    problem = namespace_problem(namespace)
    if problem is not None:
        raise ValueError(f"EP namespace {namespace!r} {problem}")
    return text.replace(DEFAULT_NAMESPACE, namespace)


class Schema:
    """The rendition's XSD for one namespace; a failing validation reads its errors under a lock (a
    compiled libxml2 schema keeps one error log for every thread)."""

    def __init__(self, namespace: str) -> None:
        document = etree.fromstring(in_namespace(XSD_PATH.read_text(encoding="utf-8"), namespace).encode(), _PARSER)
        self.namespace = namespace
        self._schema = etree.XMLSchema(document)
        self._errors = threading.Lock()

    def problem(self, element: etree._Element, subject: str) -> str | None:
        """None when `element` is valid, else where and how it breaks the schema (no values quoted)."""
        if self._schema.validate(element):
            return None
        with self._errors:
            self._schema.validate(element)
            described = describe_schema_errors(self._schema.error_log, subject)
            first = self._schema.error_log[0] if len(self._schema.error_log) else None
        # libxml2 writes elements in a default namespace as "*" in its path: name the element instead
        # (a name the schema defines, or the answer's own element name; never a value)
        path = "/".join(step.split(":")[-1] for step in ((first.path if first else "") or "").split("/") if step)
        named = _OFFENDING.match(first.message) if first is not None and "*" in path else None
        if named is not None:
            described = described.replace(f" at {path}:", f" at element {named.group(1)}:", 1)
        return described


_PARSER = hardened_parser(remove_comments=True)


@cache
def schema(namespace: str = DEFAULT_NAMESPACE) -> Schema:
    return Schema(namespace)
