"""The OfferInteraction operations: SOAP bytes in, SOAP bytes out, in the stub's namespace.

A message EP cannot read (not XML, not SOAP 1.1, an unknown SOAPAction, the wrong body element, a
value of the wrong type) is a SOAP fault with HTTP 500, as from WCF; everything it can read is
answered 200 with ResultOfCall: the refusals in a ValidationErrorList, an injected technical error in
a TechnicalErrorList, HasError true with either.
"""

from __future__ import annotations

from dataclasses import dataclass

from egen_provhantering.contract import ADD, Operation
from egen_provhantering.messages import TechnicalError, ValidationError
from egen_provhantering.stub.rules import Request, read_request, refusals
from egen_provhantering.stub.store import Store
from producer.soap.codec import escape_text
from producer.soap.envelope import SOAP_ENV, SoapFault, fault_envelope, parse_envelope

XSI = "http://www.w3.org/2001/XMLSchema-instance"
INJECTED = TechnicalError(
    header="Tekniskt fel",
    message="Ett oväntat fel inträffade i Egen provhantering. Rapportera felet till support för EP."
    " (Injicerat av EP-stubben.)",
)


@dataclass(frozen=True)
class Handled:
    status: str
    body: bytes
    operation: str  # the operation's name, or "-" when the message could not be read
    outcome: str
    request: Request | None = None


class OfferService:
    def __init__(self, store: Store, namespace: str) -> None:
        self.store = store
        self.namespace = namespace

    def handle(self, call: int, body: bytes, action: str | None, request_id: str | None, technical: bool) -> Handled:
        """One SOAP call; `technical`: answer the injected TechnicalErrorList instead of carrying it out."""
        try:
            request = read_request(parse_envelope(body), action, self.namespace)
        except SoapFault as fault:
            return Handled("500 Internal Server Error", fault_envelope(fault), "-", "fault")
        operation = request.operation
        if technical:
            return self._answer(request, "technical", technical=(INJECTED,))
        errors = refusals(request, self.store.config.register)
        if errors:
            return self._answer(request, "refused", validation=tuple(errors))
        if operation is ADD:
            already = self.store.add(call, request, request_id)
            return self._answer(request, "already_given" if already else "given", flag=already)
        found = self.store.undo(call, request)
        return self._answer(request, "undone" if found else "nothing_to_undo", flag=found)

    def _answer(
        self,
        request: Request,
        outcome: str,
        *,
        flag: bool = False,
        validation: tuple[ValidationError, ...] = (),
        technical: tuple[TechnicalError, ...] = (),
    ) -> Handled:
        operation = request.operation
        xml = response_xml(operation, flag, validation, technical, self.namespace, self.store.config.nil_lists)
        return Handled("200 OK", xml, operation.name, outcome, request)


def response_xml(
    operation: Operation,
    flag: bool,
    validation: tuple[ValidationError, ...],
    technical: tuple[TechnicalError, ...],
    namespace: str,
    nil_lists: bool,
) -> bytes:
    """The answer in the seed's table order: ResultOfCall (HasError, ValidationErrorList,
    TechnicalErrorList), then the operation's flag. Empty lists: xsi:nil when nil_lists, else left out."""

    def listed(name: str, items: list[str]) -> str:
        if items:
            return f"<{name}>{''.join(items)}</{name}>"
        return f'<{name} i:nil="true"/>' if nil_lists else ""

    validation_items = [
        f"<ValidationError><Container>{escape_text(e.container)}</Container><Element>{escape_text(e.element)}"
        f"</Element><Text>{escape_text(e.text)}</Text></ValidationError>"
        for e in validation
    ]
    technical_items = [
        f"<TechnicalError><Header>{escape_text(e.header)}</Header><Message>{escape_text(e.message)}</Message>"
        "</TechnicalError>"
        for e in technical
    ]
    has_error = "true" if validation or technical else "false"
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>'
        f'<{operation.response} xmlns="{escape_text(namespace)}" xmlns:i="{XSI}">'
        f"<ResultOfCall><HasError>{has_error}</HasError>"
        f"{listed('ValidationErrorList', validation_items)}{listed('TechnicalErrorList', technical_items)}"
        f"</ResultOfCall><{operation.flag}>{'true' if flag else 'false'}</{operation.flag}>"
        f"</{operation.response}></s:Body></s:Envelope>"
    ).encode()
