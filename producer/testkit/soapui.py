"""The flows as a SoapUI 5 project (the XML that SoapUI's File > Import Project opens).

- One WsdlInterface per interaction, built from our WSDL and the XSDs it imports (kept in the
  project's definition cache, at the URLs the producer serves them from, so SoapUI needs no network
  to open it), its endpoint ``${#Project#baseUrl}/<Interaction>/1/rivtabp21`` and one call with the
  demo's values.
- A test suite with one test case per flow: request steps (assertions: SOAP Response, HTTP 200,
  "SOAP Fault Assertion" (SoapUI's id for *Not SOAP Fault*), resultCode OK where there is one, and
  the flow's checks as XPath Match), each followed by a property transfer step when later steps
  need values from its answer. The relative days are Groovy expressions SoapUI evaluates when it
  sends (``${=…}``).
- The project property ``baseUrl``.

The elements, their order and the xsi:types follow SoapUI's own schema of its project files
(soapui.xsd, namespace http://eviware.com/soapui/config).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urljoin

from lxml import etree

from producer.soap.contract import Contract
from producer.testkit.envelopes import request_envelope
from producer.testkit.facts import DemoFacts
from producer.testkit.flows import Day, Extract, Flow, Has, Step, Var

CON = "http://eviware.com/soapui/config"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
SOAPUI_VERSION = "5.7.2"
NAME = "tidbok crm:scheduling 1.1: the fixed demo"
NAMESPACE = uuid.UUID("0b7d3c1e-5a2f-4f57-8a0b-6d1f0f5c2e31")  # stable ids: the same file every time
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _c(tag: str) -> str:
    return f"{{{CON}}}{tag}"


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, attrib: dict[str, str] | None = None, **attributes: str
) -> etree._Element:
    element = etree.SubElement(parent, _c(tag), {**(attrib or {}), **attributes})
    if text is not None:
        element.text = text
    return element


def _id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def _value(value: Any, scope: str | None = "TestCase") -> Any:
    """A flow value in SoapUI's syntax: properties of the test case, days as Groovy. Without a scope
    (an interface's demo call, outside any test case) a variable is SoapUI's "?": fill it in."""
    if isinstance(value, Var):
        return "?" if scope is None else "${#" + scope + "#" + value.name + "}"
    if isinstance(value, Day):
        return (
            "${=new Date().plus("
            + str(value.offset)
            + ").format('yyyyMMdd', TimeZone.getTimeZone('Europe/Stockholm'))}"
        )
    if isinstance(value, dict):
        return {key: _value(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [_value(item, scope) for item in value]
    return value


def _xpath_literal(value: str) -> str:
    return f"'{value}'" if "'" not in value else f'"{value}"'


def _endpoint(interaction: str) -> str:
    return "${#Project#baseUrl}/" + interaction + "/1/rivtabp21"


def _action(interaction: str) -> str:
    return f"urn:riv:crm:scheduling:{interaction}Responder:1:{interaction}"


def _definition_parts(contract: Contract, interaction: str, base_url: str) -> list[tuple[str, str, str]]:
    """(url, content, type) of the WSDL and every XSD it imports, at the URLs the producer serves."""
    root = contract.root.resolve()
    start = contract.interactions[interaction].wsdl_path.resolve()
    wsdl_url = f"{base_url.rstrip('/')}/{interaction}/1/rivtabp21?wsdl"
    parts: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    pending = [(start, wsdl_url, WSDL_NS)]
    while pending:
        path, url, kind = pending.pop(0)
        if url in seen:
            continue
        seen.add(url)
        text = path.read_text(encoding="utf-8")
        parts.append((url, text, kind))
        document = etree.fromstring(text.encode(), PARSER)
        for node in document.iter(f"{{{XSD_NS}}}import", f"{{{XSD_NS}}}include"):
            location = node.get("schemaLocation")
            if location:
                target = (path.parent / location).resolve()
                if root in target.parents and target.is_file():
                    pending.append((target, urljoin(url, location), XSD_NS))
    return parts


def _binding(contract: Contract, interaction: str) -> str:
    document = etree.parse(str(contract.interactions[interaction].wsdl_path), PARSER).getroot()
    binding = document.find(f"{{{WSDL_NS}}}binding")
    assert binding is not None, interaction
    return f"{{{document.get('targetNamespace')}}}{binding.get('name')}"


def _request_config(
    parent: etree._Element,
    name: str,
    interaction: str,
    body: str,
    identity: str,
    assertions: list[tuple[str, str, dict[str, str] | None]],
) -> etree._Element:
    """A WsdlRequest (a call, or a request step's request): settings, encoding, endpoint, the envelope,
    assertions, then what SoapUI writes for every request."""
    request = _sub(parent, "request" if parent.tag == _c("config") else "call", name=name, id=_id(identity))
    _sub(request, "settings")
    _sub(request, "encoding", "UTF-8")
    _sub(request, "endpoint", _endpoint(interaction))
    _sub(request, "request").text = etree.CDATA(body)
    for number, (kind, label, config) in enumerate(assertions):
        assertion = _sub(request, "assertion", type=kind, id=_id(identity, "assertion", str(number)), name=label)
        configuration = _sub(assertion, "configuration")
        for key, value in (config or {}).items():
            etree.SubElement(configuration, key).text = value
    credentials = _sub(request, "credentials")
    _sub(credentials, "authType", "No Authorization")
    _sub(request, "jmsConfig", JMSDeliveryMode="PERSISTENT")
    _sub(request, "jmsPropertyConfig")
    _sub(request, "wsaConfig", mustUnderstand="NONE", version="200508", action=_action(interaction))
    _sub(request, "wsrmConfig", version="1.2")
    return request


def _xpath_match(label: str, path: str, content: str) -> tuple[str, str, dict[str, str]]:
    return (
        "XPath Match",
        label,
        {
            "path": path,
            "content": content,
            "allowWildcards": "false",
            "ignoreNamspaceDifferences": "false",  # sic: SoapUI's own spelling
            "ignoreComments": "false",
        },
    )


def _assertions(step: Step) -> list[tuple[str, str, dict[str, str] | None]]:
    found: list[tuple[str, str, dict[str, str] | None]] = [
        ("SOAP Response", "SOAP Response", None),
        ("Valid HTTP Status Codes", "HTTP 200", {"codes": "200"}),
        ("SOAP Fault Assertion", "Not a SOAP fault", None),
    ]
    if step.result_code:
        found.append(_xpath_match("resultCode OK", "//*:resultCode/text()", "OK"))
    for check in step.checks:
        where = f"//*:{check.element}"
        if check.value is not None:
            where += f"[. = {_xpath_literal(_value(check.value))}]"
        label = check.why or f"{'has' if isinstance(check, Has) else 'no'} {check.element}" + (
            f" {_value(check.value)}" if check.value is not None else ""
        )
        found.append(_xpath_match(label, f"exists({where})", "true" if isinstance(check, Has) else "false"))
    return found


def _source_path(extract: Extract) -> str:
    if extract.within:
        return f"(//*:{extract.within})[1]/*:{extract.element}"
    return f"(//*:{extract.element})[1]"


def _interface(project: etree._Element, contract: Contract, interaction: str, body: str, base_url: str) -> None:
    binding = _binding(contract, interaction)
    name = binding.rpartition("}")[2]
    parts = _definition_parts(contract, interaction, base_url)
    interface = _sub(
        project,
        "interface",
        attrib={
            f"{{{XSI}}}type": "con:WsdlInterface",
            "id": _id("interface", interaction),
            "wsaVersion": "NONE",
            "name": name,
            "type": "wsdl",
            "bindingName": binding,
            "soapVersion": "1_1",
            "anonymous": "optional",
            "definition": parts[0][0],
        },
    )
    _sub(interface, "settings")
    cache = _sub(interface, "definitionCache", type="TEXT", rootPart=parts[0][0])
    for url, content, kind in parts:
        part = _sub(cache, "part")
        _sub(part, "url", url)
        _sub(part, "content").text = etree.CDATA(content)
        _sub(part, "type", kind)
    endpoints = _sub(interface, "endpoints")
    _sub(endpoints, "endpoint", _endpoint(interaction))
    operation = _sub(
        interface,
        "operation",
        id=_id("operation", interaction),
        isOneWay="false",
        action=_action(interaction),
        name=interaction,
        bindingOperationName=interaction,
        type="Request-Response",
        inputName="",
        receivesAttachments="false",
        sendsAttachments="false",
        anonymous="optional",
    )
    _sub(operation, "settings")
    _request_config(operation, "Demo request", interaction, body, f"call/{interaction}", [])


def _test_case(suite: etree._Element, flow: Flow, contract: Contract, facts: DemoFacts, names: dict[str, str]) -> None:
    case = _sub(
        suite,
        "testCase",
        id=_id("case", flow.name),
        failOnError="true",
        failTestCaseOnErrors="true",
        keepSession="false",
        maxResults="0",
        name=flow.name,
        searchProperties="true",
    )
    _sub(case, "description", flow.description)
    _sub(case, "settings")
    properties: list[str] = []
    for number, step in enumerate(flow.steps, start=1):
        step_name = f"{number:02d} {step.name}"
        body = request_envelope(
            contract.interactions[step.interaction],
            _value(step.unit),
            (facts.resident, "subject_of_care"),
            _value(step.body),
        )
        test_step = _sub(case, "testStep", type="request", name=step_name, id=_id("step", flow.name, step_name))
        _sub(test_step, "settings")
        config = _sub(test_step, "config", attrib={f"{{{XSI}}}type": "con:RequestStep"})
        _sub(config, "interface", names[step.interaction])
        _sub(config, "operation", step.interaction)
        _request_config(
            config, step_name, step.interaction, body, f"request/{flow.name}/{step_name}", _assertions(step)
        )
        if not step.extract:
            continue
        transfer_name = f"{number:02d} values from {step.interaction}"
        transfer = _sub(case, "testStep", type="transfer", name=transfer_name, id=_id("step", flow.name, transfer_name))
        _sub(transfer, "settings")
        config = _sub(transfer, "config", attrib={f"{{{XSI}}}type": "con:PropertyTransfersStep"})
        for extract in step.extract:
            properties.append(extract.variable)
            transfers = _sub(
                config,
                "transfers",
                setNullOnMissingSource="true",
                transferTextContent="true",
                failOnError="true",
                ignoreEmpty="false",
                transferToAll="false",
                entitize="false",
                transferChildNodes="false",
            )
            _sub(transfers, "name", extract.variable)
            _sub(transfers, "sourceType", "Response")
            _sub(transfers, "sourceStep", step_name)
            _sub(transfers, "sourcePath", _source_path(extract))
            _sub(transfers, "targetType", extract.variable)
            _sub(transfers, "targetStep", "#TestCase#")
            _sub(transfers, "targetPath", "")
            _sub(transfers, "type", "XPATH")
            _sub(transfers, "targetTransferType", "XPATH")
            _sub(transfers, "upgraded", "true")
    listed = _sub(case, "properties")
    for name in dict.fromkeys(properties):
        prop = _sub(listed, "property")
        _sub(prop, "name", name)
        _sub(prop, "value", "")


def project(flows: tuple[Flow, ...], contract: Contract, facts: DemoFacts, base_url: str) -> etree._Element:
    root = etree.Element(
        _c("soapui-project"),
        {
            "id": _id("project"),
            "activeEnvironment": "Default",
            "name": NAME,
            "resourceRoot": "",
            "soapui-version": SOAPUI_VERSION,
            "abortOnError": "false",
            "runType": "SEQUENTIAL",
        },
        nsmap={"con": CON, "xsi": XSI},
    )
    _sub(
        root,
        "description",
        "crm:scheduling 1.1 (RIVTABP21) against tidbok's fixed demo: all eleven operations and the 1177 flows. "
        "Run it against a freshly reset demo (tidbok demo reset); set the project property baseUrl.",
    )
    _sub(root, "settings")
    first_use = _first_uses(flows)
    names = {}
    for interaction in contract.interactions:
        step = first_use[interaction]
        body = request_envelope(
            contract.interactions[interaction],
            _value(step.unit, None),
            (facts.resident, "subject_of_care"),
            _value(step.body, None),
        )
        _interface(root, contract, interaction, body, base_url)
        names[interaction] = _binding(contract, interaction).rpartition("}")[2]
    suite = _sub(root, "testSuite", id=_id("suite"), name="Demo flows")
    _sub(
        suite,
        "description",
        "The 1177 flows of seeds 001 §4.3 and 003 against the fixed demo, chained through properties.",
    )
    _sub(suite, "settings")
    _sub(suite, "runType", "SEQUENTIAL")
    for flow in flows:
        _test_case(suite, flow, contract, facts, names)
    _sub(suite, "properties")
    properties = _sub(root, "properties")
    prop = _sub(properties, "property")
    _sub(prop, "name", "baseUrl")
    _sub(prop, "value", base_url)
    _sub(root, "wssContainer")
    _sub(root, "oAuth2ProfileContainer")
    _sub(root, "oAuth1ProfileContainer")
    return root


def _first_uses(flows: tuple[Flow, ...]) -> dict[str, Step]:
    """Each interaction's first step: its request is the interface's demo call."""
    found: dict[str, Step] = {}
    for flow in flows:
        for step in flow.steps:
            found.setdefault(step.interaction, step)
    return found


def write(flows: tuple[Flow, ...], contract: Contract, facts: DemoFacts, base_url: str) -> str:
    return etree.tostring(
        project(flows, contract, facts, base_url), xml_declaration=True, encoding="UTF-8", pretty_print=True
    ).decode()
