"""The flows as a Postman collection (format v2.1), which newman runs: one folder per flow, one POST per
step, the variables of the chain as collection variables, checks as test scripts.

Every request checks HTTP 200 and that the answer is no SOAP fault; MakeBooking, UpdateBooking and
CancelBooking also that resultCode is OK. Values are read from the answer text with a small regular
expression on element local names (any prefix), so the scripts need nothing but Postman's sandbox.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from producer.soap.contract import Contract
from producer.testkit.envelopes import request_envelope
from producer.testkit.facts import DemoFacts
from producer.testkit.flows import Check, Day, Extract, Flow, Has, Step, Var, days, variables

SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
NAME = "tidbok crm:scheduling 1.1: the fixed demo"
NAMESPACE = uuid.UUID("5f0e6b8e-7d6c-4c55-9a4e-2c1f1f3b1d14")  # stable ids: the same file every time

# Postman runs each script on its own: the helpers are repeated in every test script.
HELPERS = [
    "const text = pm.response.text();",
    r'const OPEN = "<(?:[\\w.-]+:)?", CLOSE = "</(?:[\\w.-]+:)?";',
    r'function pattern(name) { return OPEN + name + "(?:\\s[^>]*)?>([^<]*)" + CLOSE + name + ">"; }',
    'function all(name) { return Array.from(text.matchAll(new RegExp(pattern(name), "g")), (m) => m[1].trim()); }',
    "function first(name, within) {",
    "    let xml = text;",
    "    if (within) {",
    r'        const b = new RegExp(OPEN + within + "[\\s>][\\s\\S]*?" + CLOSE + within + ">").exec(xml);',
    "        if (!b) return null;",
    "        xml = b[0];",
    "    }",
    "    const m = new RegExp(pattern(name)).exec(xml);",
    "    return m ? m[1].trim() : null;",
    "}",
    'pm.test("HTTP 200", function () { pm.response.to.have.status(200); });',
    r'pm.test("no SOAP fault", function () { pm.expect(text).to.not.match(/<(?:[\w.-]+:)?Fault[\s>]/); });',
]


def _value(value: Any) -> Any:
    """A flow value in Postman's syntax."""
    if isinstance(value, Var | Day):
        return "{{" + value.name + "}}"
    if isinstance(value, dict):
        return {key: _value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_value(item) for item in value]
    return value


def _js(value: Any) -> str:
    """A check's expected value as JavaScript: a variable's current value, or a literal."""
    if isinstance(value, Var):
        return f"pm.collectionVariables.get({json.dumps(value.name)})"
    return json.dumps(value)


def _tests(step: Step) -> list[str]:
    lines = list(HELPERS)
    if step.result_code:
        lines.append('pm.test("resultCode OK", function () { pm.expect(first("resultCode")).to.equal("OK"); });')
    for check in step.checks:
        found = f"all({json.dumps(check.element)})"
        lines.append(f"pm.test({_check_name(check)}, function () {{ pm.expect({found}){_assert(check)}; }});")
    for extract in step.extract:
        lines.extend(_extract(extract))
    return lines


def _check_name(check: Check) -> str:
    """The test's name, as JavaScript (a variable's value is shown as it is when the test runs)."""
    if check.why:
        return json.dumps(check.why)
    if check.value is None:
        return json.dumps(("has " if isinstance(check, Has) else "no ") + check.element)
    words = f"{check.element} is " if isinstance(check, Has) else f"no {check.element} "
    return f"{json.dumps(words)} + {_js(check.value)}"


def _assert(check: Check) -> str:
    if check.value is None:
        return ".to.not.be.empty" if isinstance(check, Has) else ".to.be.empty"
    return f".to{'' if isinstance(check, Has) else '.not'}.include({_js(check.value)})"


def _extract(extract: Extract) -> list[str]:
    within = f", {json.dumps(extract.within)}" if extract.within else ""
    what = extract.element + (f" of the first {extract.within}" if extract.within else "")
    return [
        f"const {extract.variable} = first({json.dumps(extract.element)}{within});",
        f'pm.test("the answer has a {what} (for {extract.variable})", function () {{'
        f' pm.expect({extract.variable}).to.be.a("string").and.not.be.empty; }});',
        f"pm.collectionVariables.set({json.dumps(extract.variable)}, {extract.variable});",
    ]


def _item(step: Step, contract: Contract, facts: DemoFacts) -> dict[str, Any]:
    interaction = contract.interactions[step.interaction]
    body = request_envelope(interaction, _value(step.unit), (facts.resident, "subject_of_care"), _value(step.body))
    action = f'"urn:riv:crm:scheduling:{step.interaction}Responder:1:{step.interaction}"'
    return {
        "name": step.name,
        "event": [{"listen": "test", "script": {"type": "text/javascript", "exec": _tests(step)}}],
        "request": {
            "method": "POST",
            "header": [
                {"key": "Content-Type", "value": "text/xml; charset=utf-8"},
                {"key": "SOAPAction", "value": action},
            ],
            "body": {"mode": "raw", "raw": body, "options": {"raw": {"language": "xml"}}},
            "url": {
                "raw": f"{{{{baseUrl}}}}/{step.interaction}/1/rivtabp21",
                "host": ["{{baseUrl}}"],
                "path": [step.interaction, "1", "rivtabp21"],
            },
            "description": f"{step.interaction} ({interaction.request_qname})",
        },
    }


def _days_script(flows: tuple[Flow, ...]) -> list[str]:
    """Before each request: the relative days as YYYYMMDD in Stockholm time. Postman's sandbox has no
    Intl time zones, so the EU summer-time rule (last Sunday of March to that of October, 01:00 UTC)
    is applied here."""
    lines = [
        "function lastSunday(year, month) {",
        "    const day = new Date(Date.UTC(year, month + 1, 0, 1));",
        "    day.setUTCDate(day.getUTCDate() - day.getUTCDay());",
        "    return day;",
        "}",
        "function stockholmDay(offset) {",
        "    const now = new Date();",
        "    const year = now.getUTCFullYear();",
        "    const summer = now >= lastSunday(year, 2) && now < lastSunday(year, 9);",
        "    const wall = new Date(now.getTime() + (summer ? 2 : 1) * 3600000);",
        "    wall.setUTCDate(wall.getUTCDate() + offset);",
        "    const two = (n) => String(n).padStart(2, '0');",
        "    return wall.getUTCFullYear() + two(wall.getUTCMonth() + 1) + two(wall.getUTCDate());",
        "}",
    ]
    for day in days(flows):
        lines.append(f"pm.collectionVariables.set({json.dumps(day.name)}, stockholmDay({day.offset}));")
    return lines


def collection(flows: tuple[Flow, ...], contract: Contract, facts: DemoFacts, base_url: str) -> dict[str, Any]:
    description = (
        "crm:scheduling 1.1 (RIVTABP21) against tidbok's fixed demo: all eleven operations and the 1177 flows "
        "chained through variables. Run it against a freshly reset demo (`tidbok demo reset`): folder 3 books "
        "the demo's open invitation, which can be done once. Set `baseUrl` to your producer."
    )
    return {
        "info": {
            "_postman_id": str(uuid.uuid5(NAMESPACE, NAME)),
            "name": NAME,
            "description": description,
            "schema": SCHEMA,
        },
        "event": [{"listen": "prerequest", "script": {"type": "text/javascript", "exec": _days_script(flows)}}],
        "variable": [
            {"key": "baseUrl", "value": base_url, "type": "string"},
            *({"key": name, "value": "", "type": "string"} for name in variables(flows)),
        ],
        "item": [
            {
                "name": flow.name,
                "description": flow.description,
                "item": [_item(step, contract, facts) for step in flow.steps],
            }
            for flow in flows
        ],
    }


def write(flows: tuple[Flow, ...], contract: Contract, facts: DemoFacts, base_url: str) -> str:
    return json.dumps(collection(flows, contract, facts, base_url), indent=2, ensure_ascii=False) + "\n"
