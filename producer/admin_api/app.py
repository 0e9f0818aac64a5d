"""The /admin JSON API: routing, authentication, traceability headers and error shapes.

Endpoints live in producer.admin_api.routes; each is declared once (method, path, summary, schemas)
and that declaration drives both the routing and the OpenAPI description served at
GET /admin/openapi.json.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any
from urllib.parse import parse_qs

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from producer.admin_api.auth import Tokens
from producer.admin_api.openapi import describe
from producer.admin_api.route import ApiError, Request, Route
from producer.platform import metrics, tracing
from producer.platform.settings import Settings

log = logging.getLogger("tidbok.admin")

MAX_BODY = 256 * 1024 * 1024  # a 1,000,000-slot CSV is about 80 MB
BODY_TIMEOUT_SECONDS = 600  # that CSV over a slow link; /admin is for operators only
StartResponse = Callable[..., Any]


class AdminApi:
    """A WSGI callable for paths under /admin, sharing the producer's connection pool."""

    PREFIX = "/admin"
    max_body = MAX_BODY  # the HTTP router reads these two to read a body before it gets here
    body_timeout = BODY_TIMEOUT_SECONDS

    @classmethod
    def owns(cls, path: str) -> bool:
        """Whether a request path is the admin API's (the one place the /admin prefix is checked)."""
        return path == cls.PREFIX or path.startswith(cls.PREFIX + "/")

    def __init__(
        self, routes: list[Route], tokens: Tokens, pool: Callable[[], ConnectionPool], settings: Settings
    ) -> None:
        self.routes = [(route, route.pattern) for route in routes]
        self.tokens = tokens
        self.pool = pool
        self.settings = settings

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request_id, context_id = tracing.ids_from(environ)
        id_token, context_token = tracing.request_id.set(request_id), tracing.context_id.set(context_id or "-")
        echo = tracing.echo(request_id, context_id)
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        started = perf_counter()
        matched: list[str] = []  # the route's template, once known: the metrics' label (not the path)
        try:
            status, payload = self._dispatch(method, path, environ, matched)
        except ApiError as exc:
            error: dict[str, Any] = {"message": exc.message, "field": exc.field}
            if exc.details is not None:
                error["details"] = exc.details
            status, payload = exc.status, {"error": error}
        log.info("admin %s %s -> %d", method, path, status)
        metrics.observe_admin(f"{method} {matched[0]}" if matched else "unmatched", status, perf_counter() - started)
        tracing.request_id.reset(id_token)
        tracing.context_id.reset(context_token)
        body = json.dumps(payload, ensure_ascii=False, default=str).encode()
        headers = [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(body)))] + echo
        if status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="tidbok admin"'))
        start_response(f"{status} {_REASONS.get(status, 'Status')}", headers)
        return [body]

    def _dispatch(self, method: str, path: str, environ: dict[str, Any], matched: list[str]) -> tuple[int, Any]:
        if method == "GET" and path.rstrip("/") == "/admin/openapi.json":
            matched.append("/admin/openapi.json")
            return 200, describe([route for route, _ in self.routes])
        found = [(route, match) for route, pattern in self.routes if (match := pattern.match(path))]
        if not found:
            raise ApiError(404, f"No such resource: {path}")
        chosen = next(((r, m) for r, m in found if r.method == method), None)
        if chosen is None:
            raise ApiError(405, f"{method} is not allowed on {path}; use {', '.join(r.method for r, _ in found)}")
        route, match = chosen
        matched.append(route.path)
        grant = self.tokens.grant(_bearer(environ))
        if grant is None:
            raise ApiError(401, "A valid API token is required (Authorization: Bearer <token>)")
        request = Request(
            method=method,
            path=path,
            params=match.groupdict(),
            query={k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()},
            headers={k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
            | {"content-type": environ.get("CONTENT_TYPE", "")},
            body=_read(environ, self.max_body),
            grant=grant,
            settings=self.settings,
        )
        if "unit" in request.params:
            request.require_unit(request.params["unit"])
        try:
            with self.pool().connection() as conn:
                return route.handler(request, conn)
        except (PoolTimeout, psycopg.OperationalError):
            log.warning("database unavailable", exc_info=True)
            raise ApiError(503, "The database is temporarily unavailable; try again later") from None
        except ApiError:
            raise
        except Exception:
            log.exception("internal error in %s %s", method, path)
            raise ApiError(500, "Internal error") from None


def _bearer(environ: dict[str, Any]) -> str | None:
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _read(environ: dict[str, Any], limit: int) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(400, "Content-Length is not a number", "Content-Length") from None
    if length > limit:
        raise ApiError(413, f"The body is larger than {limit} bytes")
    return environ["wsgi.input"].read(length) if length > 0 else b""


_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
