"""The purpose of an invitation: plain text, or DocBook in the subset crm:scheduling allows.

1177 renders `purpose` as DocBook when it is markup and shows it as text otherwise (TKB §3.9,
connection guide §5.12.1), so markup must be well-formed and use only article, info, title, para,
section, ulink and bibliography. It is parsed with a hardened lxml parser: no DTD, no entities, no
network. A DTD or entity declaration is refused before libxml2 sees it. The text is stored as it
was given; the SOAP layer entity-encodes it on the wire.
"""

from __future__ import annotations

import re
from typing import Literal

from lxml import etree

from producer.soap.hardened_xml import hardened_parser
from producer.staff.errors import StaffError

ALLOWED_ELEMENTS = frozenset({"article", "info", "title", "para", "section", "ulink", "bibliography"})
DOCBOOK_NS = "http://docbook.org/ns/docbook"  # DocBook 5.0; markup without a namespace is accepted too
LINK_SCHEMES = ("https://", "http://", "mailto:")

# Markup starts with a tag, a declaration or a comment ("<a", "<?xml", "<!--"); "<3" or "< 5 mg" is text.
_MARKUP_START = re.compile(r"\s*<[A-Za-z_:?!]")
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
# encoding: the text's own declaration cannot make us read it in another encoding
_PARSER = hardened_parser(encoding="utf-8")

PurposeKind = Literal["docbook", "text"]


def is_markup(text: str) -> bool:
    """Whether 1177 will read `text` as DocBook: it starts with markup (after white space)."""
    return _MARKUP_START.match(text) is not None


def docbook_problem(text: str) -> str | None:
    """Why `text` is not DocBook in the allowed subset, or None when it is.

    Names the first disallowed element in document order, so staff can find it."""
    if _DECLARATION.search(text):
        return "DTD and entity declarations are not allowed"
    try:
        root = etree.fromstring(text.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as error:
        line, column = error.position
        return f"is not well-formed XML ({error.msg.split(', line')[0]} at line {line}, column {column})"
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.doctype:
        return "DTD and entity declarations are not allowed"
    for node in root.iter():
        if isinstance(node, etree._Entity):
            return f"entity references are not allowed (&{node.name};)"
        if isinstance(node, etree._ProcessingInstruction):
            return f"processing instructions are not allowed (<?{node.target}?>)"
        if isinstance(node, etree._Comment):
            continue
        name = etree.QName(node)
        if name.namespace not in (None, DOCBOOK_NS) or name.localname not in ALLOWED_ELEMENTS:
            shown = f"{node.prefix}:{name.localname}" if node.prefix else name.localname
            return f"element <{shown}> is not allowed (only {', '.join(sorted(ALLOWED_ELEMENTS))})"
        if name.localname == "ulink" and not (node.get("url") or "").strip().lower().startswith(LINK_SCHEMES):
            return "element <ulink> needs a url that starts with https://, http:// or mailto:"
    return None


def check_purpose(text: str | None) -> PurposeKind:
    """An invitation's purpose is required (GetBookingDetails: mandatory when isInvitation); markup
    must be DocBook in the subset. Returns which of the two it is."""
    if text is None or not text.strip():
        raise StaffError("purpose", "an invitation needs a purpose: plain text or DocBook")
    if not is_markup(text):
        return "text"
    problem = docbook_problem(text)
    if problem:
        raise StaffError("purpose", f"DocBook {problem}")
    return "docbook"
