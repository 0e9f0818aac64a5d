"""What an /admin endpoint is declared with (method, path, summary, schemas) and what its handler
receives and raises: the declaration drives both the routing (producer.admin_api.app) and the
OpenAPI description (producer.admin_api.openapi)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from producer.admin_api.auth import Grant
from producer.platform.settings import Settings


class ApiError(Exception):
    """An answer other than success: status, a message for people, and the field it is about."""

    def __init__(self, status: int, message: str, field: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.details = status, message, field, details


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    grant: Grant
    settings: Settings

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"The body is not valid JSON: {exc}", "body") from None
        if not isinstance(value, dict):
            raise ApiError(400, "The body must be a JSON object", "body")
        return value

    def require_unit(self, unit: str) -> None:
        if not self.grant.covers(unit):
            raise ApiError(403, f"This token does not cover care unit {unit}", "unit")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


Handler = Callable[[Request, psycopg.Connection], tuple[int, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # with {name} placeholders, e.g. /admin/units/{unit}/bookings
    handler: Handler
    summary: str
    request_body: dict[str, Any] | None = None  # OpenAPI requestBody content, by media type
    response: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    query: tuple[tuple[str, str, bool], ...] = ()  # (name, description, required)
    success: int = 200

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "/?$")
