"""The WSGI target the server's workers import: one Producer per worker process."""

from __future__ import annotations

import gc
import os

from producer import logs
from producer.admin_api.app import AdminApi
from producer.admin_api.auth import Tokens
from producer.admin_api.routes import ROUTES
from producer.app import Producer
from producer.config import Settings
from producer.operations import HANDLERS


def create_app() -> Producer:
    settings = Settings.from_env()
    url = settings.database_url or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL must be set for the server workers (tidbok serve sets it)")
    logs.configure(settings.log_level, settings.log_format)
    app = Producer(settings, url, HANDLERS)
    app.admin = AdminApi(ROUTES, Tokens.parse(settings.admin_tokens), lambda: app.pool, settings)
    gc.collect()
    gc.freeze()  # the compiled schemas are long-lived: keep them out of every later GC pass
    return app
