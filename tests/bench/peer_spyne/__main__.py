"""`python -m tests.bench.peer_spyne`: serve the peer on TIDBOK_HOST:TIDBOK_PORT with granian, as
tidbok's production server serves (producer.http.serving): the RSGI interface, the body read first,
TIDBOK_WORKERS workers, TIDBOK_DB_POOL_SIZE threads each. DATABASE_URL names the database."""

from __future__ import annotations

from granian import Granian
from granian.constants import Interfaces

from producer.platform.settings import Settings


def serve() -> None:
    settings = Settings.from_env()
    Granian(
        "tests.bench.peer_spyne.wsgi:create_rsgi_app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        workers=settings.workers,
        factory=True,
        log_access=False,
    ).serve()


if __name__ == "__main__":
    serve()
