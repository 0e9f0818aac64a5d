"""The one error shape of /admin: `{"error": {"message", "field", "details"?}}` with its status."""

from __future__ import annotations

import json
from typing import Any

from flask import Response
from pydantic import ValidationError

from producer.staff import StaffError


class ApiError(Exception):
    """An answer other than success: status, a message for people, and the field it is about."""

    def __init__(self, status: int, message: str, field: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.details = status, message, field, details

    @classmethod
    def of(cls, error: StaffError) -> ApiError:
        return cls(error.status, error.message, error.field)

    def response(self) -> Response:
        error: dict[str, Any] = {"message": self.message, "field": self.field}
        if self.details is not None:
            error["details"] = self.details
        response = json_response(self.status, {"error": error})
        if self.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="tidbok admin"'
        return response


def json_response(status: int, payload: Any) -> Response:
    """JSON as the API always wrote it: UTF-8 unescaped, keys in the order given."""
    body = json.dumps(payload, ensure_ascii=False, default=str).encode()
    return Response(body, status=status, content_type="application/json; charset=utf-8")


def invalid(error: ValidationError) -> Response:
    """A request that does not fit its model: 400 naming the first field at fault (dotted path)."""
    first = error.errors(include_url=False)[0]
    location = [str(part) for part in first.get("loc", ()) if not isinstance(part, int) or True]
    field = ".".join(location) or "body"
    message = first.get("msg", "invalid")
    if first.get("type") == "extra_forbidden":
        message = "unknown field"
    elif first.get("type") == "missing":
        message = "required"
    return ApiError(400, message, field).response()
