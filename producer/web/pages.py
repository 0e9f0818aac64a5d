"""The staff pages (/staff/): server-rendered HTML forms that work without JavaScript.

Who acts comes from the session (producer.web.sessions), never from a form field; every form
carries the session's CSRF token; a unit in the path must be one of the staff member's (403
otherwise), and a booking or slot is looked up at that unit only. Every change is a call into
producer.staff, which makes it through the calendar core (history, EI outbox, audit line).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from flask import Blueprint, Flask, Response, current_app, g, redirect, render_template, request, url_for
from psycopg_pool import ConnectionPool, PoolTimeout
from werkzeug.exceptions import HTTPException

from producer.admin_api.app import PAGE_ERRORS
from producer.calendar.rules import RuleChange
from producer.calendar.slots import slot_by_reference
from producer.loading import Options, Source, load
from producer.platform.settings import Settings
from producer.staff import (
    Contact,
    Staff,
    StaffError,
    actions,
    audit,
    invitations,
    listing,
    offers,
    screening,
    sickday,
    timetypes,
)
from producer.staff import checks as parse
from producer.staff import week as calendar
from producer.staff.accounts import Accounts
from producer.sweden.identifiers import normalise_hsa_id
from producer.sweden.wall_time import STOCKHOLM
from producer.web import labels
from producer.web.sessions import Session, Sessions

COOKIE = "tidbok_staff"
LOGIN_COOKIE = "tidbok_login"  # the login form's CSRF token (double submit), before there is a session
PUBLIC = {"staff.login", "staff.login_certificate", "staff.static"}
LISTED_SLOTS = 500  # the dry run lists this many slots created, changed and removed (each)
MAX_PAGE_UPLOAD = 5 * 1024 * 1024  # a schedule or list sent from the page; larger ones: tidbok load, /admin/load
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}

bp = Blueprint("staff", __name__, url_prefix="/staff", template_folder="templates", static_folder="static")


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    accounts: Accounts
    sessions: Sessions
    pool: Callable[[], ConnectionPool]
    client_key: str  # environ key of the verified client certificate's HSA-id (producer.web.app)


class PageError(Exception):
    """A page that cannot be shown: its status and a Swedish text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def install(
    app: Flask, settings: Settings, accounts: Accounts, pool: Callable[[], ConnectionPool], client_key: str
) -> None:
    sessions = Sessions(accounts, settings.staff_session_minutes)
    app.extensions["tidbok.web"] = WebContext(settings, accounts, sessions, pool, client_key)
    app.extensions[PAGE_ERRORS] = _http_error_page
    app.register_blueprint(bp)


def _http_error_page(error: HTTPException) -> tuple[str, int]:
    """A path under /staff that names no page, or a method it does not take: the page's own answer."""
    status = error.code or 500
    message = {404: "Sidan finns inte.", 405: "Sidan tar inte emot den sortens anrop."}.get(status, "Det gick inte.")
    return render_template("error.html", message=message, status=status), status


def _ctx() -> WebContext:
    return current_app.extensions["tidbok.web"]


# -- every request -------------------------------------------------------------------------------


@bp.before_request
def _open() -> Response | None:
    """A connection for the request; the session (or the login page); the form token; the unit."""
    try:
        g.cm = _ctx().pool().connection()
        g.conn = g.cm.__enter__()
    except (PoolTimeout, psycopg.OperationalError):
        g.cm = None
        raise PageError(503, "Databasen svarar inte just nu. Försök igen om en stund.") from None
    if request.endpoint in PUBLIC:
        return None
    session = _ctx().sessions.find(g.conn, request.cookies.get(COOKIE))
    if session is None:
        target = request.full_path if request.method == "GET" else url_for("staff.index")
        return redirect(url_for("staff.login", next=target), 303)
    g.session = session
    g.staff = Staff(session.account.hsa_id, _ctx().settings, via="web")
    if request.method == "POST" and not hmac.compare_digest(request.form.get("csrf", ""), session.csrf):
        raise PageError(
            403, "Formuläret kunde inte tas emot (det saknar eller har fel formulärnyckel). Ladda om sidan."
        )
    unit = (request.view_args or {}).get("unit")
    if unit is not None and not session.account.access.covers(unit):
        raise PageError(403, f"Du har inte behörighet till enheten {normalise_hsa_id(unit)}.")
    return None


@bp.teardown_request
def _close(error: BaseException | None) -> None:
    cm = g.pop("cm", None)
    if cm is not None:
        cm.__exit__(None, None, None)


@bp.after_request
def _headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.errorhandler(PageError)
def _page_error(error: PageError) -> tuple[str, int]:
    return render_template("error.html", message=error.message, status=error.status), error.status


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    session: Session | None = g.get("session")
    return {
        "me": session.account if session else None,
        "csrf": session.csrf if session else "",
        "L": labels,
        "my_units": _my_units() if session else [],
    }


def _my_units() -> list[tuple[str, str]]:
    if "my_units" not in g:
        access = g.session.account.access
        g.my_units = [(hsa, name) for hsa, name in calendar.units(g.conn) if access.covers(hsa)]
    return g.my_units


def _cookie_secure() -> bool:
    return request.is_secure or _ctx().settings.transport != "open"


def _problem(error: StaffError) -> str:
    return labels.problem(error.field, error.message)


def _day(value: str | None, default: date | None = None) -> date:
    if not value:
        return default or datetime.now(STOCKHOLM).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PageError(400, "Datumet ska skrivas ÅÅÅÅ-MM-DD, t.ex. 2026-12-01.") from None


# -- login ---------------------------------------------------------------------------------------


def _login_page(message: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    certificate = request.environ.get(_ctx().client_key)
    known = _ctx().accounts.by_hsa_id(certificate) if certificate else None
    page = render_template(
        "login.html",
        login_token=token,
        message=message,
        next=request.values.get("next", ""),
        certificate=known.hsa_id if known else None,
    )
    response = Response(page, status=status)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", secure=_cookie_secure(), path="/staff")
    return response


def _login_token_ok() -> bool:
    sent, kept = request.form.get("login_token", ""), request.cookies.get(LOGIN_COOKIE, "")
    return bool(kept) and hmac.compare_digest(sent, kept)


def _logged_in(account: Any, how: str) -> Response:
    token = _ctx().sessions.start(g.conn, account, how)
    target = request.form.get("next", "")
    if not target.startswith("/staff/") or target.startswith("//"):
        target = url_for("staff.index")
    response = redirect(target, 303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="Lax", secure=_cookie_secure(), path="/staff")
    response.delete_cookie(LOGIN_COOKIE, path="/staff")
    return response


class Throttle:
    """At most FAILURES wrong passwords per HSA-id in WINDOW seconds, per worker process: then that
    HSA-id's logins are refused (429) until the window has passed, so a password cannot be guessed
    at the server's speed. Per process (no shared state): with W workers, W × FAILURES at most."""

    FAILURES = 5
    WINDOW = 15 * 60.0

    def __init__(self) -> None:
        self._failed: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, who: str, now: float) -> deque[float]:
        times = self._failed.setdefault(who, deque())
        while times and now - times[0] > self.WINDOW:
            times.popleft()
        return times

    def blocked(self, who: str) -> bool:
        with self._lock:
            return len(self._recent(who, time.monotonic())) >= self.FAILURES

    def failed(self, who: str) -> None:
        with self._lock:
            if len(self._failed) > 10_000:  # HSA-ids someone made up: forget them rather than grow
                self._failed.clear()
            self._recent(who, time.monotonic()).append(time.monotonic())

    def succeeded(self, who: str) -> None:
        with self._lock:
            self._failed.pop(who, None)


THROTTLE = Throttle()


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    if request.method == "GET":
        return _login_page()
    if not _login_token_ok():
        return _login_page("Inloggningsformuläret hade gått ut. Försök igen.", 403)
    who = normalise_hsa_id(request.form.get("hsa_id") or "")[:64]
    if THROTTLE.blocked(who):
        return _login_page("För många misslyckade inloggningar. Vänta en kvart och försök igen.", 429)
    account = _ctx().accounts.login(who, request.form.get("password"))
    if account is None:
        THROTTLE.failed(who)
        return _login_page("Fel HSA-id eller lösenord.", 401)
    THROTTLE.succeeded(who)
    return _logged_in(account, "password")


@bp.post("/login/certificate")
def login_certificate() -> Response:
    if not _login_token_ok():
        return _login_page("Inloggningsformuläret hade gått ut. Försök igen.", 403)
    hsa_id = request.environ.get(_ctx().client_key)
    account = _ctx().accounts.by_hsa_id(hsa_id) if hsa_id else None
    if account is None:
        return _login_page("Ditt SITHS-kort hör inte till något konto här.", 401)
    return _logged_in(account, "certificate")


@bp.post("/logout")
def logout() -> Response:
    _ctx().sessions.end(g.conn, request.cookies.get(COOKIE))
    response = redirect(url_for("staff.login", done="logout"), 303)
    response.delete_cookie(COOKIE, path="/staff")
    return response


# -- overview, week and day ----------------------------------------------------------------------


@bp.get("/")
def index() -> Any:
    units = _my_units()
    if len(units) == 1:
        return redirect(url_for("staff.week", unit=units[0][0]), 303)
    return render_template("index.html", units=units)


def _filters() -> dict[str, str]:
    return {k: v for k in ("performer", "resource") if (v := request.args.get(k, "").strip())}


@bp.get("/units/<unit>/week")
def week(unit: str) -> str:
    monday = calendar.monday_of(_day(request.args.get("date")))
    filters = _filters()
    days = _call_page(calendar.days, g.conn, unit, monday, 7, filters.get("performer"), filters.get("resource"))
    return render_template(
        "week.html",
        unit=unit.upper(),
        catalogue=calendar.catalogue(g.conn, unit),
        days=days,
        monday=monday,
        previous=monday - timedelta(days=7),
        following=monday + timedelta(days=7),
        filters=filters,
        today=datetime.now(STOCKHOLM).date(),
    )


@bp.get("/units/<unit>/day")
def day(unit: str) -> str:
    on = _day(request.args.get("date"))
    filters = _filters()
    (shown,) = _call_page(calendar.days, g.conn, unit, on, 1, filters.get("performer"), filters.get("resource"))
    return render_template(
        "day.html",
        unit=unit.upper(),
        catalogue=calendar.catalogue(g.conn, unit),
        day=shown,
        previous=on - timedelta(days=1),
        following=on + timedelta(days=1),
        filters=filters,
    )


def _call_page(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A read that names something missing is a 404 page; bad input a 400 page."""
    try:
        return function(*args, **kwargs)
    except StaffError as error:
        raise PageError(404 if error.code == "not_found" else 400, _problem(error)) from None


# -- a free time: book it, or invite to it ---------------------------------------------------------


def _contact_from(form: Any) -> Contact:
    return Contact(**{name: (form.get(name) or None) for name in Contact.__dataclass_fields__})


def _slot_page(unit: str, slot: str, message: str | None = None, status: int = 200) -> tuple[str, int]:
    row = slot_by_reference(g.conn, slot.upper())
    if row is None or row.unit_hsa_id != normalise_hsa_id(unit):
        raise PageError(404, f"Tiden {slot} finns inte på enheten.")
    resident = (request.values.get("resident") or "").strip()
    known = None
    if resident and request.method == "GET":
        try:
            found = calendar.resident_bookings(g.conn, resident, [normalise_hsa_id(unit)])
            known = found[0] if found else None
        except StaffError as error:
            message = _problem(error)
    page = render_template(
        "slot.html",
        unit=unit.upper(),
        slot=slot.upper(),
        row=row,
        starts=row.starts_at.astimezone(STOCKHOLM),
        ends=row.ends_at.astimezone(STOCKHOLM),
        form=request.form if request.method == "POST" else {},
        resident=resident,
        known=known,
        message=message,
    )
    return page, status


@bp.get("/units/<unit>/slots/<slot>")
def slot(unit: str, slot: str) -> tuple[str, int]:
    return _slot_page(unit, slot)


@bp.post("/units/<unit>/slots/<slot>/book")
def book(unit: str, slot: str) -> Any:
    form = request.form
    try:
        change = actions.book(
            g.conn, g.staff, resident=form.get("resident", ""), slot=slot, unit=unit, contact=_contact_from(form),
            reason=form.get("reason") or None, note=form.get("note") or None,
        )  # fmt: skip
    except StaffError as error:
        return _slot_page(unit, slot, _problem(error), 400 if error.code != "conflict" else 409)
    return _to_booking(unit, change.booking.booking_id, "booked")


@bp.post("/units/<unit>/slots/<slot>/invite")
def invite_timed(unit: str, slot: str) -> Any:
    form = request.form
    try:
        valid_until = parse.moment_or_date("valid_until", form.get("valid_until") or None)
        change = invitations.invite_timed(
            g.conn, g.staff, resident=form.get("resident", ""), slot=slot, unit=unit,
            purpose=form.get("purpose", ""), valid_until=valid_until, contact=_contact_from(form),
        )  # fmt: skip
    except StaffError as error:
        return _slot_page(unit, slot, _problem(error), 400 if error.code != "conflict" else 409)
    return _to_booking(unit, change.booking.booking_id, "invited")


def _to_booking(unit: str, booking_id: str, done: str) -> Response:
    return redirect(url_for("staff.booking", unit=unit.upper(), booking_id=booking_id, done=done), 303)


# -- a booking: see it, rebook it, cancel it, its history ----------------------------------------------


def _booking_page(unit: str, booking_id: str, message: str | None = None, status: int = 200) -> tuple[str, int]:
    found = _call_page(listing.history, g.conn, booking_id, unit=unit)
    visible = [hsa for hsa, _ in _my_units()]
    now = datetime.now(UTC)
    alternatives = []
    after = now
    if request.args.get("from"):  # free times from this day on (Stockholm)
        after = max(now, datetime.combine(_day(request.args.get("from")), datetime.min.time(), STOCKHOLM))
    if found.booking.status == "active":
        alternatives = calendar.alternatives(g.conn, found.booking, after, visible)
    page = render_template(
        "booking.html",
        unit=unit.upper(),
        info=found.booking,
        events=found.events,
        alternatives=alternatives,
        alternatives_from=request.args.get("from", ""),
        changeable=found.booking.status == "active"
        and (found.booking.starts_at is None or found.booking.starts_at > now),
        message=message,
        done=labels.DONE.get(request.args.get("done", "")),
        consumer_names=listing.consumer_names(g.conn, unit),
    )
    return page, status


@bp.get("/units/<unit>/bookings/<booking_id>")
def booking(unit: str, booking_id: str) -> tuple[str, int]:
    return _booking_page(unit, booking_id)


@bp.post("/units/<unit>/bookings/<booking_id>/rebook")
def rebook(unit: str, booking_id: str) -> Any:
    target = (request.form.get("slot") or "").strip().upper()
    row = slot_by_reference(g.conn, target) if target else None
    if row is not None and not g.session.account.access.covers(row.unit_hsa_id):
        raise PageError(403, f"Du har inte behörighet till enheten {row.unit_hsa_id}.")
    try:
        change = actions.rebook(g.conn, g.staff, booking_id, slot=target, unit=unit, note=request.form.get("note"))
    except StaffError as error:
        return _booking_page(unit, booking_id, _problem(error), 400 if error.code != "conflict" else 409)
    return _to_booking(unit, change.booking.booking_id, "rebooked")


@bp.post("/units/<unit>/bookings/<booking_id>/cancel")
def cancel(unit: str, booking_id: str) -> Any:
    try:
        change = actions.cancel(g.conn, g.staff, booking_id, unit=unit, note=request.form.get("note"))
    except StaffError as error:
        return _booking_page(unit, booking_id, _problem(error), 400 if error.code != "conflict" else 409)
    return _to_booking(unit, change.booking.booking_id, "cancelled")


# -- invitations and screening -----------------------------------------------------------------------


def _invitations_page(unit: str, **extra: Any) -> str:
    return render_template(
        "invitations.html",
        unit=unit.upper(),
        catalogue=calendar.catalogue(g.conn, unit),
        form=request.form if request.method == "POST" else {},
        giver=_giver(),
        **extra,
    )


def _giver() -> str | None:
    """Who gives EP offers when the form names nobody: the configured function, shown by name."""
    settings = _ctx().settings
    if settings.ep_giver_id is None:
        return None
    names = " ".join(n for n in (settings.ep_giver_first_name, settings.ep_giver_last_name) if n)
    return f"{names} ({settings.ep_giver_id})"


def _offer_choice(form: Any) -> offers.OfferChoice:
    """The EP offer's fields of a form (producer/web/templates/_ep_offer.html); blank is left out."""

    def value(name: str) -> str | None:
        return (form.get(name) or "").strip() or None

    return offers.OfferChoice(
        unit_offer_id=value("ep_unit_offer"),
        notify_resident=form.get("ep_notify") == "on",
        giver_id=value("ep_giver"),
        giver_first_name=value("ep_giver_first_name"),
        giver_last_name=value("ep_giver_last_name"),
    )


@bp.get("/units/<unit>/invitations")
def invitations_page(unit: str) -> str:
    return _invitations_page(unit)


@bp.post("/units/<unit>/invitations/open")
def invite_open(unit: str) -> Any:
    form = request.form
    try:
        change = invitations.invite_open(
            g.conn, g.staff, resident=form.get("resident", ""), unit=unit, time_type=form.get("time_type", ""),
            purpose=form.get("purpose", ""),
            valid_until=parse.moment_or_date("valid_until", form.get("valid_until") or None),  # type: ignore[arg-type]
            invitation_date=parse.calendar_date("invitation_date", form.get("invitation_date") or None),
            contact=_contact_from(form), campaign=form.get("campaign") or None,
        )  # fmt: skip
    except StaffError as error:
        return _invitations_page(unit, message=_problem(error)), 400
    return _to_booking(unit, change.booking.booking_id, "invited")


def _upload_text(name: str) -> str:
    upload = request.files.get(name)
    data = upload.read(MAX_PAGE_UPLOAD + 1) if upload is not None and upload.filename else b""
    if len(data) > MAX_PAGE_UPLOAD:
        raise PageError(413, "Filen är för stor för sidan (högst 5 MB); läs in den med tidbok load.")
    try:
        return data.decode("utf-8-sig") if data else (request.form.get(f"{name}_text") or "")
    except UnicodeDecodeError:
        raise PageError(400, "Filen är inte UTF-8-kodad text.") from None


@bp.post("/units/<unit>/invitations/batch")
def invite_batch(unit: str) -> Any:
    form = request.form
    try:
        terms: dict[str, Any] = {
            "unit": unit, "time_type": form.get("time_type", ""), "campaign": form.get("campaign", ""),
            "purpose": form.get("purpose", ""),
            "valid_until": parse.moment_or_date("valid_until", form.get("valid_until") or None),
            "invitation_date": parse.calendar_date("invitation_date", form.get("invitation_date") or None),
        }  # fmt: skip
        if form.get("ep_offer") == "on":
            choice = _offer_choice(form)
            report = offers.invite_batch_with_offers(g.conn, g.staff, _upload_text("csv"), ep=choice, **terms)
        else:
            report = screening.invite_batch(g.conn, g.staff, _upload_text("csv"), **terms)
    except StaffError as error:
        return _invitations_page(unit, message=_problem(error)), 400
    return _invitations_page(unit, report=report)


# -- offers in Egen provhantering ----------------------------------------------------------------------


def _offers_page(unit: str, campaign: str | None = None, **extra: Any) -> str:
    shown, status_filter, parked = None, None, 0
    if campaign:
        shown = _call_page(offers.campaign_offers, g.conn, unit, campaign)
        parked = shown.counts["refused"] + shown.counts["failed"]
        status_filter = request.args.get("status") or None
        if status_filter in labels.OFFER_STATUSES:
            shown.residents[:] = [r for r in shown.residents if r.status == status_filter]
    return render_template(
        "offers.html",
        unit=unit.upper(),
        catalogue=calendar.catalogue(g.conn, unit),
        campaigns=offers.offer_campaigns(g.conn, unit),
        shown=shown,
        parked=parked,
        status_filter=status_filter,
        form=request.form if request.method == "POST" else {},
        giver=_giver(),
        **extra,
    )


@bp.get("/units/<unit>/offers")
def offers_page(unit: str) -> str:
    return _offers_page(unit, request.args.get("campaign"))


@bp.post("/units/<unit>/offers/batch")
def offer_batch(unit: str) -> Any:
    form = request.form
    try:
        report = offers.offer_batch(
            g.conn, g.staff, _upload_text("csv"), unit=unit, campaign=form.get("campaign", ""),
            ep=_offer_choice(form), time_type=form.get("time_type") or None,
        )  # fmt: skip
    except StaffError as error:
        return _offers_page(unit, message=_problem(error)), 400
    return _offers_page(unit, report.campaign, report=report)


@bp.post("/units/<unit>/offers/retry")
def offers_retry(unit: str) -> Any:
    form = request.form
    campaign = form.get("campaign", "")
    resident = (form.get("resident") or "").strip()
    correction = offers.OfferChoice(unit_offer_id=(form.get("ep_unit_offer") or "").strip() or None)
    try:
        retried = offers.retry_offers(
            g.conn, g.staff, unit=unit, campaign=campaign, residents=[resident] if resident else None, ep=correction
        )
    except StaffError as error:
        return _offers_page(unit, campaign, message=_problem(error)), 400
    done = f"{retried.queued} erbjudande(n) skickas igen."
    return _offers_page(unit, retried.campaign, done=done)


@bp.post("/units/<unit>/offers/withdraw")
def offers_withdraw(unit: str) -> Any:
    form = request.form
    campaign = form.get("campaign", "")
    try:
        withdrawn = offers.withdraw_offer(
            g.conn, g.staff, unit=unit, campaign=campaign, resident=form.get("resident", "")
        )
    except StaffError as error:
        return _offers_page(unit, campaign, message=_problem(error)), 400
    return _offers_page(unit, withdrawn.campaign, done=labels.WITHDRAWN[withdrawn.done])


# -- a sick day ----------------------------------------------------------------------------------


def _period_args(values: Any) -> tuple[str, date, date] | None:
    performer = (values.get("performer") or "").strip()
    if not performer or not values.get("first"):
        return None
    first = _day(values.get("first"))
    return performer, first, _day(values.get("last"), first)


@bp.get("/units/<unit>/sick-day")
def sick_day(unit: str) -> tuple[str, int]:
    period = _period_args(request.args)
    affected, message = None, None
    if period is not None:
        try:
            affected = sickday.preview(g.conn, unit=unit, performer=period[0], first=period[1], last=period[2])
        except StaffError as error:
            message = _problem(error)
    page = render_template(
        "sickday.html", unit=unit.upper(), catalogue=calendar.catalogue(g.conn, unit), period=period,
        affected=affected, message=message, finished=False,
    )  # fmt: skip
    return page, 400 if message else 200


@bp.post("/units/<unit>/sick-day")
def sick_day_confirm(unit: str) -> tuple[str, int]:
    period = _period_args(request.form)
    if period is None:
        raise PageError(400, "Välj utförare och period.")
    try:
        affected = sickday.cancel_period(
            g.conn, g.staff, unit=unit, performer=period[0], first=period[1], last=period[2],
            note=request.form.get("note") or None,
        )  # fmt: skip
    except StaffError as error:
        raise PageError(400, _problem(error)) from None
    page = render_template(
        "sickday.html", unit=unit.upper(), catalogue=calendar.catalogue(g.conn, unit), period=period,
        affected=affected, message=None, finished=True,
    )  # fmt: skip
    return page, 200


@bp.get("/units/<unit>/sick-day.csv")
def sick_day_csv(unit: str) -> Response:
    period = _period_args(request.args)
    if period is None:
        raise PageError(400, "Välj utförare och period.")
    affected = _call_page(sickday.cancelled, g.conn, unit=unit, performer=period[0], first=period[1], last=period[2])
    name = f"sjukdag-{period[0]}-{period[1]}-{period[2]}.csv"
    return Response(
        "\ufeff" + sickday.as_csv(affected),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- schedules and booking rules ---------------------------------------------------------------------------


@bp.route("/units/<unit>/schedules", methods=["GET", "POST"])
def schedules(unit: str) -> tuple[str, int]:
    if request.method == "GET":
        return render_template("schedules.html", unit=unit.upper(), report=None, text=None), 200
    if not g.session.account.access.all_units:
        raise PageError(403, "Scheman kan röra alla enheter: inläsning kräver behörighet till alla enheter.")
    text = _upload_text("schedule")
    kind = (request.form.get("kind") or "csv").lower()
    if kind not in ("csv", "yaml", "json"):
        raise PageError(400, "Välj CSV, YAML eller JSON.")
    source = (
        Source.csv("schema.csv", text.encode()) if kind == "csv" else Source.setup_text(f"schema.{kind}", text, kind)
    )
    confirm = request.form.get("confirm") == "yes"
    report = load(g.conn, [source], Options(dry_run=not confirm, list_slots=LISTED_SLOTS))
    if confirm:  # a load changes the calendar: its audit line, as every staff change has one
        audit.record(g.staff, "StaffLoad", "OK" if report.written else "REFUSED", None, unit)
    page = render_template("schedules.html", unit=unit.upper(), report=report, text=text, kind=kind, confirmed=confirm)
    return page, 200 if report.ok else 422


def _duration(field: str, value: str | None, unit_seconds: int) -> timedelta | None:
    if value is None or not value.strip():
        return None
    try:
        amount = float(value.replace(",", "."))
    except ValueError:
        raise StaffError(field, "must be a number") from None
    return timedelta(seconds=amount * unit_seconds)


@bp.route("/units/<unit>/rules", methods=["GET", "POST"])
def rules(unit: str) -> tuple[str, int]:
    message, status, saved = None, 200, None
    if request.method == "POST":
        form = request.form
        code = form.get("code", "")
        try:
            allowed = form.get("max_active_per_resident", "").strip()
            change = RuleChange(
                self_booking=form.get("self_booking") == "on",
                min_lead=_duration("min_lead", form.get("min_lead_hours"), 3600) or timedelta(0),
                horizon=_duration("horizon", form.get("horizon_days"), 86400),
                max_active_per_resident=int(allowed) if allowed.isdigit() else None,
                change_deadline=_duration("change_deadline", form.get("change_deadline_hours"), 3600),
                message_allowed={"yes": True, "no": False}.get(form.get("message_allowed", "")),
                purpose=(form.get("purpose") or "").strip() or None,
            )
            if allowed and not allowed.isdigit():
                raise StaffError("max_active_per_resident", "must be a whole number")
            timetypes.set_rules(g.conn, g.staff, code, unit=unit, change=change)
            saved = code
        except StaffError as error:
            message, status = _problem(error), 400
    found = _call_page(timetypes.rules, g.conn, unit)
    page = render_template("rules.html", unit=unit.upper(), rules=found, message=message, saved=saved)
    return page, status


# -- find a resident -----------------------------------------------------------------------------


@bp.get("/residents")
def residents() -> tuple[str, int]:
    resident = (request.args.get("resident") or "").strip()
    found, message = None, None
    if resident:
        try:
            found = calendar.resident_bookings(g.conn, resident, [hsa for hsa, _ in _my_units()])
        except StaffError as error:
            message = _problem(error)
    return render_template("resident.html", resident=resident, found=found, message=message), 400 if message else 200
