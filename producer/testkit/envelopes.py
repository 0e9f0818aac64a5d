"""Request envelopes for the collections, written from the contract's request plans (producer.soap.contract),
so each element lands in its namespace and in schema order, indented for people to read and edit.

Values are strings (already in a tool's variable syntax, e.g. ``{{slotStart}}``), lists for
repeated elements, dicts for complex ones; a field left out is omitted (TKB §3.7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from producer.soap.codec import escape_text
from producer.soap.contract import Interaction, TypePlan
from producer.soap.scheduling import HEADERS_NS, REGISTRY_NS

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
CORE = {"urn:riv:crm:scheduling:1": "core", "urn:riv:crm:scheduling:1.1": "core11"}


def _prefix(namespace: str) -> str:
    """Readable prefixes: req (the responder's :1), req11 (its :1.1 extension), core, core11."""
    if namespace in CORE:
        return CORE[namespace]
    return "req11" if namespace.endswith(":1.1") else "req"


def _split(qname: str) -> tuple[str, str]:
    namespace, local = qname[1:].split("}", 1)
    return namespace, local


def request_envelope(
    interaction: Interaction, logical_address: str, actor: tuple[str, str] | None, values: Mapping[str, Any]
) -> str:
    """The whole SOAP 1.1 envelope: LogicalAddress and Actor headers, then the request element."""
    used: dict[str, str] = {}
    lines: list[str] = []
    namespace, local = _split(interaction.request_qname)
    used[namespace] = _prefix(namespace)
    lines.append(f"    <{used[namespace]}:{local}>")
    _fields(interaction.request_plan, values, used, lines, depth=3, where=interaction.name)
    lines.append(f"    </{used[namespace]}:{local}>")
    declarations = "".join(f' xmlns:{prefix}="{ns}"' for ns, prefix in sorted(used.items(), key=lambda i: i[1]))
    headers = [f"    <itr:LogicalAddress>{escape_text(logical_address)}</itr:LogicalAddress>"]
    if actor is not None:
        headers += [
            "    <ih:Actor>",
            f"      <ih:actorId>{escape_text(actor[0])}</ih:actorId>",
            f"      <ih:actorType>{escape_text(actor[1])}</ih:actorType>",
            "    </ih:Actor>",
        ]
    return "\n".join(
        [
            f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:itr="{REGISTRY_NS}" xmlns:ih="{HEADERS_NS}"'
            f"{declarations}>",
            "  <soapenv:Header>",
            *headers,
            "  </soapenv:Header>",
            "  <soapenv:Body>",
            *lines,
            "  </soapenv:Body>",
            "</soapenv:Envelope>",
        ]
    )


def _fields(
    plan: TypePlan, values: Mapping[str, Any], used: dict[str, str], lines: list[str], depth: int, where: str
) -> None:
    unknown = set(values) - {f.key for f in plan.fields}
    if unknown:
        raise ValueError(f"{where}: the contract has no element {sorted(unknown)[0]!r} here")
    indent = "  " * depth
    for field in plan.fields:
        value = values.get(field.key)
        if value is None or value == "" or value == []:
            if field.required:
                raise ValueError(f"{where}: {field.key} is required")
            continue
        namespace, local = _split(field.qname)
        prefix = used.setdefault(namespace, _prefix(namespace))
        for item in value if isinstance(value, list) else [value]:
            if field.children is not None:
                lines.append(f"{indent}<{prefix}:{local}>")
                _fields(field.children, item, used, lines, depth + 1, f"{where}/{field.key}")
                lines.append(f"{indent}</{prefix}:{local}>")
            else:
                lines.append(f"{indent}<{prefix}:{local}>{escape_text(str(item))}</{prefix}:{local}>")
