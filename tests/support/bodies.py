"""Request bodies the tests write by hand (the SOAP engine's, the proxy identity's)."""

from __future__ import annotations

from support.official import DEMO_RESIDENT, responder_namespace

UNIT = "SE2321000016-A100"
GATT = responder_namespace("GetAllTimeTypes")
GATT_EXT = "urn:riv:crm:scheduling:GetAllTimeTypesResponder:1.1"


def get_all_time_types(subject_of_care: str = DEMO_RESIDENT, extra: str = "", unit: str = UNIT) -> str:
    return (
        f'<g:GetAllTimeTypes xmlns:g="{GATT}" xmlns:x="{GATT_EXT}">'
        f"<g:healthcare_facility>{unit}</g:healthcare_facility>"
        f"<x:subject_of_care>{subject_of_care}</x:subject_of_care>{extra}"
        "</g:GetAllTimeTypes>"
    )
