"""The one way tidbok parses XML it did not write: no DTD, no entity expansion, no network, no huge trees."""

from __future__ import annotations

from typing import Any

from lxml import etree


def hardened_parser(**options: Any) -> etree.XMLParser:
    """An lxml parser that loads no DTD, expands no entity and fetches nothing; `options` add to that."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        **options,
    )
