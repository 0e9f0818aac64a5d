"""gunicorn's threaded worker, counting and logging the TLS handshakes it refuses (no client
certificate, an untrusted or expired one): a refusal at the handshake never reaches the
application, and operations must still see it."""

from __future__ import annotations

import contextlib
import logging
import ssl
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from producer.platform import metrics

log = logging.getLogger("tidbok.tls")


class TlsWorker(ThreadWorker):
    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, ssl.SSLError):
            metrics.REFUSED.labels("handshake").inc()
            peer = addr[0] if isinstance(addr, tuple) and addr else "?"
            reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or type(exc).__name__
            log.warning("TLS handshake from %s refused: %s", peer, reason)
            with contextlib.suppress(OSError):
                client.close()
            return
        super().handle_error(req, client, addr, exc)
