"""The spyne services: one Application per responder namespace (spyne keys its methods on the
Application's namespace, as RIVTA keys them on the endpoint), each method handing the request to
tidbok's own interaction code, which runs the same queries and the same calendar changes.

What a spyne method gets is a model object; tidbok's interactions take the decoded dict a request
becomes in tidbok (producer.soap.codec.Decoded) and return one. The two small conversions here are
the glue a spyne port of tidbok would need; they are counted in the peer's time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from spyne import Application, ComplexModelBase, Fault, ServiceBase, rpc
from spyne.protocol.soap import Soap11

from producer.calendar.units import UnitCache
from producer.interactions.availability import get_available_timeslots
from producer.interactions.call import Call
from producer.interactions.make_booking import make_booking
from producer.platform.settings import Settings
from producer.soap.envelope import SoapFault
from tests.bench.peer_spyne import model

Handler = Callable[[Call, dict[str, Any], psycopg.Connection], dict[str, Any]]


@dataclass
class Backend:
    """What a worker's methods share: the settings, the pool and the units tidbok's workers keep."""

    settings: Settings
    pool: ConnectionPool
    units: UnitCache


def decoded(value: Any) -> Any:
    """A spyne model object as the dict tidbok's interactions read: local names, text stripped,
    absent elements left out, repeated ones as lists."""
    if isinstance(value, ComplexModelBase):
        out = {}
        for key in value.get_flat_type_info(value.__class__):
            field = getattr(value, key, None)
            if field is not None:
                out[key] = decoded(field)
        return out
    if isinstance(value, list):
        return [decoded(v) for v in value]
    return value.strip() if isinstance(value, str) else value


def _answer(ctx: Any, interaction: str, handler: Handler, request: Any) -> dict[str, Any]:
    """Run tidbok's handler for the request within the headers' care unit; a SoapFault of tidbok's
    (a wrong request) becomes spyne's Fault."""
    backend: Backend = ctx.app.backend
    logical_address, actor = (ctx.in_header or (None, None))[:2]
    if not logical_address:
        raise Fault("Client", "The LogicalAddress header (urn:riv:itintegration:registry:1) is missing or empty")
    environ = ctx.transport.req_env
    try:
        with backend.pool.connection() as conn:
            unit = backend.units.unit(conn, logical_address.strip().upper())
            if unit is None:
                raise Fault("Client", "The logical address is unknown: no such care unit here")
            call = Call(
                interaction=interaction,
                unit=unit,
                actor_id=actor.actorId if actor is not None else None,
                actor_type=actor.actorType if actor is not None else None,
                caller=None,  # plain HTTP: nobody identified, as the benchmarked producer
                consumer_hsa_id=environ.get("HTTP_X_RIVTA_ORIGINAL_SERVICECONSUMER_HSAID"),
                correlation_id=environ.get("HTTP_X_SKLTP_CORRELATION_ID"),
                now=datetime.now(UTC),
                settings=backend.settings,
                units=backend.units,
            )
            return handler(call, decoded(request), conn)
    except SoapFault as fault:
        raise Fault(fault.code, fault.message) from None


class GetAvailableTimeslotsService(ServiceBase):
    @rpc(
        model.GetAvailableTimeslotsType,
        _body_style="bare",
        _in_message_name=f"{{{model.TIMESLOTS}}}GetAvailableTimeslots",
        _returns=model.GetAvailableTimeslotsResponseType,
        _out_message_name=f"{{{model.TIMESLOTS}}}GetAvailableTimeslotsResponse",
        _in_header=model.HEADER_TYPES,
    )
    def GetAvailableTimeslots(ctx: Any, request: Any) -> Any:  # noqa: N802, N805 (spyne's names)
        result = _answer(ctx, "GetAvailableTimeslots", get_available_timeslots, request)
        return model.GetAvailableTimeslotsResponseType(
            timeslotDetail=[model.TimeslotType(**slot) for slot in result["timeslotDetail"]]
        )


class MakeBookingService(ServiceBase):
    @rpc(
        model.MakeBookingType,
        _body_style="bare",
        _in_message_name=f"{{{model.BOOKING}}}MakeBooking",
        _returns=model.MakeBookingResponseType,
        _out_message_name=f"{{{model.BOOKING}}}MakeBookingResponse",
        _in_header=model.HEADER_TYPES,
    )
    def MakeBooking(ctx: Any, request: Any) -> Any:  # noqa: N802, N805
        return model.MakeBookingResponseType(**_answer(ctx, "MakeBooking", make_booking, request))


def applications(backend: Backend) -> dict[str, Application]:
    """The two spyne Applications by interaction name: SOAP 1.1 in and out (lxml), soft validation."""
    apps = {
        "GetAvailableTimeslots": Application(
            [GetAvailableTimeslotsService],
            tns=model.TIMESLOTS,
            name="GetAvailableTimeslotsResponderService",
            in_protocol=Soap11(validator="soft"),
            out_protocol=Soap11(),
        ),
        "MakeBooking": Application(
            [MakeBookingService],
            tns=model.BOOKING,
            name="MakeBookingResponderService",
            in_protocol=Soap11(validator="soft"),
            out_protocol=Soap11(),
        ),
    }
    for app in apps.values():
        app.backend = backend
    return apps
