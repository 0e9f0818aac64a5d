"""Fixture files: which are crm:scheduling 1.1 request envelopes, which answer pairs with which, and
the mark our own recordings carry.

Conventions read (../shared/recorded-fixtures, see its PROVENANCE.md, and ours):

- every ``*.xml`` below the folder, in the order of their paths (our recordings' names start with
  the time they were made, so a recorded flow replays in order);
- a file is a request fixture when it is a SOAP 1.1 envelope whose Body holds one of the eleven
  crm:scheduling 1.1 request elements (whatever its name says); everything else is listed as not
  sent, with the reason;
- a request's recorded answer is the file in the same folder whose name has the last "request"
  replaced by "response" (``…__request.xml`` / ``…__response.xml``; ``Request`` / ``Response``);
- our recordings (producer.testkit.record) are named
  ``<UTC time>-<process>-<n>-<Interaction>_v1.1-envelope__request.xml`` and ``…__response.xml``,
  and the request carries a comment ``<!-- tidbok-record … demo-week=YYYY-MM-DD … -->``: the Monday
  of the demo week they were recorded against, from which replay shifts their dates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from lxml import etree

from producer.soap.hardened_xml import hardened_parser
from producer.soap.scheduling import INTERACTIONS, responder_namespace

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ENVELOPE = f"{{{SOAP_ENV}}}Envelope"
BODY = f"{{{SOAP_ENV}}}Body"
FAULT = f"{{{SOAP_ENV}}}Fault"
REQUEST_ROOTS = {f"{{{responder_namespace(name)}}}{name}": name for name in INTERACTIONS}
RECORD_MARK = "tidbok-record"
_MARK_WEEK = re.compile(r"\bdemo-week=([0-9]{4}-[0-9]{2}-[0-9]{2})\b")
_REQUEST_WORD = re.compile(r"(request)", re.IGNORECASE)
PARSER = hardened_parser()


@dataclass(frozen=True)
class Fixture:
    """One file found: a request to send (interaction set) or a file not sent (skipped says why)."""

    path: Path
    name: str  # relative to the folder, with "/"
    interaction: str | None = None
    answer: Path | None = None  # the paired recorded answer
    demo_week: date | None = None  # our recordings: the Monday of the demo week they were made against
    skipped: str | None = None


def body_element(root: etree._Element) -> etree._Element | None:
    """The first element in a SOAP 1.1 envelope's Body, or None."""
    if root.tag != ENVELOPE:
        return None
    body = root.find(BODY)
    if body is None:
        return None
    return next((child for child in body if isinstance(child.tag, str)), None)


def answer_name(request_name: str) -> str | None:
    """The paired answer's file name: the last "request" replaced by "response", case kept."""
    found = list(_REQUEST_WORD.finditer(request_name))
    if not found:
        return None
    match = found[-1]
    word = match.group(1)
    replacement = "RESPONSE" if word.isupper() else "Response" if word[0].isupper() else "response"
    return request_name[: match.start()] + replacement + request_name[match.end() :]


def demo_week(root: etree._Element) -> date | None:
    """The demo week a recording of ours names in its mark (a comment before or in the envelope)."""
    comments = [*root.itersiblings(preceding=True), *root.iter(etree.Comment)]
    for comment in comments:
        if isinstance(comment, etree._Comment) and RECORD_MARK in (comment.text or ""):
            found = _MARK_WEEK.search(comment.text or "")
            if found:
                try:
                    return date.fromisoformat(found.group(1))
                except ValueError:
                    return None
    return None


def find(directory: Path) -> list[Fixture]:
    """Every ``*.xml`` below `directory` in path order, answers paired with their requests (and not
    listed on their own)."""
    paths = sorted(
        (p for p in directory.rglob("*.xml") if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.relative_to(directory).as_posix(),
    )
    found = {path: _classify(directory, path) for path in paths}
    paired = {f.answer for f in found.values() if f.answer is not None}
    return [fixture for path, fixture in found.items() if path not in paired]


def _classify(directory: Path, path: Path) -> Fixture:
    name = path.relative_to(directory).as_posix()
    try:
        root = etree.parse(str(path), PARSER).getroot()
    except (etree.XMLSyntaxError, OSError) as exc:
        return Fixture(path, name, skipped=f"not well-formed XML ({_short(exc)})")
    first = body_element(root)
    if root.tag != ENVELOPE:
        what = "a request payload" if root.tag in REQUEST_ROOTS else f"<{etree.QName(root).localname}>"
        return Fixture(path, name, skipped=f"{what} without a SOAP 1.1 envelope")
    if first is None:
        return Fixture(path, name, skipped="a SOAP envelope with an empty Body")
    interaction = REQUEST_ROOTS.get(first.tag)
    if interaction is None:
        qname = etree.QName(first)
        if first.tag == FAULT:
            what = "a SOAP fault"
        elif qname.localname.endswith("Response"):
            what = f"a {qname.localname}"
        else:
            what = f"{qname.localname} of {qname.namespace or 'no namespace'}"
        return Fixture(path, name, skipped=f"{what}, not a crm:scheduling 1.1 request")
    answer = None
    paired_name = answer_name(path.name)
    if paired_name is not None and paired_name != path.name and (path.parent / paired_name).is_file():
        answer = path.parent / paired_name
    return Fixture(path, name, interaction, answer, demo_week(root))


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]
