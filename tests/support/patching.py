"""The one known defect of the official contracts, patched in memory as a core XSD is loaded.

Both official core XSDs (crm:scheduling 1.1 and engagementindex 1.0) declare the personnummer type
with the pattern ``^[0-9]{8}[0-9pPtTfF][0-9]{3}$``. XSD regular expressions are implicitly anchored
and ``^``/``$`` are literal characters there, so the published pattern rejects every real
personnummer. The official files are never copied or modified: libxml2 (through a resolver) and
zeep (through a transport) are handed the patched text instead of the file's.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from lxml import etree
from zeep.transports import Transport

BROKEN_PATTERN = b'<xs:pattern value="^[0-9]{8}[0-9pPtTfF][0-9]{3}$"/>'
FIXED_PATTERN = b'<xs:pattern value="[0-9]{8}[0-9pPtTfF][0-9]{3}"/>'


class PatchedCore:
    """One core XSD and its patched text: the official file's, or our own rendition's (``defective``
    False: contracts/ has the pattern right already, so its text is used as it is)."""

    def __init__(self, path: Path, defective: bool = True) -> None:
        self.path = path
        self.defective = defective

    def patch(self, content: bytes) -> bytes:
        """Fix the personnummer pattern; fail loudly if the official text is not what we expect."""
        if not self.defective:
            return content
        if content.count(BROKEN_PATTERN) != 1:
            raise RuntimeError(
                f"{self.path.name}: expected exactly one {BROKEN_PATTERN.decode()!r} to patch;"
                " the official file changed?"
            )
        return content.replace(BROKEN_PATTERN, FIXED_PATTERN)

    @cached_property
    def content(self) -> bytes:
        return self.patch(self.path.read_bytes())

    def is_it(self, url: str) -> bool:
        """True if a URL/path (as zeep or libxml2 spell it, possibly with ../ segments) is this XSD."""
        path = unquote(urlsplit(url).path) if "://" in url else url
        try:
            return Path(path).resolve() == self.path.resolve()
        except OSError:
            return False


class PatchedCoreResolver(etree.Resolver):
    """Serves the patched core XSD from memory; libxml2 reads every other file from disk."""

    def __init__(self, core: PatchedCore) -> None:
        super().__init__()
        self.core = core

    def resolve(self, system_url: str, public_id: str | None, context: Any) -> Any:
        if self.core.is_it(system_url):
            # base_url keeps the core XSD's own relative imports resolvable.
            return self.resolve_string(self.core.content, context, base_url=system_url)
        return None


def patched_parser(core: PatchedCore) -> etree.XMLParser:
    """A parser for the official schemas that sees the patched core XSD."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    parser.resolvers.add(PatchedCoreResolver(core))
    return parser


class CorePatchingTransport(Transport):
    """zeep reads the official files through load(); the core XSD is patched as it passes by.

    Subclasses name their contract's core XSD (``core``)."""

    core: PatchedCore

    def load(self, url: str) -> bytes:
        return self.core.content if self.core.is_it(url) else super().load(url)
