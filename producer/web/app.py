"""What the HTTP router mounts for /admin and /staff: one Flask application (producer.admin_api.app)
with the staff pages registered on it, and the limits the router applies before it runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from psycopg_pool import ConnectionPool

from producer.admin_api.app import create_app
from producer.admin_api.auth import Tokens
from producer.platform.settings import Settings
from producer.staff.accounts import Accounts
from producer.web import pages

MAX_BODY = 256 * 1024 * 1024  # a 1,000,000-slot CSV is about 80 MB
BODY_TIMEOUT_SECONDS = 600  # that CSV over a slow link; /admin is for operators only
CLIENT_HSA_ID = "tidbok.client_hsa_id"  # environ key: the HSA-id of the caller's verified certificate, if any
StartResponse = Callable[..., Any]


class WebApp:
    """A WSGI callable for paths under /admin and /staff, sharing the producer's connection pool."""

    PREFIXES = ("/admin", "/staff")
    max_body = MAX_BODY  # the HTTP router reads these two to read a body before it gets here
    body_timeout = BODY_TIMEOUT_SECONDS

    @classmethod
    def owns(cls, path: str) -> bool:
        """Whether a request path is this application's (the one place these prefixes are checked)."""
        return any(path == prefix or path.startswith(prefix + "/") for prefix in cls.PREFIXES)

    def __init__(self, settings: Settings, pool: Callable[[], ConnectionPool]) -> None:
        accounts = Accounts.parse(settings.staff_accounts)
        self.flask = create_app(settings, Tokens.parse(settings.admin_tokens, accounts), pool)
        pages.install(self.flask, settings, accounts, pool, CLIENT_HSA_ID)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self.flask.wsgi_app(environ, start_response)
