"""The EI fault codes and texts, worded as skltp/ei words them (EiErrorCodeEnum, "CODE: text").

A producer decides from the code whether to retry (EI000) or fix its data (EI002, EI004-EI006), so the
stub answers with the real texts, typos included, rather than prettier ones of its own.
"""

from __future__ import annotations

from producer.soap.envelope import SoapFault

CODES = ("EI000", "EI001", "EI002", "EI003", "EI004", "EI005", "EI006")


def ei_fault(code: str, text: str) -> SoapFault:
    # The real EI throws from a Camel processor, which CXF turns into soap:Server; only schema problems
    # (EI001) are the caller's message itself.
    return SoapFault("Client" if code == "EI001" else "Server", f"{code}: {text}")


def technical(detail: str) -> SoapFault:
    return ei_fault("EI000", f"A technical error has occurred, error message: {detail}")


def not_schema_valid(detail: str) -> SoapFault:
    return ei_fault("EI001", f"The payload does not follow the XML Schema, error messge: {detail}")


def duplicate_key(first: int, second: int) -> SoapFault:
    return ei_fault(
        "EI002",
        f"EngagementTransaction #{first} and #{second} have the same key. That is not allowed. "
        "See rule for Update-R1 in service contract",
    )


def wrong_logical_address(logical_address: str, owner: str) -> SoapFault:
    return ei_fault(
        "EI003",
        f"Invalid routing. Logical address is {logical_address} but the owner is {owner}. "
        "They must be the same. See rule for Update-R7 in service contract",
    )


def invalid(detail: str) -> SoapFault:
    return ei_fault("EI004", f"The payload does not validate, error messge: {detail}")


def reserved_logical_address(index: int, hsa_id: str) -> SoapFault:
    return ei_fault(
        "EI005", f"The logicalAddress in EngagementTransaction #{index} is reserved and not allowed, hsa-id: {hsa_id}"
    )


def reserved_source_system(index: int, hsa_id: str) -> SoapFault:
    return ei_fault(
        "EI006", f"The sourceSystem in EngagementTransaction #{index} is reserved and not allowed, hsa-id: {hsa_id}"
    )


def injected(code: str, owner: str) -> SoapFault:
    """The fault POST /_stub/control asked for: the real wording, with placeholders for its details."""
    note = "injected by the EI stub"
    return {
        "EI000": lambda: technical(note),
        "EI001": lambda: not_schema_valid(note),
        "EI002": lambda: duplicate_key(1, 2),
        "EI003": lambda: wrong_logical_address(f"({note})", owner),
        "EI004": lambda: invalid(note),
        "EI005": lambda: reserved_logical_address(1, owner),
        "EI006": lambda: reserved_source_system(1, owner),
    }[code]()
