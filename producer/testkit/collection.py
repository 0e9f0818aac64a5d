"""`tidbok collection`: the demo flows (producer.testkit.flows) as a Postman collection or a SoapUI project."""

from __future__ import annotations

from producer.soap.contract import load_contract
from producer.testkit import flows, postman, soapui
from producer.testkit.facts import DemoFacts

BASE_URL = "http://127.0.0.1:8080"  # the baseUrl variable's default: `make run`
FORMATS = ("postman", "soapui")


def write(kind: str, facts: DemoFacts, base_url: str = BASE_URL) -> str:
    """The collection's text in `kind` (postman: JSON, soapui: XML)."""
    contract = load_contract()
    demo_flows = flows.flows(facts)
    if kind == "postman":
        return postman.write(demo_flows, contract, facts, base_url)
    if kind == "soapui":
        return soapui.write(demo_flows, contract, facts, base_url)
    raise ValueError(f"no collection format {kind!r} (known: {', '.join(FORMATS)})")
