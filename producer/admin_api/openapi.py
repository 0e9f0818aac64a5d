"""The OpenAPI 3.1 description of the /admin API, generated from the route declarations."""

from __future__ import annotations

import re
from typing import Any

from producer.admin_api.route import Route

ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "field": {"type": ["string", "null"], "description": "the field the error is about"},
                "details": {},
            },
            "required": ["message", "field"],
        }
    },
}


def describe(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{(\w+)\}", route.path)
        ] + [
            {"name": name, "in": "query", "required": required, "description": text, "schema": {"type": "string"}}
            for name, text, required in route.query
        ]
        operation: dict[str, Any] = {
            "summary": route.summary,
            "parameters": parameters,
            "responses": {
                str(route.success): {
                    "description": "done",
                    "content": {"application/json": {"schema": route.response}},
                },
                "400": _error("the request names a field that is wrong"),
                "401": _error("no valid API token"),
                "403": _error("the token does not cover this care unit"),
            },
        }
        if route.request_body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {media: {"schema": schema} for media, schema in route.request_body.items()},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tidbok administration API",
            "version": "1",
            "description": "Load schedules, send invitations and act on bookings on a resident's behalf. "
            "Every response echoes X-Request-ID (generated when missing) and X-Context-ID.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _error(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
