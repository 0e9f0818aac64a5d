"""The crm:scheduling 1.1 contract as the engine needs it, derived once at start-up from the XSDs.

For each interaction: the qualified names of its request and response roots, a libxml2 schema that
validates the request body, and the walker plans (child QName -> key, simple kind, cardinality, in
schema order) that the codec uses to read requests and write responses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import xmlschema
from lxml import etree

from producer.config import CONTRACTS_DIR

SCHEDULING_DIR = "crm_scheduling_1.1"
INTERACTIONS = (
    "GetAvailableDates",
    "GetAvailableTimeslots",
    "MakeBooking",
    "UpdateBooking",
    "CancelBooking",
    "GetBookingDetails",
    "GetSubjectOfCareSchedule",
    "GetAllHealthcareFacilities",
    "GetAllPerformers",
    "GetAllTimeTypes",
    "GetAllCareTypes",
)
REGISTRY_NS = "urn:riv:itintegration:registry:1"
HEADERS_NS = "urn:riv:interoperability:headers:1"
LOGICAL_ADDRESS = f"{{{REGISTRY_NS}}}LogicalAddress"
ACTOR = f"{{{HEADERS_NS}}}Actor"


def responder_namespace(interaction: str) -> str:
    return f"urn:riv:crm:scheduling:{interaction}Responder:1"


@dataclass(frozen=True)
class Field:
    """One element of a complex type's sequence."""

    qname: str  # Clark notation, {namespace}local
    key: str  # the local name: unique within each crm:scheduling type
    kind: str  # "str", "bool" or "complex"
    many: bool
    required: bool
    children: TypePlan | None


@dataclass(frozen=True)
class TypePlan:
    """The sequence of a complex type, in schema order, and an index by QName for reading."""

    fields: tuple[Field, ...]

    @cached_property
    def by_qname(self) -> dict[str, Field]:
        return {f.qname: f for f in self.fields}

    def namespaces(self) -> set[str]:
        found: set[str] = set()
        for f in self.fields:
            found.add(f.qname[1:].split("}", 1)[0])
            if f.children:
                found |= f.children.namespaces()
        return found


def _plan(group: xmlschema.validators.XsdGroup, seen: dict[str, TypePlan]) -> TypePlan:
    fields: list[Field] = []
    for particle in group.iter_model():
        if isinstance(particle, xmlschema.validators.XsdAnyElement):
            continue  # xs:any ##other: unknown extensions are accepted and ignored
        xsd_type = particle.type
        if xsd_type.is_simple():
            kind, children = ("bool" if xsd_type.primitive_type.local_name == "boolean" else "str"), None
        else:
            kind = "complex"
            key = xsd_type.name or particle.name
            if key not in seen:
                seen[key] = _plan(xsd_type.content, seen)
            children = seen[key]
        fields.append(
            Field(
                qname=particle.name,
                key=particle.local_name,
                kind=kind,
                many=particle.max_occurs is None or particle.max_occurs > 1,
                required=particle.min_occurs > 0,
                children=children,
            )
        )
    return TypePlan(tuple(fields))


@dataclass(frozen=True)
class Interaction:
    name: str
    directory: Path
    request_qname: str
    response_qname: str
    request_plan: TypePlan
    response_plan: TypePlan
    validator: etree.XMLSchema

    @property
    def wsdl_path(self) -> Path:
        return self.directory / f"{self.name}Interaction_1.1_RIVTABP21.wsdl"


@dataclass(frozen=True)
class Contract:
    interactions: dict[str, Interaction]
    by_request_qname: dict[str, Interaction]
    actor_validator: etree.XMLSchema
    root: Path

    def file_for(self, relative: str) -> Path | None:
        """A contract file served next to the WSDLs, or None if the path leaves the contract tree."""
        candidate = (self.root / relative).resolve()
        if self.root.resolve() not in candidate.parents or not candidate.is_file():
            return None
        return candidate


def _libxml2_schema(path: Path) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(path), parser))


def load_contract(contracts_dir: Path = CONTRACTS_DIR) -> Contract:
    """Compile every interaction once; cheap enough for start-up, far too slow per request."""
    root = contracts_dir / SCHEDULING_DIR
    interactions: dict[str, Interaction] = {}
    seen: dict[str, TypePlan] = {}
    for name in INTERACTIONS:
        directory = root / "interactions" / f"{name}Interaction"
        xsd = directory / f"{name}Responder_1.1.xsd"
        model = xmlschema.XMLSchema10(str(xsd))
        request = model.elements[name]
        response = model.elements[f"{name}Response"]
        interactions[name] = Interaction(
            name=name,
            directory=directory,
            request_qname=request.name,
            response_qname=response.name,
            request_plan=_plan(request.type.content, seen),
            response_plan=_plan(response.type.content, seen),
            validator=_libxml2_schema(xsd),
        )
    actor = _libxml2_schema(root / "core_components" / "interoperability_headers_1.0.xsd")
    return Contract(
        interactions=interactions,
        by_request_qname={i.request_qname: i for i in interactions.values()},
        actor_validator=actor,
        root=root,
    )
