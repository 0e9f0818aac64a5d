"""Reusable test harness: the official contracts as referee, and producer processes to test.

Import from here in tests (``tests/`` is on sys.path via the rootdir conftest)::

    from support import DEMO_ACTOR, envelope, soap_post, http_get
"""

from support.official import (
    CORE_EXT_NS,
    CORE_NS,
    DEMO_ACTOR,
    DEMO_RESIDENT,
    INTERACTIONS,
    OFFICIAL_ROOT,
    SOAP_ENV,
    Caller,
    Official,
    OfficialClient,
    SchemaViolation,
    envelope,
    responder_namespace,
    soap_headers,
    validate_request,
    validate_response,
)
from support.server import ProducerServer, database_url, fresh_database, http_get, run_cli, soap_post

DEMO_UNITS = ("SE2321000016-A100", "SE2321000016-A200")

__all__ = [
    "CORE_EXT_NS",
    "CORE_NS",
    "DEMO_ACTOR",
    "DEMO_RESIDENT",
    "DEMO_UNITS",
    "INTERACTIONS",
    "OFFICIAL_ROOT",
    "SOAP_ENV",
    "Caller",
    "Official",
    "OfficialClient",
    "ProducerServer",
    "SchemaViolation",
    "database_url",
    "envelope",
    "fresh_database",
    "http_get",
    "responder_namespace",
    "run_cli",
    "soap_headers",
    "soap_post",
    "validate_request",
    "validate_response",
]
