"""The two interactions' messages as spyne models: the official contract's namespaces, element
names, order and cardinality (crm:scheduling 1.1, TD_SCHEDULING_1_1_1_R).

spyne 2.14 writes and reads an element of another namespace inside a type (`sub_ns`: the 1.1
extension elements subject_of_care, firstName, lastName, isInvitation), but leaves `sub_ns` out of
the XML schema it generates (spyne/interface/xml_schema/model.py, "#ns = a.sub_ns"), so its
`validator="lxml"` refuses every contract request; the peer validates with spyne's "soft"
validator, which checks the same restrictions (patterns, enumerations, occurrences) in Python.
"""

from __future__ import annotations

from spyne import Boolean, ComplexModel, Unicode

CORE = "urn:riv:crm:scheduling:1"
CORE_EXT = "urn:riv:crm:scheduling:1.1"
TIMESLOTS = "urn:riv:crm:scheduling:GetAvailableTimeslotsResponder:1"
TIMESLOTS_EXT = "urn:riv:crm:scheduling:GetAvailableTimeslotsResponder:1.1"
BOOKING = "urn:riv:crm:scheduling:MakeBookingResponder:1"
REGISTRY = "urn:riv:itintegration:registry:1"
HEADERS = "urn:riv:interoperability:headers:1"

# The official patterns; the personnummer's without its literal ^ and $ (contracts/README.md).
TS_PATTERN = (
    "[1-9]{1}[0-9]{3}(0[1-9]{1}|1[0-2]{1})([0-2]{1}[0-9]{1}|3[0-1]{1})([0-1]{1}[0-9]{1}|2[0-3]{1})"
    "[0-5]{1}[0-9]{1}[0-5]{1}[0-9]{1}"
)
DT_PATTERN = "[1-9]{1}[0-9]{3}(0[1-9]{1}|1[0-2]{1})([0-2]{1}[0-9]{1}|3[0-1]{1})"
PNR_PATTERN = "[0-9]{8}[0-9pPtTfF][0-9]{3}"

REQUIRED = {"min_occurs": 1, "nillable": False}
TS = Unicode(pattern=TS_PATTERN, type_name="TS")
DT = Unicode(pattern=DT_PATTERN, type_name="DT")
SubjectOfCareId = Unicode(pattern=PNR_PATTERN, type_name="SubjectOfCareIdType")


class TimeslotType(ComplexModel):
    __namespace__ = CORE
    _type_info = [
        ("startTimeInclusive", TS),
        ("endTimeExclusive", TS),
        ("healthcare_facility", Unicode(**REQUIRED)),
        ("performer", Unicode),
        ("bookingId", Unicode),
        ("subject_of_care", SubjectOfCareId),
        ("purpose", Unicode),
        ("reason", Unicode),
        ("resourceName", Unicode),
        ("healthcare_facility_name", Unicode),
        ("performerName", Unicode),
        ("resourceID", Unicode),
        ("timeTypeName", Unicode),
        ("timeTypeID", Unicode),
        ("careTypeName", Unicode),
        ("careTypeID", Unicode),
        ("cancel_booking_allowed", Boolean),
        ("rebooking_allowed", Boolean),
        ("message_allowed", Boolean),
        ("isInvitation", Boolean(sub_ns=CORE_EXT)),
    ]


class SubjectOfCareType(ComplexModel):
    __namespace__ = CORE
    _type_info = [
        ("phone", Unicode),
        ("email", Unicode),
        ("address", Unicode),
        ("coaddress", Unicode),
        ("firstName", Unicode(sub_ns=CORE_EXT, **REQUIRED)),
        ("middleName", Unicode(sub_ns=CORE_EXT)),
        ("lastName", Unicode(sub_ns=CORE_EXT, **REQUIRED)),
    ]


class GetAvailableTimeslotsType(ComplexModel):
    __namespace__ = TIMESLOTS
    _type_info = [
        ("healthcare_facility", Unicode(**REQUIRED)),
        ("bookingId", Unicode),
        ("startDateInclusive", DT(**REQUIRED)),
        ("endDateInclusive", DT(**REQUIRED)),
        ("performer", Unicode(max_occurs="unbounded")),
        ("timeTypeName", Unicode),
        ("timeTypeID", Unicode),
        ("careTypeName", Unicode),
        ("careTypeID", Unicode),
        ("subject_of_care", SubjectOfCareId(sub_ns=TIMESLOTS_EXT, **REQUIRED)),
    ]


class GetAvailableTimeslotsResponseType(ComplexModel):
    __namespace__ = TIMESLOTS
    _type_info = [("timeslotDetail", TimeslotType.customize(max_occurs="unbounded"))]


class MakeBookingType(ComplexModel):
    __namespace__ = BOOKING
    _type_info = [
        ("healthcare_facility_med", Unicode(**REQUIRED)),
        ("requestedTimeslot", TimeslotType.customize(**REQUIRED)),
        ("subject_of_care_info", SubjectOfCareType.customize(**REQUIRED)),
        ("notification", Unicode),
    ]


class MakeBookingResponseType(ComplexModel):
    __namespace__ = BOOKING
    _type_info = [
        ("bookingId", Unicode),
        ("resultCode", Unicode(values=["OK", "ERROR", "INFO"], type_name="ResultCodeEnum", **REQUIRED)),
        ("resultText", Unicode),
    ]


# The RIVTA headers as the WSDLs bind them: <itr:LogicalAddress> text, <ih:Actor> (optional). spyne
# finds a header by its type's namespace and name, so each type is named as its element.
class LogicalAddress(Unicode):
    __namespace__ = REGISTRY
    __type_name__ = "LogicalAddress"


class Actor(ComplexModel):
    __namespace__ = HEADERS
    __type_name__ = "Actor"
    _type_info = [("actorId", Unicode(**REQUIRED)), ("actorType", Unicode(**REQUIRED))]


HEADER_TYPES = (LogicalAddress, Actor)
