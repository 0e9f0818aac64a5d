"""Set-up documents (YAML or JSON) as trees that remember where each value came from.

Values are kept as their source text, not as YAML's guesses: in YAML 1.1 ``08:00`` is the number
480, ``NO`` is false and ``010`` is 8. Each field is converted by the schema that knows what it
should be (setup.py), and every node carries its line and its path (``units[0].time_types[2]``),
so a problem can be reported by file, line and field. A document already parsed by someone else
(the HTTP API's JSON body) becomes the same tree, with paths but no lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import yaml


class DocumentError(ValueError):
    """The document cannot be read at all (syntax); line is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Node:
    """A mapping (dict of Node), a sequence (list of Node) or a scalar (text, or None for null)."""

    value: dict[str, Node] | list[Node] | str | None
    line: int | None
    path: str
    quoted: bool = False  # a quoted YAML/JSON string: never null, never a bool


def parse_text(text: str, fmt: str) -> Node:
    """``fmt`` is "yaml" or "json". JSON is read through YAML's composer too (it gives lines); a
    JSON file YAML cannot read (e.g. tabs) is read by the json module, without lines."""
    if fmt == "json":
        try:
            parsed = json.loads(text)  # JSON's own rules first: YAML would accept more
        except json.JSONDecodeError as exc:
            raise DocumentError(f"not valid JSON: {exc.msg}", exc.lineno) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        if fmt == "json":
            return from_python(parsed)
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError(f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
    if root is None:
        return Node({}, 1, "")
    return _from_yaml(root, "")


def _from_yaml(node: yaml.Node, path: str) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Node] = {}
        for key, value in node.value:
            name = str(key.value)
            if name in out:
                raise DocumentError(f"{_join(path, name)} is given twice", key.start_mark.line + 1)
            out[name] = _from_yaml(value, _join(path, name))
        return Node(out, line, path)
    if isinstance(node, yaml.SequenceNode):
        return Node([_from_yaml(item, f"{path}[{i}]") for i, item in enumerate(node.value)], line, path)
    quoted = bool(node.style)  # '"', "'", '|' or '>' : a string as written
    is_null = not quoted and node.tag == "tag:yaml.org,2002:null"
    return Node(None if is_null else node.value, line, path, quoted)


def from_python(value: Any, path: str = "") -> Node:
    """A tree from already-parsed JSON-like data (dicts, lists, str, numbers, bools, None, dates)."""
    if isinstance(value, dict):
        return Node({str(k): from_python(v, _join(path, str(k))) for k, v in value.items()}, None, path)
    if isinstance(value, list | tuple):
        return Node([from_python(v, f"{path}[{i}]") for i, v in enumerate(value)], None, path)
    if value is None:
        return Node(None, None, path)
    if isinstance(value, bool):
        return Node("true" if value else "false", None, path)
    if isinstance(value, datetime):
        return Node(value.isoformat(sep=" "), None, path, quoted=True)
    if isinstance(value, date):
        return Node(value.isoformat(), None, path, quoted=True)
    return Node(str(value), None, path, quoted=isinstance(value, str))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
