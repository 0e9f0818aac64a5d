"""What the servers' workers import: one Producer per worker process, as a WSGI application
(gunicorn, mutual TLS) or behind the body-first RSGI adapter (granian, plain HTTP)."""

from __future__ import annotations

import gc
import os

from producer.http.app import ROUTE_KEY, Producer
from producer.http.body_first import BodyFirst
from producer.interactions.handlers import HANDLERS
from producer.platform import logs, metrics
from producer.platform.settings import Settings
from producer.web.app import WebApp


def create_app() -> Producer:
    settings = Settings.from_env()
    url = settings.database_url or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL must be set for the server workers (tidbok serve sets it)")
    logs.configure(settings.log_level, settings.log_format)
    metrics.register_process("server worker")
    app = Producer(settings, url, HANDLERS)
    app.admin = WebApp(settings, lambda: app.pool)
    gc.collect()
    gc.freeze()  # the compiled schemas are long-lived: keep them out of every later GC pass
    return app


def create_rsgi_app() -> BodyFirst:
    """granian's factory target: the Producer, each request's body read on the event loop first."""
    app = create_app()
    return BodyFirst(app, app.settings.db_pool_size, app.route, app.refusal, ROUTE_KEY, app.quick)
