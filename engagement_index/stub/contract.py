"""The EI contract (contracts/engagementindex_1.0) in the form producer's SOAP engine uses.

producer.contract only loads crm:scheduling, so this builds the same things for any responder XSD:
walker plans with producer.contract._plan and a libxml2 validator compiled once. A shared version
would be `load_interaction(directory, name, xsd, wsdl, seen) -> Interaction` in producer.contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xmlschema
from lxml import etree

from producer.codec import Decoded
from producer.config import CONTRACTS_DIR
from producer.contract import TypePlan, _libxml2_schema, _plan

EI_DIR = "engagementindex_1.0"
INTERACTIONS = ("Update", "FindContent")
EI_NS = "urn:riv:itintegration:engagementindex:1"


@dataclass(frozen=True)
class EiInteraction:
    """Like producer.contract.Interaction, plus the WSDL text (its file name differs per domain)."""

    name: str
    request_qname: str
    response_qname: str
    request_plan: TypePlan
    response_plan: TypePlan
    validator: etree.XMLSchema
    wsdl_text: str


@dataclass(frozen=True)
class EiContract:
    root: Path
    interactions: dict[str, EiInteraction]

    def file_for(self, relative: str) -> Path | None:
        """A contract file served next to the WSDLs, or None if the path leaves the contract tree."""
        candidate = (self.root / relative).resolve()
        if self.root.resolve() not in candidate.parents or not candidate.is_file():
            return None
        return candidate


def load_interaction(
    directory: Path, name: str, xsd_name: str, wsdl_name: str, seen: dict[str, TypePlan]
) -> EiInteraction:
    """Plans, validator and WSDL of one request/response interaction, from its responder XSD."""
    xsd = directory / xsd_name
    model = xmlschema.XMLSchema10(str(xsd))
    request = model.elements[name]
    response = model.elements[f"{name}Response"]
    return EiInteraction(
        name=name,
        request_qname=request.name,
        response_qname=response.name,
        request_plan=_plan(request.type.content, seen),
        response_plan=_plan(response.type.content, seen),
        validator=_libxml2_schema(xsd),
        wsdl_text=(directory / wsdl_name).read_text(encoding="utf-8"),
    )


def load_ei_contract(contracts_dir: Path = CONTRACTS_DIR) -> EiContract:
    root = contracts_dir / EI_DIR
    seen: dict[str, TypePlan] = {}
    interactions = {
        name: load_interaction(
            root / "interactions" / f"{name}Interaction",
            name,
            f"{name}Responder_1.0.xsd",
            f"{name}Interaction_1.0_RIVTABP21.wsdl",
            seen,
        )
        for name in INTERACTIONS
    }
    return EiContract(root=root, interactions=interactions)


def decode_verbatim(element: etree._Element, plan: TypePlan) -> Decoded:
    """producer.codec.decode without stripping text: the EI rules must see leading/trailing white space
    (EI004), which decode() removes. Shared version: a `strip: bool = True` parameter on decode()."""
    out: Decoded = {}
    index = plan.by_qname
    for child in element:
        field = index.get(child.tag) if isinstance(child.tag, str) else None
        if field is None:
            continue
        value: Any
        if field.children is not None:
            value = decode_verbatim(child, field.children)
        elif field.kind == "bool":
            value = (child.text or "").strip() in ("true", "1")
        else:
            value = child.text or ""
        if field.many:
            out.setdefault(field.key, []).append(value)
        else:
            out[field.key] = value
    return out
