"""Comparing a contract rendition of ours (contracts/) with the official release it renders.

Schemas are compared through xmlschema's component model (not as text): every particle of every
element, recursively, in order. WSDLs are compared as parsed lxml trees with all QName-valued
attributes resolved, so prefixes and formatting do not matter. The personnummer pattern is the one
intended difference (see contracts/README.md): each side's is replaced by a placeholder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import xmlschema
from lxml import etree
from xmlschema.validators import XsdAnyElement, XsdComplexType, XsdElement, XsdGroup, XsdSimpleType

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
XS_NS = "http://www.w3.org/2001/XMLSchema"

SUBJECT_OF_CARE_ID_TYPE = "{urn:riv:crm:scheduling:1}SubjectOfCareIdType"
PNR_OURS = "[0-9]{8}[0-9pPtTfF][0-9]{3}"
PNR_OFFICIAL = "^[0-9]{8}[0-9pPtTfF][0-9]{3}$"
PNR_PLACEHOLDER = "<personnummer pattern>"

BOM = b"\xef\xbb\xbf"


def contract_files(root: Path) -> set[Path]:
    """Relative paths of the .xsd and .wsdl files of a contract tree (examples/docs excluded)."""
    return {p.relative_to(root) for p in root.rglob("*") if p.suffix in {".xsd", ".wsdl"}}


@cache
def load_schema(path: Path) -> xmlschema.XMLSchema10:
    return xmlschema.XMLSchema10(str(path))


# --- schema component model -> comparable text lines ---------------------------------------------------------


def occurs(min_occurs: int, max_occurs: int | None) -> str:
    return f"[{min_occurs}..{'*' if max_occurs is None else max_occurs}]"


@dataclass(frozen=True)
class ModelDescriber:
    """Renders an element's content model as indented lines, one per particle, in document order.

    `personnummer_pattern` is the SubjectOfCareIdType pattern expected on this side; it is replaced
    by a placeholder so that it is the only thing left out of the comparison. Any other pattern value
    (e.g. the anchored one in our rendition) stays in the text and makes the comparison fail.
    """

    personnummer_pattern: str

    def simple_type(self, st: XsdSimpleType) -> str:
        text = f"simple {st.name}"
        base = getattr(st, "base_type", None)
        if base is not None:
            text += f" base={base.name}"
        patterns = getattr(st, "patterns", None)
        if patterns is not None:
            regexps = list(patterns.regexps)
            if st.name == SUBJECT_OF_CARE_ID_TYPE and regexps == [self.personnummer_pattern]:
                regexps = [PNR_PLACEHOLDER]
            text += f" patterns={regexps}"
        enumeration = getattr(st, "enumeration", None)
        if enumeration:
            text += f" enumeration={list(enumeration)}"
        for name, facet in sorted(getattr(st, "facets", {}).items()):
            local = etree.QName(name).localname
            if local not in {"pattern", "enumeration"}:
                text += f" {local}={getattr(facet, 'value', facet)!r}"
        return text

    def element(self, el: XsdElement, depth: int = 0, seen: frozenset[str] = frozenset()) -> Iterator[str]:
        pad = "  " * depth
        head = f"{pad}element {el.name} {occurs(el.min_occurs, el.max_occurs)} {'local' if el.ref is None else 'ref'}"
        xsd_type = el.type
        if xsd_type.is_simple():
            yield f"{head} {self.simple_type(xsd_type)}"
            return
        assert isinstance(xsd_type, XsdComplexType)
        attributes = sorted(str(a) for a in xsd_type.attributes)
        yield f"{head} complex {xsd_type.name} mixed={xsd_type.mixed} attributes={attributes}"
        if xsd_type.has_simple_content():
            yield f"{pad}  simple-content {self.simple_type(xsd_type.content)}"
        elif xsd_type.name is not None and xsd_type.name in seen:
            yield f"{pad}  (recursive {xsd_type.name})"
        elif isinstance(xsd_type.content, XsdGroup):
            yield from self.group(xsd_type.content, depth + 1, seen | {str(xsd_type.name)})

    def group(self, group: XsdGroup, depth: int, seen: frozenset[str]) -> Iterator[str]:
        yield f"{'  ' * depth}{group.model} {occurs(group.min_occurs, group.max_occurs)}"
        for particle in group:
            if isinstance(particle, XsdElement):
                yield from self.element(particle, depth + 1, seen)
            elif isinstance(particle, XsdAnyElement):
                yield (
                    f"{'  ' * (depth + 1)}any namespace={sorted(particle.namespace)}"
                    f" processContents={particle.process_contents}"
                    f" {occurs(particle.min_occurs, particle.max_occurs)}"
                )
            elif isinstance(particle, XsdGroup):
                yield from self.group(particle, depth + 1, seen)
            else:  # pragma: no cover - nothing else occurs in these contracts
                raise AssertionError(f"unexpected particle {particle!r}")


def user_components(schema: xmlschema.XMLSchema10) -> tuple[list[str], list[str]]:
    """Global element and type names of a schema and everything it imports (XSD built-ins excluded)."""

    def ours(names: Any) -> list[str]:
        return sorted(n for n in names if not n.startswith("{http://www.w3.org/"))

    return ours(schema.maps.elements), ours(schema.maps.types)


# --- the personnummer type ------------------------------------------------------------------------------------


def assert_our_personnummer_pattern(personnummer: XsdSimpleType) -> None:
    assert list(personnummer.patterns.regexps) == [PNR_OURS]
    assert personnummer.is_valid("191212121212")
    assert personnummer.is_valid("19121212T121")
    assert not personnummer.is_valid("19121212121")
    assert not personnummer.is_valid("^191212121212$")


def assert_official_personnummer_pattern_is_defective(personnummer: XsdSimpleType) -> None:
    """Known defect: in XSD regexes ^ and $ are literals, so the official type rejects real numbers."""
    assert list(personnummer.patterns.regexps) == [PNR_OFFICIAL]
    assert not personnummer.is_valid("191212121212")
    assert personnummer.is_valid("^191212121212$")


# --- WSDL -----------------------------------------------------------------------------------------------------


def resolve(el: etree._Element, attr: str) -> str | None:
    """Value of a QName-valued attribute in Clark notation, resolved with the element's namespace map."""
    value = el.get(attr)
    if value is None:
        return None
    prefix, _, local = value.rpartition(":")
    return f"{{{el.nsmap[prefix or None]}}}{local}"


def soap_io(io: etree._Element | None) -> list[tuple[str, ...]]:
    if io is None:
        return []
    return [
        (
            etree.QName(child).localname,
            resolve(child, "message") or "",
            child.get("part", ""),
            child.get("parts", ""),
            child.get("use", ""),
        )
        for child in io
        if isinstance(child.tag, str) and etree.QName(child).namespace == SOAP_NS
    ]


def wsdl_summary(path: Path) -> dict[str, Any]:
    """Everything that matters on the wire, with prefixes resolved and documentation/formatting ignored."""
    root = etree.parse(str(path)).getroot()
    w = {"wsdl": WSDL_NS, "soap": SOAP_NS, "xs": XS_NS}
    return {
        "name": root.get("name"),
        "targetNamespace": root.get("targetNamespace"),
        "types": [
            (
                schema.get("targetNamespace"),
                [(imp.get("namespace"), imp.get("schemaLocation")) for imp in schema.findall("xs:import", w)],
            )
            for schema in root.findall("wsdl:types/xs:schema", w)
        ],
        "messages": [
            (
                msg.get("name"),
                [
                    (part.get("name"), resolve(part, "element"), resolve(part, "type"))
                    for part in msg.findall("wsdl:part", w)
                ],
            )
            for msg in root.findall("wsdl:message", w)
        ],
        "portTypes": [
            (
                pt.get("name"),
                [
                    (
                        op.get("name"),
                        resolve(op.find("wsdl:input", w), "message"),
                        resolve(op.find("wsdl:output", w), "message"),
                    )
                    for op in pt.findall("wsdl:operation", w)
                ],
            )
            for pt in root.findall("wsdl:portType", w)
        ],
        "bindings": [
            (
                b.get("name"),
                resolve(b, "type"),
                b.find("soap:binding", w).get("style"),
                b.find("soap:binding", w).get("transport"),
                [
                    (
                        op.get("name"),
                        op.find("soap:operation", w).get("soapAction"),
                        op.find("soap:operation", w).get("style"),
                        soap_io(op.find("wsdl:input", w)),
                        soap_io(op.find("wsdl:output", w)),
                    )
                    for op in b.findall("wsdl:operation", w)
                ],
            )
            for b in root.findall("wsdl:binding", w)
        ],
        "services": [
            (svc.get("name"), [(port.get("name"), resolve(port, "binding")) for port in svc.findall("wsdl:port", w)])
            for svc in root.findall("wsdl:service", w)
        ],
    }


def assert_rivtabp21_binding(
    summary: dict[str, Any], wsdl: Path, op: str, tns: str, soap_action: str, header_parts: Iterable[str]
) -> None:
    """The RIVTABP21 port type, binding (document/literal, the headers then the body), service and address."""
    assert summary["portTypes"] == [
        (f"{op}ResponderInterface", [(op, f"{{{tns}}}{op}Request", f"{{{tns}}}{op}Response")])
    ]
    assert summary["bindings"] == [
        (
            f"{op}ResponderBinding",
            f"{{{tns}}}{op}ResponderInterface",
            "document",
            "http://schemas.xmlsoap.org/soap/http",
            [
                (
                    op,
                    soap_action,
                    "document",
                    [
                        *(("header", f"{{{tns}}}{op}Request", part, "", "literal") for part in header_parts),
                        ("body", "", "", "parameters", "literal"),
                    ],
                    [("body", "", "", "", "literal")],
                )
            ],
        )
    ]
    assert summary["services"] == [
        (f"{op}ResponderService", [(f"{op}ResponderPort", f"{{{tns}}}{op}ResponderBinding")])
    ]
    address = etree.parse(str(wsdl)).getroot().find(f".//{{{SOAP_NS}}}address")
    assert address is not None
    assert address.get("location") == f"http://localhost/{op}/1/rivtabp21"


# --- files ----------------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copies(files: Iterable[Path], reference: Path, root: Path) -> list[str]:
    """The files (relative to root) that are byte-for-byte copies of a file under reference."""
    reference_hashes = {sha256(p) for p in reference.rglob("*") if p.is_file()}
    return [str(p.relative_to(root)) for p in files if sha256(p) in reference_hashes]


def assert_plain_text(path: Path) -> bytes:
    """UTF-8 without a BOM, no CR, no tab; returns the bytes."""
    data = path.read_bytes()
    assert not data.startswith(BOM), path
    assert b"\r" not in data and b"\t" not in data, path
    data.decode("utf-8")
    return data


def assert_rendition_header(path: Path, data: bytes) -> None:
    """Our XSDs and WSDLs start by saying they are a tidbok rendition, and quote attribute values with \"."""
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!--\n  tidbok rendition'), path
    assert b"='" not in data, f"{path}: attribute values must use double quotes"
