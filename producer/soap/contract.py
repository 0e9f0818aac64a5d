"""The crm:scheduling 1.1 contract as the engine needs it, derived once at start-up from the XSDs.

For each interaction: the qualified names of its request and response roots, a libxml2 schema that
validates the request body, and the walker plans (child QName -> key, simple kind, cardinality, in
schema order) that the codec uses to read requests and write responses. load_interaction works for
any RIV-TA responder XSD, so the EI stub builds its contract with the same engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import xmlschema
from lxml import etree

from producer.soap.scheduling import CONTRACTS_DIR, INTERACTIONS, SCHEDULING_DIR


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


def plan_for(group: xmlschema.validators.XsdGroup, seen: dict[str, TypePlan]) -> TypePlan:
    """The walker plan of a content group; `seen` shares one plan per named type across interactions."""
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
                seen[key] = plan_for(xsd_type.content, seen)
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
    wsdl_path: Path  # the file name carries the domain's version, so it is given, not derived


@dataclass(frozen=True)
class Contract:
    interactions: dict[str, Interaction]
    by_request_qname: dict[str, Interaction]
    actor_validator: etree.XMLSchema
    root: Path


def contract_file(root: Path, relative: str) -> Path | None:
    """A file of the contract tree at root, or None if the path leaves that tree or is no file."""
    candidate = (root / relative).resolve()
    if root.resolve() not in candidate.parents or not candidate.is_file():
        return None
    return candidate


def compile_schema(path: Path) -> etree.XMLSchema:
    """A libxml2 validator for an XSD, never fetching anything over the network."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(path), parser))


def load_interaction(
    directory: Path, name: str, xsd_name: str, wsdl_name: str, seen: dict[str, TypePlan]
) -> Interaction:
    """Plans and validator of one request/response interaction from its responder XSD, for any RIV-TA domain."""
    xsd = directory / xsd_name
    model = xmlschema.XMLSchema10(str(xsd))
    request = model.elements[name]
    response = model.elements[f"{name}Response"]
    return Interaction(
        name=name,
        directory=directory,
        request_qname=request.name,
        response_qname=response.name,
        request_plan=plan_for(request.type.content, seen),
        response_plan=plan_for(response.type.content, seen),
        validator=compile_schema(xsd),
        wsdl_path=directory / wsdl_name,
    )


def load_interactions(root: Path, names: Iterable[str], version: str) -> dict[str, Interaction]:
    """Every named interaction of a contract laid out as RIV-TA releases are:
    interactions/<Name>Interaction/<Name>Responder_<version>.xsd and <Name>Interaction_<version>_RIVTABP21.wsdl."""
    seen: dict[str, TypePlan] = {}
    return {
        name: load_interaction(
            root / "interactions" / f"{name}Interaction",
            name,
            f"{name}Responder_{version}.xsd",
            f"{name}Interaction_{version}_RIVTABP21.wsdl",
            seen,
        )
        for name in names
    }


def load_contract(contracts_dir: Path = CONTRACTS_DIR) -> Contract:
    """Compile every interaction once; cheap enough for start-up, far too slow per request."""
    root = contracts_dir / SCHEDULING_DIR
    interactions = load_interactions(root, INTERACTIONS, "1.1")
    actor = compile_schema(root / "core_components" / "interoperability_headers_1.0.xsd")
    return Contract(
        interactions=interactions,
        by_request_qname={i.request_qname: i for i in interactions.values()},
        actor_validator=actor,
        root=root,
    )
