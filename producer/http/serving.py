"""The HTTP servers. Plain HTTP (development, or behind a TLS-terminating proxy) is served by
granian, the fastest; mutual TLS by gunicorn, because the application must see the verified
client certificate to know the consumer's HSA-id and granian does not hand it to WSGI
applications (emmett-framework/granian#788). Both run `producer.http.wsgi:create_app` in each worker,
and both stop gracefully on SIGTERM: no new connections, in-flight calls finish."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import ssl
import tempfile
from typing import Any

from producer.platform import change_tokens, logs
from producer.platform.settings import Settings

log = logging.getLogger("tidbok")
# producer.platform.metrics reads this when prometheus_client is first imported, so it is set before that
# (and before any worker starts) and producer.platform.metrics is not imported here.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def port_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on host:port, or None when it could.

    granian listens with SO_REUSEPORT, so a second server on a port in use would start and silently
    share it with the first (calls alternating between them). Binding here without SO_REUSEPORT
    fails on any socket listening there, whoever opened it. SO_REUSEADDR only forgives connections
    of a stopped server still in TIME_WAIT."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"host {host!r} cannot be listened on: {exc.strerror}"
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return f"port {port} is already in use (on {host})"
                if exc.errno == errno.EACCES:
                    return f"port {port} needs privileges this user does not have"
                if exc.errno == errno.EADDRNOTAVAIL:
                    return f"host {host!r} is not an address of this machine"
                return f"{host}:{port} cannot be listened on: {exc.strerror}"
    return None


def serve(settings: Settings, url: str) -> None:
    """Serve until stopped. Metrics are counted in PROMETHEUS_MULTIPROC_DIR: the folder the caller
    set (`tidbok run` shares one with its publisher and sweeper; in production the units can share
    one), else a temporary folder of our own, removed at the end."""
    os.environ["DATABASE_URL"] = url  # the workers are new processes; they read it from the environment
    own = not os.environ.get(MULTIPROCESS_DIR)
    metrics_dir = tempfile.mkdtemp(prefix="tidbok-metrics-") if own else os.environ[MULTIPROCESS_DIR]
    os.environ[MULTIPROCESS_DIR] = metrics_dir  # before any worker imports prometheus_client
    from producer.platform import metrics  # only now: prometheus_client reads the folder when first imported

    metrics.register_process("server")
    # the workers' shared change tokens (producer.platform.change_tokens), made before they start: in
    # the file TIDBOK_CHANGE_TOKENS names when set (shared with another writer on this host that knows
    # when it changed slots), else in a temporary folder of our own
    tokens_dir = None if os.environ.get(change_tokens.ENVIRONMENT) else tempfile.mkdtemp(prefix="tidbok-tokens-")
    if tokens_dir is not None:
        os.environ[change_tokens.ENVIRONMENT] = os.path.join(tokens_dir, "change-tokens")
    if not os.path.exists(os.environ[change_tokens.ENVIRONMENT]):
        change_tokens.create_file(os.environ[change_tokens.ENVIRONMENT])
    try:
        if settings.transport == "mtls":
            _serve_mutual_tls(settings)
        else:
            _serve_plain(settings)
    finally:
        if tokens_dir is not None:
            shutil.rmtree(tokens_dir, ignore_errors=True)
        if own:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve_plain(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    if settings.transport == "proxy":
        log.info("callers identified by the %s header from %s", settings.proxy_cert_header, settings.trusted_proxies)
    else:
        log.warning("plain HTTP with no consumer authorization: for development and tests only")
    log.info("serving on http://%s:%s/<Interaction>/1/rivtabp21", settings.host, settings.port)
    Granian(
        "producer.http.wsgi:create_rsgi_app",  # the WSGI application, each body read before a thread is taken
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        workers=settings.workers,
        factory=True,
        log_access=False,  # the application writes each access line itself, with the request's ids
        log_dictconfig=logs.server_config(settings.log_format, {"_granian": {}, "granian": {}}),
        workers_kill_timeout=settings.shutdown_timeout_seconds,
    ).serve()


def _serve_mutual_tls(settings: Settings) -> None:
    log.info(
        "serving on https://%s:%s/<Interaction>/1/rivtabp21 (client certificates required, %d consumer(s) authorized)",
        settings.host,
        settings.port,
        len(settings.consumers),
    )
    MutualTlsServer(settings).run()


def _child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges (pool use) must not be summed any more."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _server_context(config: Any, default_factory: Any) -> ssl.SSLContext:
    """gunicorn's context, at TLS 1.2 or newer (the platform's minimum)."""
    context = default_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class MutualTlsServer:
    """gunicorn, configured in code (no gunicorn.conf.py), with the TLS-refusal-counting worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self) -> None:
        from gunicorn.app.base import BaseApplication

        settings = self.settings

        class Application(BaseApplication):
            def load_config(self) -> None:
                options = {
                    "bind": [f"{settings.host}:{settings.port}"],
                    "workers": settings.workers,
                    "threads": settings.db_pool_size,
                    "worker_class": "producer.http.tls_worker.TlsWorker",
                    "certfile": str(settings.tls_cert),
                    "keyfile": str(settings.tls_key),
                    "ca_certs": str(settings.tls_ca),
                    "cert_reqs": ssl.CERT_REQUIRED,
                    "ssl_context": _server_context,
                    "graceful_timeout": settings.shutdown_timeout_seconds,
                    "keepalive": 30,
                    "accesslog": None,  # the application logs each call itself, with its outcome
                    "child_exit": _child_exit,
                    "proc_name": "tidbok",
                    "control_socket_disable": True,  # one shared ~/.gunicorn socket would clash between servers
                    # gunicorn turns its access log on whenever logconfig_dict is given: WARNING keeps it quiet
                    "logconfig_dict": logs.server_config(
                        settings.log_format,
                        {"gunicorn.error": {"level": "INFO"}, "gunicorn.access": {"level": "WARNING"}},
                    ),
                }
                for key, value in options.items():
                    self.cfg.set(key, value)

            def load(self) -> Any:
                from producer.http.wsgi import create_app

                return create_app()

        Application().run()
