"""POST /admin/load: the loader (producer.loading) over HTTP, with the same report as the CLI.

A load can touch any unit a document or file names, so it needs a token for all units.
"""

from __future__ import annotations

from typing import Any

import psycopg

from producer.admin_api.route import ApiError, Request, Route
from producer.loading import Options, Source, load

MEDIA = {
    "application/json": "json",
    "application/yaml": "yaml",
    "application/x-yaml": "yaml",
    "text/yaml": "yaml",
    "text/csv": "csv",
}


def load_route(request: Request, conn: psycopg.Connection) -> tuple[int, Any]:
    if not request.grant.all_units:
        raise ApiError(403, "Loading can touch any unit: it needs a token for all units", "Authorization")
    kind = MEDIA.get(request.content_type)
    if kind is None:
        raise ApiError(415, f"Send {', '.join(sorted(MEDIA))}, not {request.content_type or 'no content type'}",
                       "Content-Type")  # fmt: skip
    if kind == "csv":
        source = Source.csv("request.csv", request.body)
    else:
        try:
            text = request.body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ApiError(400, "The body is not UTF-8", "body") from None
        source = Source.setup_text(f"request.{kind}", text, kind)
    dry_run = request.query.get("dry_run", "false").lower() in ("1", "true", "yes")
    add_only = request.query.get("add_only", "false").lower() in ("1", "true", "yes")
    report = load(conn, [source], Options(dry_run=dry_run, add_only=add_only))
    return (200 if report.ok else 422), report.as_dict()


ROUTES = [
    Route(
        "POST",
        "/admin/load",
        load_route,
        "Load a set-up document (YAML/JSON) or a slot list (CSV); 422 with the problems when refused",
        {media: {"type": "string"} for media in MEDIA},
        query=(
            ("dry_run", "true: report what would change, write nothing", False),
            ("add_only", "true: create and change slots, remove none", False),
        ),
    )
]
