"""The one error staff functions raise: which input is wrong and why, for a 400 or a CLI message."""

from __future__ import annotations

from typing import Literal

# invalid: the input cannot be used (HTTP 400); not_found: it names nothing (404);
# conflict: it is valid, but the calendar's state forbids the change now, e.g. the slot is taken (409).
ErrorCode = Literal["invalid", "not_found", "conflict"]
HTTP_STATUS: dict[str, int] = {"invalid": 400, "not_found": 404, "conflict": 409}


class StaffError(Exception):
    """Nothing was changed because of `field`: `message` says why, in words a staff member acts on.

    Messages may name what staff typed (a slot id, an element name) but never a personnummer,
    so they are safe to log."""

    def __init__(self, field: str, message: str, code: ErrorCode = "invalid") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.code = code

    @property
    def status(self) -> int:
        """The HTTP status for the API: ApiError(error.status, error.message, error.field)."""
        return HTTP_STATUS[self.code]

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "code": self.code}
