"""The EI Update client: zeep, built from our rendition of the EI Update WSDL.

Failures are sorted into the two kinds the publisher treats differently: a DataError (EI001,
EI002, EI004, EI005, EI006, or ResultCode ERROR) will fail again whatever we do, so the rows are
parked; anything else (timeout, connection error, HTTP 5xx, EI000, EI003, VP faults) is an
Unavailable and is retried with backoff (RIV-TA BP 2.1 rule 22).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

import requests
import zeep
import zeep.exceptions
from lxml import etree
from zeep.transports import Transport

from engagement_index.config import EiSettings
from engagement_index.transactions import Transaction
from producer.platform import tracing
from producer.soap.scheduling import CONTRACTS_DIR

UPDATE_WSDL = CONTRACTS_DIR / "engagementindex_1.0" / "interactions" / "UpdateInteraction"
UPDATE_WSDL = UPDATE_WSDL / "UpdateInteraction_1.0_RIVTABP21.wsdl"
BINDING = "{urn:riv:itintegration:engagementindex:Update:1:rivtabp21}UpdateResponderBinding"
DATA_ERROR = re.compile(r"^\s*(EI00[12456])\b")


class PublishError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message[:500]


class DataError(PublishError):
    """EI refused the content: resending the same content cannot succeed."""


class Unavailable(PublishError):
    """EI could not be reached or failed technically: try again later."""


class UpdateClient:
    """One per publisher process: a zeep client with its own HTTP session (keep-alive, TLS)."""

    def __init__(self, settings: EiSettings, url: str) -> None:
        session = requests.Session()
        if settings.client_cert is not None:
            session.cert = (str(settings.client_cert), str(settings.client_key))
        if settings.ca_bundle is not None:
            session.verify = str(settings.ca_bundle)
        transport = Transport(
            session=session, timeout=settings.timeout_seconds, operation_timeout=settings.timeout_seconds
        )
        client = zeep.Client(str(UPDATE_WSDL), transport=transport)
        self._client = client
        self._service = client.create_service(BINDING, url)
        self._headers = {"LogicalAddress": settings.logical_address}

    def update(self, transactions: Sequence[Transaction]) -> None:
        """Send one Update; returns when EI answered OK (or INFO), raises DataError or Unavailable.

        Each call carries a new X-Request-ID and the publishing round's X-Context-ID (seed 002), so
        one round's calls (a batch and its halves, when EI refuses one) can be followed in EI's logs."""
        context_id = tracing.context_id.get()
        headers = {tracing.REQUEST_ID: str(uuid.uuid4())}
        if context_id != "-":
            headers[tracing.CONTEXT_ID] = context_id
        try:
            with self._client.settings(extra_http_headers=headers):
                response = self._service.Update(
                    engagementTransaction=[t.as_zeep() for t in transactions], _soapheaders=self._headers
                )
        except zeep.exceptions.Fault as fault:
            message = str(fault.message or "SOAP fault without a message")
            if DATA_ERROR.match(message):
                raise DataError(message) from None
            raise Unavailable(f"EI answered a fault: {message}") from None
        except zeep.exceptions.TransportError as exc:
            raise Unavailable(f"EI answered HTTP {exc.status_code}") from None
        except (requests.RequestException, etree.XMLSyntaxError, zeep.exceptions.Error) as exc:
            raise Unavailable(f"EI could not be reached: {type(exc).__name__}: {exc}") from None
        if response.ResultCode == "ERROR":
            raise DataError(f"EI answered ResultCode ERROR: {response.comment or ''}")
