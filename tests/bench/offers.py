"""Egen provhantering figures for `make bench`: offers sent per second to the EP stub, a 10,000-offer
campaign drained by one `tidbok ep publish` process (its default threads) over HTTP on loopback.

EP takes one resident a call, so this is calls per second: each one a SOAP request built, sent,
answered by the stub (which checks it as EP would and records the offer), read, and its row marked
sent. The campaign is queued through the staff layer (producer.staff.offers.offer_batch) in one
transaction, as staff queue one; its time is reported too.

    measure(database_url) -> {"offers", "queue_seconds", "seconds", "offers_per_second",
                              "steady_offers_per_second", "threads"}

`database_url` names a database (migrated here if it is not): a care unit of its own is added to
it. Alone: `.venv/bin/python -m tests.bench.offers` (an embedded PostgreSQL in a temporary folder).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from support.ep import start_ep_stub  # noqa: E402
from support.ep_outbox import start_ep_publisher  # noqa: E402
from support.server import run_cli  # noqa: E402

from egen_provhantering.publisher_config import PublishingSettings  # noqa: E402
from producer.platform.settings import Settings  # noqa: E402
from producer.staff import Staff  # noqa: E402
from producer.staff.offers import OfferChoice, offer_batch  # noqa: E402

OFFERS = 10_000
UNIT = "SE2321000016-E100"
MEDICAL_UNIT = "SE2321000016-E1VE"
STAFF = "SE2321000016-E1ST"
CAMPAIGN = "bench-offers"


def _personnummer(n: int) -> str:
    """A valid personnummer per n (one birth date each from 1930, serial 971)."""
    body = f"{date(1930, 1, 1) + timedelta(days=n):%Y%m%d}971"
    total = 0
    for i, ch in enumerate(body[2:]):
        product = int(ch) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    return body + str((10 - total % 10) % 10)


def _unit(conn: psycopg.Connection) -> None:
    """A sampling unit of its own (nothing of the calendar it joins is touched); a run before is cleared."""
    conn.execute("DELETE FROM ep_campaign WHERE unit_hsa_id = %s", (UNIT,))
    conn.execute(
        "INSERT INTO care_unit (hsa_id, name, medical_unit_hsa_id, medical_unit_name)"
        " VALUES (%s, 'EP-bench', %s, 'EP-bench vårdenhet') ON CONFLICT (hsa_id) DO NOTHING",
        (UNIT, MEDICAL_UNIT),
    )
    conn.execute(
        "INSERT INTO time_type (unit_hsa_id, code, name, duration_minutes, ep_unit_offer_id)"
        " VALUES (%s, 'PROV', 'Provtagning', 10, '6') ON CONFLICT DO NOTHING",
        (UNIT,),
    )


def measure(database_url: str, tmp: Path | None = None, offers: int = OFFERS) -> dict[str, Any]:
    """Queue `offers` offers in one campaign, drain them with one publisher into a fresh EP stub, and
    return (and print) how fast; asserts that the stub gave every offer exactly once."""
    run_cli(["migrate"], {"DATABASE_URL": database_url})
    work = Path(tmp or tempfile.mkdtemp(prefix="tidbok-bench-offers-"))
    residents = [_personnummer(n) for n in range(offers)]
    with psycopg.connect(database_url, autocommit=True, options="-c TimeZone=UTC") as conn:
        _unit(conn)
        started = time.perf_counter()
        report = offer_batch(
            conn, Staff(STAFF, Settings()), "\n".join(residents), unit=UNIT, campaign=CAMPAIGN,
            ep=OfferChoice(giver_first_name="Screeningverksamheten"), time_type="PROV",
        )  # fmt: skip
        queued = time.perf_counter() - started
        assert report.offers is not None and len(report.offers.queued) == offers, report.offers
    stub = start_ep_stub(work / "ep-stub")
    publisher = None
    try:
        started = time.perf_counter()
        publisher = start_ep_publisher(database_url, stub, work / "ep-publisher.log", {"TIDBOK_EP_POLL_MS": "50"})
        with psycopg.connect(database_url, autocommit=True) as conn:
            left = offers
            while left and time.perf_counter() - started < 600:
                time.sleep(0.05)
                assert publisher.process.poll() is None, publisher.output()
                left = conn.execute(
                    "SELECT count(*) FROM ep_offer WHERE unit_hsa_id = %s AND state = 'pending'", (UNIT,)
                ).fetchone()[0]
            elapsed = time.perf_counter() - started
            assert left == 0, f"{left} offers still pending after 600 s"
            first, last, given = conn.execute(
                "SELECT min(sent_at), max(sent_at), count(*) FILTER (WHERE outcome = 'given') FROM ep_offer"
                " WHERE unit_hsa_id = %s AND campaign = %s",
                (UNIT, CAMPAIGN),
            ).fetchone()
        held = len(stub.given())
        assert given == offers and held == offers, f"{given} marked given, the stub holds {held}; expected {offers}"
    finally:
        if publisher is not None:
            publisher.stop()
        stub.stop()
    steady = (last - first).total_seconds()
    figures = {
        "offers": offers,
        "queue_seconds": queued,
        "seconds": elapsed,
        "offers_per_second": offers / elapsed,
        "steady_offers_per_second": (offers - 1) / steady if steady > 0 else float("nan"),
        "threads": PublishingSettings().threads,
    }
    print(
        f"{'EP offers, a 10,000-resident campaign':<40} {figures['offers_per_second']:>9.0f} offers/s"
        f"   ({elapsed:.1f} s with the publisher's start, {figures['steady_offers_per_second']:.0f}/s once"
        f" sending; one publisher process, {figures['threads']} threads; queued in {queued:.1f} s)"
    )
    return figures


def main() -> None:
    from support.server import fresh_database

    from producer.platform.database import start_embedded

    with tempfile.TemporaryDirectory(prefix="tidbok-bench-offers-") as folder:
        server = start_embedded(Path(folder) / "pgdata")
        url = fresh_database(server.get_uri(), "tidbok_test_benchoffers")
        measure(url, Path(folder))


if __name__ == "__main__":
    main()
