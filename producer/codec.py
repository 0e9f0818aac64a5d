"""Read request bodies into dicts and write response bodies from dicts, both driven by the plans.

Reading trusts that libxml2 has validated the body already; it only maps QNames to keys.
Writing is a string writer in schema order: 3x faster than building lxml trees, so it owns
escaping and drops characters XML 1.0 cannot carry. Optional fields that are None, "" or []
are omitted completely (TKB §3.7: no empty tags).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

from producer.contract import Field, TypePlan

Decoded = dict[str, Any]

_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def decode(element: etree._Element, plan: TypePlan) -> Decoded:
    """Map a validated element's children to {local name: value}; unknown (xs:any) children are ignored."""
    out: Decoded = {}
    index = plan.by_qname
    for child in element:
        field = index.get(child.tag) if isinstance(child.tag, str) else None
        if field is None:
            continue
        if field.children is not None:
            value: Any = decode(child, field.children)
        elif field.kind == "bool":
            value = (child.text or "").strip() in ("true", "1")
        else:
            value = (child.text or "").strip()
        if field.many:
            out.setdefault(field.key, []).append(value)
        else:
            out[field.key] = value
    return out


def escape_text(value: str) -> str:
    """Escape for element content and drop what XML 1.0 cannot represent."""
    if _ILLEGAL_XML.search(value):
        value = _ILLEGAL_XML.sub("", value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


@dataclass(frozen=True)
class _Slot:
    key: str
    open: str
    close: str
    kind: str
    many: bool
    required: bool
    children: tuple[_Slot, ...] | None


class MissingField(ValueError):
    """A handler left out a field the schema requires: a programming error, never the caller's."""


class ResponseWriter:
    """Writes one interaction's response root with fixed prefixes declared once on the root."""

    def __init__(self, root_qname: str, plan: TypePlan) -> None:
        namespaces = sorted(plan.namespaces() | {root_qname[1:].split("}", 1)[0]})
        self._prefix = {ns: f"ns{i}" for i, ns in enumerate(namespaces)}
        declarations = "".join(f' xmlns:{p}="{ns}"' for ns, p in self._prefix.items())
        root_tag = self._tag(root_qname)
        self._open_root = f"<{root_tag}{declarations}>"
        self._close_root = f"</{root_tag}>"
        self._slots = self._compile(plan, {})

    def _tag(self, qname: str) -> str:
        ns, local = qname[1:].split("}", 1)
        return f"{self._prefix[ns]}:{local}"

    def _compile(self, plan: TypePlan, memo: dict[int, tuple[_Slot, ...]]) -> tuple[_Slot, ...]:
        if id(plan) in memo:
            return memo[id(plan)]
        slots = tuple(self._slot(f, memo) for f in plan.fields)
        memo[id(plan)] = slots
        return slots

    def _slot(self, field: Field, memo: dict[int, tuple[_Slot, ...]]) -> _Slot:
        tag = self._tag(field.qname)
        children = self._compile(field.children, memo) if field.children is not None else None
        return _Slot(field.key, f"<{tag}>", f"</{tag}>", field.kind, field.many, field.required, children)

    def write(self, data: Decoded) -> str:
        parts = [self._open_root]
        self._write(parts, data, self._slots)
        parts.append(self._close_root)
        return "".join(parts)

    def _write(self, parts: list[str], data: Decoded, slots: tuple[_Slot, ...]) -> None:
        for slot in slots:
            value = data.get(slot.key)
            if value is None or value == "" or value == []:
                if slot.required:
                    raise MissingField(slot.key)
                continue
            for item in value if slot.many else (value,):
                parts.append(slot.open)
                if slot.children is not None:
                    self._write(parts, item, slot.children)
                elif slot.kind == "bool":
                    parts.append("true" if item else "false")
                else:
                    parts.append(escape_text(str(item)))
                parts.append(slot.close)
