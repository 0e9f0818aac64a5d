"""The EI Update client: the request written as text (engagement_index.update_request), the answer
read by zeep, built from our rendition of the EI Update WSDL.

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
from engagement_index.update_request import update_request
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
    """One per publisher thread: its own HTTP session (keep-alive, TLS) and zeep client.

    zeep serialising a thousand engagements through the WSDL's types cost the publisher about 70 ms
    of CPU per call, two thirds of all it did; the request is written as text instead, posted on
    zeep's transport and its answer handled by zeep's binding as before (faults, HTTP errors)."""

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
        self._url = url
        self._binding = client.create_service(BINDING, url)._binding
        self._operation = self._binding.get("Update")
        self._http_headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{self._operation.soapaction}"',  # as zeep sends it (SOAP 1.1)
        }
        self._logical_address = settings.logical_address

    def update(self, transactions: Sequence[Transaction]) -> None:
        """Send one Update; returns when EI answered OK (or INFO), raises DataError or Unavailable.

        Each call carries a new X-Request-ID and the publishing round's X-Context-ID (seed 002), so
        one round's calls (a batch and its halves, when EI refuses one) can be followed in EI's logs."""
        context_id = tracing.context_id.get()
        headers = {**self._http_headers, tracing.REQUEST_ID: str(uuid.uuid4())}
        if context_id != "-":
            headers[tracing.CONTEXT_ID] = context_id
        body = update_request(transactions, self._logical_address)
        try:
            reply = self._client.transport.post(self._url, body, headers)
            response = self._binding.process_reply(self._client, self._operation, reply)
        except zeep.exceptions.Fault as fault:
            message = str(fault.message or "SOAP fault without a message")
            if DATA_ERROR.match(message):
                raise DataError(message) from None
            raise Unavailable(f"EI answered a fault: {message}") from None
        except zeep.exceptions.TransportError as exc:
            raise Unavailable(f"EI answered HTTP {exc.status_code}") from None
        except (requests.RequestException, etree.XMLSyntaxError, zeep.exceptions.Error) as exc:
            raise Unavailable(f"EI could not be reached: {type(exc).__name__}: {exc}") from None
        if response is None:  # 201/202 without a body: no ResultCode, not an answer
            raise Unavailable("EI answered without a response body")
        if response.ResultCode == "ERROR":
            raise DataError(f"EI answered ResultCode ERROR: {response.comment or ''}")
