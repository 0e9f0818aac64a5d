"""Personnummer out of what the kit writes: recorded files (as replayable placeholders) and replay's lines.

A recorded element that holds a personnummer (subject_of_care, the Actor's actorId,
registeredResidentIdentification) gets the placeholder ``${pnr_YYYYMMDD}``, named by the birth date
as the logs mask it (19121212-****), so `tidbok fixtures replay --vars` can give the number back.
Two residents born the same day share a placeholder. Any other text is masked as the logs are.
"""

from __future__ import annotations

import re

from lxml import etree

from producer.soap.hardened_xml import hardened_parser
from producer.sweden.identifiers import mask_personnummer_in_text

PERSONNUMMER_ELEMENTS = frozenset({"subject_of_care", "actorId", "registeredResidentIdentification"})
_SCHEMA_FORM = re.compile(r"[0-9]{8}[0-9pPtTfF][0-9]{3}")
# The schema form standing alone in text (mask_personnummer_in_text only knows numbers from 19/20).
_BARE = re.compile(r"(?<![0-9A-Za-z])([0-9]{8})[0-9pPtTfF][0-9]{3}(?![0-9A-Za-z])")
_PARSER = hardened_parser()


def mask_text(text: str) -> str:
    """Every personnummer in `text` masked to its birth date: 19121212-****."""
    return _BARE.sub(lambda m: f"{m.group(1)}-****", mask_personnummer_in_text(text))


def placeholder(number: str) -> str:
    return "${pnr_" + number[:8] + "}"


def mask_document(data: bytes) -> bytes:
    """A recorded message with its personnummer masked: placeholders in the elements that carry
    them, the logs' masking in all other text. A message that does not parse is masked as text."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError:
        return mask_text(data.decode("utf-8", "replace")).encode()
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        if node.text and node.text.strip():
            value = node.text.strip()
            local = etree.QName(node).localname
            if local in PERSONNUMMER_ELEMENTS and _SCHEMA_FORM.fullmatch(value):
                node.text = placeholder(value)
            else:
                node.text = mask_text(node.text)
        if node.tail and node.tail.strip():
            node.tail = mask_text(node.tail)
        for name, value in node.attrib.items():
            node.set(name, mask_text(value))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
