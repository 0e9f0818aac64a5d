"""The Flask application that serves /admin (this package's API) and that the staff page
(producer.web) registers its pages on: traceability headers and log lines, JSON errors for /admin,
the OpenAPI description at /admin/openapi.json and its Swagger UI at /admin/swagger (served from
the flask-openapi3-swagger package, no CDN)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from flask import Response, current_app, g, request
from flask_openapi3 import Info, OpenAPI
from psycopg_pool import ConnectionPool
from werkzeug.exceptions import HTTPException

from producer.admin_api import routes
from producer.admin_api.auth import Tokens
from producer.admin_api.errors import ApiError, invalid
from producer.admin_api.models import ErrorOut
from producer.platform import metrics, tracing
from producer.platform.settings import Settings

log = logging.getLogger("tidbok.admin")
PREFIX = "/admin"
PAGE_ERRORS = "tidbok.page_errors"  # app.extensions key: how the pages render an HTTP error (producer.web)
DESCRIPTION = (
    "Load schedules, send invitations and act on bookings on a resident's behalf. Every call needs a "
    "bearer token; a token acts for one staff member (the one every change is recorded for). Every "
    "response echoes X-Request-ID (generated when missing) and X-Context-ID."
)


@dataclass(frozen=True)
class AdminContext:
    tokens: Tokens
    settings: Settings
    pool: Callable[[], ConnectionPool]


def create_app(settings: Settings, tokens: Tokens, pool: Callable[[], ConnectionPool]) -> OpenAPI:
    app = OpenAPI(
        __name__,
        info=Info(title="tidbok administration API", version="2", description=DESCRIPTION),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        doc_prefix=PREFIX,
        doc_url="/openapi.json",
        validation_error_status=400,
        validation_error_model=ErrorOut,
        validation_error_callback=invalid,
    )
    app.extensions["tidbok.admin"] = AdminContext(tokens, settings, pool)
    app.register_api(routes.blueprint())
    app.before_request(_trace)
    app.after_request(_echo)
    app.teardown_request(_untrace)
    app.register_error_handler(ApiError, lambda error: error.response())
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal)
    return app


def _trace() -> None:
    g.started = perf_counter()
    request_id, context_id = tracing.ids_from(request.environ)
    g.trace = (request_id, context_id, tracing.request_id.set(request_id), tracing.context_id.set(context_id or "-"))


def _echo(response: Response) -> Response:
    trace = g.get("trace")
    if trace is not None:
        for name, value in tracing.echo(trace[0], trace[1]):
            response.headers[name] = value
    if "started" in g:  # the application's own time, for browsers' developer tools and make bench
        response.headers["Server-Timing"] = f"app;dur={(perf_counter() - g.started) * 1000:.1f}"
    channel = "admin" if _is_api() else "staff"
    log.info("%s %s %s -> %d", channel, request.method, request.path, response.status_code)
    if "started" in g:  # by the route's template (`/admin/units/<unit>/bookings`), never the path
        rule = request.url_rule
        route = f"{request.method} {_TEMPLATE.sub(_AS_OPENAPI, rule.rule)}" if rule is not None else "unmatched"
        metrics.observe_admin(route, response.status_code, perf_counter() - g.started)
    return response


_TEMPLATE = re.compile(r"<(?:[^:>]+:)?([^>]+)>")  # Flask's <unit> as OpenAPI's {unit}
_AS_OPENAPI = r"{\1}"


def _untrace(_: BaseException | None) -> None:
    trace = g.get("trace")
    if trace is not None:
        tracing.request_id.reset(trace[2])
        tracing.context_id.reset(trace[3])


def _is_api() -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


def _http_error(error: HTTPException) -> Any:
    if not _is_api():
        page = current_app.extensions.get(PAGE_ERRORS)  # the staff page's own (Swedish) error page
        return page(error) if page is not None else error
    code = error.code or 500
    if code == 404:
        return ApiError(404, f"No such resource: {request.path}").response()
    if code == 405:
        allowed = ", ".join(sorted(m for m in (error.valid_methods or []) if m not in ("HEAD", "OPTIONS")))  # type: ignore[attr-defined]
        return ApiError(405, f"{request.method} is not allowed on {request.path}; use {allowed}").response()
    if error.response is not None:  # e.g. flask-openapi3's abort() with our validation answer
        return error.response
    return ApiError(code, error.description or error.name).response()


def _internal(error: Exception) -> Any:
    if isinstance(error, HTTPException):
        return _http_error(error)
    log.exception("internal error in %s %s", request.method, request.path)
    if _is_api():
        return ApiError(500, "Internal error").response()
    return Response("Internt fel: försök igen.\n", status=500, content_type="text/plain; charset=utf-8")
