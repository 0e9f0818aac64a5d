"""Comparing a new answer with the recorded one: the Body's element, by namespace and local name, text
stripped, children in order; prefixes, white space between elements, comments and the SOAP headers
do not count. A faultcode compares by its local part (soap:Client = soapenv:Client).
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree


class Ignore:
    """What may differ: local names (anywhere) and paths of local names ending at an element."""

    def __init__(self, rules: Iterable[str]) -> None:
        self.names = {rule for rule in rules if "/" not in rule}
        self.paths = [tuple(rule.strip("/").split("/")) for rule in rules if "/" in rule]

    def __call__(self, path: tuple[str, ...]) -> bool:
        if path[-1] in self.names:
            return True
        return any(path[-len(rule) :] == rule for rule in self.paths if len(rule) <= len(path))


def _text(element: etree._Element) -> str:
    return (element.text or "").strip()


def _children(element: etree._Element) -> list[etree._Element]:
    return [child for child in element if isinstance(child.tag, str)]


def _show(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def first_difference(recorded: etree._Element, got: etree._Element, ignore: Ignore) -> str | None:
    """Where the two first differ, as ``path: recorded …, got …``; None when they are the same."""
    return _compare(recorded, got, (etree.QName(recorded).localname,), ignore)


def _compare(recorded: etree._Element, got: etree._Element, path: tuple[str, ...], ignore: Ignore) -> str | None:
    where = "/".join(path)
    if recorded.tag != got.tag:
        return f"{where}: recorded element {recorded.tag}, got {got.tag}"
    if ignore(path):
        return None
    mine, theirs = _text(recorded), _text(got)
    if path[-1] == "faultcode":
        mine, theirs = mine.rpartition(":")[2], theirs.rpartition(":")[2]
    if mine != theirs:
        return f"{where}: recorded {_show(mine)}, got {_show(theirs)}"
    old, new = _children(recorded), _children(got)
    i = j = 0
    while i < len(old) or j < len(new):
        if i < len(old) and j < len(new) and old[i].tag == new[j].tag:
            found = _compare(old[i], new[j], (*path, etree.QName(old[i]).localname), ignore)
            if found:
                return found
            i, j = i + 1, j + 1
            continue
        later = i < len(old) and any(n.tag == old[i].tag for n in new[j:])
        if i < len(old) and not later:  # recorded, and not in the rest of the answer
            name = etree.QName(old[i]).localname
            i += 1
            if not ignore((*path, name)):
                return f"{where}/{name}: recorded {_show(_text(old[i - 1]))}, missing in the answer"
            continue
        name = etree.QName(new[j]).localname  # in the answer, not recorded here
        j += 1
        if not ignore((*path, name)):
            return f"{where}/{name}: not recorded, in the answer {_show(_text(new[j - 1]))}"
    return None
