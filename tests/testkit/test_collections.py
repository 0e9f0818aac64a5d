"""`tidbok collection`: the Postman collection runs green with newman against a producer with the fixed
demo (the real npm package, installed once into pytest's cache folder), and the SoapUI project has
the structure SoapUI 5 reads (checked against SoapUI's own soapui.xsd by tests/testkit/soapui_schema.py,
run by hand: the schema is not shipped).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from support import INTERACTIONS, ProducerServer, run_cli

CON = "http://eviware.com/soapui/config"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
NEWMAN_VERSION = "6"  # major version installed when node is there
FLOWS = ("0 The fixed demo", "1 Catalogue", "2 Book, see, rebook, cancel", "3 Open invitation booked")


def c(tag: str) -> str:
    return f"{{{CON}}}{tag}"


def write(kind: str, out: Path, *args: str) -> Path:
    run_cli(["collection", "--format", kind, str(out), *args], {})
    return out


@pytest.fixture(scope="module")
def postman(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return json.loads(write("postman", tmp_path_factory.mktemp("postman") / "tidbok.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def soapui(tmp_path_factory: pytest.TempPathFactory) -> etree._Element:
    path = write("soapui", tmp_path_factory.mktemp("soapui") / "tidbok-soapui-project.xml")
    return etree.parse(str(path), PARSER).getroot()


# -- Postman ----------------------------------------------------------------------------------------


def requests_of(collection: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for folder in collection["item"] for item in folder["item"]]


def test_the_postman_collection_is_v2_1_with_a_base_url_variable(postman: dict[str, Any]) -> None:
    assert postman["info"]["schema"] == "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    assert {"key": "baseUrl", "value": "http://127.0.0.1:8080", "type": "string"} in postman["variable"]
    assert [folder["name"] for folder in postman["item"]] == list(FLOWS)
    paths = {item["request"]["url"]["path"][0] for item in requests_of(postman)}
    assert paths == set(INTERACTIONS)  # all eleven operations
    for item in requests_of(postman):
        request = item["request"]
        assert request["method"] == "POST" and request["url"]["raw"].startswith("{{baseUrl}}/")
        operation = request["url"]["path"][0]
        assert {"key": "SOAPAction", "value": f'"urn:riv:crm:scheduling:{operation}Responder:1:{operation}"'} in (
            request["header"]
        )
        tests = "\n".join(item["event"][0]["script"]["exec"])
        assert 'pm.test("HTTP 200"' in tests and 'pm.test("no SOAP fault"' in tests
        assert ('pm.test("resultCode OK"' in tests) == (operation in ("MakeBooking", "UpdateBooking", "CancelBooking"))


def test_a_base_url_can_be_given(tmp_path: Path) -> None:
    collection = json.loads(write("postman", tmp_path / "c.json", "--base-url", "https://tidbok.test:8443").read_text())
    assert {"key": "baseUrl", "value": "https://tidbok.test:8443", "type": "string"} in collection["variable"]


def test_every_variable_a_request_uses_is_set_before(postman: dict[str, Any]) -> None:
    """The chain: each {{name}} is the base URL, a day the collection computes, or set by an earlier step."""
    known = {"baseUrl"} | set(re.findall(r'set\("([^"]+)"', "\n".join(postman["event"][0]["script"]["exec"])))
    for folder in postman["item"]:
        for item in folder["item"]:
            used = set(re.findall(r"\{\{([^}]+)\}\}", json.dumps(item["request"])))
            assert used <= known, f"{folder['name']} / {item['name']} uses {used - known} before it is set"
            known |= set(
                re.findall(r'pm\.collectionVariables\.set\("([^"]+)"', "\n".join(item["event"][0]["script"]["exec"]))
            )


def _newman() -> Path:
    """newman, installed by npm into the virtual environment's folder (git-ignored, kept between runs)
    the first time; skips without node."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm not found: the Postman collection's newman run needs Node.js (npm install newman)")
    return Path(npm)


@pytest.fixture(scope="module")
def newman() -> Path:
    npm = _newman()
    folder = Path(sys.prefix) / "newman"  # the .venv make creates; pytest's cache may be switched off (make test-dates)
    folder.mkdir(exist_ok=True)
    binary = folder / "node_modules" / ".bin" / "newman"
    if not binary.exists():
        installed = subprocess.run(
            [str(npm), "install", "--no-audit", "--no-fund", "--prefix", str(folder), f"newman@{NEWMAN_VERSION}"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert installed.returncode == 0, f"npm install newman failed:\n{installed.stdout}\n{installed.stderr}"
    return binary


def run_newman(newman: Path, collection: Path, server: ProducerServer, report: Path) -> dict[str, Any]:
    result = subprocess.run(
        [str(newman), "run", str(collection), "--env-var", f"baseUrl={server.base_url}", "--reporters", "cli,json",
         "--reporter-json-export", str(report), "--color", "off"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    run = json.loads(report.read_text(encoding="utf-8"))["run"]
    run["exit"] = result.returncode
    run["output"] = result.stdout[-6000:] + result.stderr[-2000:]
    return run


def test_newman_runs_the_collection_green_against_the_fixed_demo(
    newman: Path, start_producer: Callable[..., ProducerServer], tmp_path: Path
) -> None:
    """As `make run` serves it: a fresh demo, every request and every check passes; run again, only the
    open invitation's part fails (it was booked), and after `tidbok demo reset` all is green again."""
    server = start_producer("collection")
    collection = write("postman", tmp_path / "tidbok.json")
    first = run_newman(newman, collection, server, tmp_path / "first.json")
    assert first["exit"] == 0, first["output"]
    assert first["stats"]["requests"] == {"total": 27, "pending": 0, "failed": 0}, first["output"]
    assert first["stats"]["assertions"]["failed"] == 0 and first["stats"]["assertions"]["total"] >= 100
    assert not first["failures"]

    again = run_newman(newman, collection, server, tmp_path / "again.json")
    assert again["exit"] == 1
    failed = {(f["source"]["name"], f["error"]["test"]) for f in again["failures"]}
    assert ("GetBookingDetails K3: the open invitation, not booked yet", "K3 has no time yet (if this fails, the "
            "collection ran before: run `tidbok demo reset`)") in failed, again["output"]  # fmt: skip
    assert {name for name, _test in failed} <= {
        "GetBookingDetails K3: the open invitation, not booked yet", "GetBookingDetails of the invitation",
        "GetAvailableDates for the invitation", "GetAvailableTimeslots for the invitation",
        "MakeBooking quoting the invitation", "GetBookingDetails of the invitation (booked)",
    }, again["output"]  # fmt: skip

    run_cli(["demo", "reset"], {"DATABASE_URL": server.database_url})
    third = run_newman(newman, collection, server, tmp_path / "third.json")
    assert third["exit"] == 0 and not third["failures"], third["output"]


# -- SoapUI -----------------------------------------------------------------------------------------


def test_the_soapui_project_has_an_interface_per_operation_from_our_wsdls(soapui: etree._Element) -> None:
    assert soapui.tag == c("soapui-project") and soapui.get("soapui-version", "").startswith("5.")
    interfaces = soapui.findall(c("interface"))
    assert len(interfaces) == len(INTERACTIONS)
    for interface in interfaces:
        assert interface.get(f"{{{XSI}}}type") == "con:WsdlInterface" and interface.get("soapVersion") == "1_1"
        operation = interface.find(c("operation"))
        name = operation.get("name")
        assert name in INTERACTIONS
        assert interface.get("definition") == f"http://127.0.0.1:8080/{name}/1/rivtabp21?wsdl"
        cache = interface.find(c("definitionCache"))
        assert cache.get("rootPart") == interface.get("definition")
        parts = {part.findtext(c("url")): part for part in cache.findall(c("part"))}
        wsdl = etree.fromstring(parts[interface.get("definition")].findtext(c("content")).encode(), PARSER)
        binding = wsdl.find(f"{{{WSDL}}}binding")
        assert interface.get("bindingName") == f"{{{wsdl.get('targetNamespace')}}}{binding.get('name')}"
        assert interface.get("name") == binding.get("name")
        for url, part in parts.items():  # every schema the WSDL imports, at the URL the producer serves it
            assert url.startswith("http://127.0.0.1:8080/")
            etree.fromstring(part.findtext(c("content")).encode(), PARSER)
        assert any(url.endswith("/core_components/crm_scheduling_1.1.xsd") for url in parts)
        soap_operation = binding.find(f"{{{WSDL}}}operation")
        action = soap_operation.find("{http://schemas.xmlsoap.org/wsdl/soap/}operation").get("soapAction")
        assert operation.get("action") == action
        assert interface.find(c("endpoints")).findtext(c("endpoint")) == "${#Project#baseUrl}/" + name + "/1/rivtabp21"
        call = etree.fromstring(operation.find(c("call")).findtext(c("request")).encode(), PARSER)
        assert call.tag == f"{{{SOAP_ENV}}}Envelope"
    project = {p.findtext(c("name")): p.findtext(c("value")) for p in soapui.find(c("properties"))}
    assert project == {"baseUrl": "http://127.0.0.1:8080"}


def test_the_soapui_test_cases_chain_their_steps_through_properties(soapui: etree._Element) -> None:
    interfaces = {i.get("name"): i.find(c("operation")).get("name") for i in soapui.findall(c("interface"))}
    suite = soapui.find(c("testSuite"))
    cases = suite.findall(c("testCase"))
    assert [case.get("name") for case in cases] == list(FLOWS)
    for case in cases:
        declared = {p.findtext(c("name")) for p in case.find(c("properties"))}
        steps_before: set[str] = set()
        set_before: set[str] = set()
        for step in case.findall(c("testStep")):
            config = step.find(c("config"))
            if step.get("type") == "request":
                assert config.get(f"{{{XSI}}}type") == "con:RequestStep"
                assert interfaces[config.findtext(c("interface"))] == config.findtext(c("operation"))
                request = config.find(c("request"))
                text = etree.tostring(request, encoding="unicode")
                used = set(re.findall(r"\$\{#TestCase#([^}]+)\}", text))
                assert used <= set_before, f"{step.get('name')} uses {used - set_before} before it is set"
                kinds = [a.get("type") for a in request.findall(c("assertion"))]
                assert kinds[:3] == ["SOAP Response", "Valid HTTP Status Codes", "SOAP Fault Assertion"]
                etree.fromstring(request.findtext(c("request")).encode(), PARSER)  # the envelope is XML
            else:
                assert step.get("type") == "transfer" and config.get(f"{{{XSI}}}type") == "con:PropertyTransfersStep"
                for transfer in config.findall(c("transfers")):
                    assert transfer.findtext(c("sourceStep")) in steps_before
                    assert transfer.findtext(c("targetStep")) == "#TestCase#"
                    set_before.add(transfer.findtext(c("targetType")))
            steps_before.add(step.get("name"))
        assert set_before <= declared
