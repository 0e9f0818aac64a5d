"""crm:scheduling 1.1 by name: its eleven interactions, the RIV-TA header QNames and where its files are.

Kept apart from producer.soap.contract (which compiles the XSDs) so that settings can check a
consumer's contract list without loading the schema machinery.
"""

from __future__ import annotations

from pathlib import Path

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"  # our rendition of the XSDs and WSDLs
SCHEDULING_DIR = "crm_scheduling_1.1"
INTERACTIONS = (
    "GetAvailableDates",
    "GetAvailableTimeslots",
    "MakeBooking",
    "UpdateBooking",
    "CancelBooking",
    "GetBookingDetails",
    "GetSubjectOfCareSchedule",
    "GetAllHealthcareFacilities",
    "GetAllPerformers",
    "GetAllTimeTypes",
    "GetAllCareTypes",
)
REGISTRY_NS = "urn:riv:itintegration:registry:1"
HEADERS_NS = "urn:riv:interoperability:headers:1"
LOGICAL_ADDRESS = f"{{{REGISTRY_NS}}}LogicalAddress"
ACTOR = f"{{{HEADERS_NS}}}Actor"


def responder_namespace(interaction: str) -> str:
    return f"urn:riv:crm:scheduling:{interaction}Responder:1"
