"""Send every crm:scheduling 1.1 request envelope found in a folder to a producer, one after the other
in the order of their paths, and say for each, on one line, what came back:

    ok    same      MakeBooking/…__request.xml
    FAIL  differs   MakeBooking/…__request.xml: MakeBookingResponse/resultCode: recorded 'INFO', got 'ERROR'
    ok    answered  GetSubjectOfCareSchedule/….xml: resultCode OK
    FAIL  fault     GetSubjectOfCareSchedule/….xml: soap:Client The request does not follow …
    FAIL  unsent    GetSubjectOfCareSchedule/….xml: no value for ${patientId1} (give it in --vars)
    skip  -         CancelBooking/….xml: a request payload without a SOAP 1.1 envelope

A request with a recorded answer (see producer.testkit.files for the pairing) is expected to get the
same answer, except what the rules file lets differ; one without is expected to get an answer that is
no fault; the rules file can expect otherwise. The exit status is 0 only when every request sent got
what was expected. Substitutions: see producer.testkit.substitute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TextIO

import requests
from lxml import etree

from producer.sweden.wall_time import STOCKHOLM
from producer.testkit import files, kitfiles
from producer.testkit.compare import Ignore, first_difference
from producer.testkit.facts import DemoFacts
from producer.testkit.kitfiles import Expectation, KitFileError, Rules, Substitutions
from producer.testkit.masking import mask_text
from producer.testkit.substitute import Unresolved, expand_placeholders, prepare, shift_dates

__all__ = ["KitFileError", "Options", "run"]

TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Options:
    substitutions: Substitutions
    rules: Rules
    monday: date  # the producer's demo week now
    today: date
    mask: bool = False
    verbose: bool = False

    @classmethod
    def read(
        cls,
        vars_file: Path | None,
        rules_file: Path | None,
        monday: date,
        facts: DemoFacts,
        mask: bool = False,
        verbose: bool = False,
    ) -> Options:
        return cls(
            kitfiles.read_vars(vars_file, facts),
            kitfiles.read_rules(rules_file),
            monday,
            datetime.now(STOCKHOLM).date(),
            mask,
            verbose,
        )


@dataclass(frozen=True)
class Answer:
    status: int
    element: etree._Element | None  # the Body's element
    fault: tuple[str, str] | None  # faultcode, faultstring

    @property
    def result_code(self) -> str | None:
        if self.element is None:
            return None
        found = self.element.find("{*}resultCode")
        return (found.text or "").strip() if found is not None else None

    def summary(self) -> str:
        """The fault, the resultCode and its text, or what the answer holds (3 timeslotDetail)."""
        if self.fault:
            return f"{self.fault[0]} {self.fault[1]}"
        if self.element is None:
            return f"HTTP {self.status}"
        code = self.result_code
        if code is not None:
            text = self.element.find("{*}resultText")
            return f"resultCode {code}" + (f": {(text.text or '').strip()}" if text is not None else "")
        counts: dict[str, int] = {}
        for child in self.element:
            if isinstance(child.tag, str):
                local = etree.QName(child).localname
                counts[local] = counts.get(local, 0) + 1
        held = ", ".join(f"{n} {name}" for name, n in counts.items())
        return f"{etree.QName(self.element).localname} with {held or 'nothing in it'}"


def read_answer(status: int, data: bytes) -> Answer:
    """The Body's element of an answer; raises ValueError when the answer is no SOAP envelope."""
    try:
        root = etree.fromstring(data, files.PARSER)
    except etree.XMLSyntaxError:
        raise ValueError(f"HTTP {status} with a body that is not XML: {data[:120]!r}") from None
    element = files.body_element(root)
    if element is None:
        raise ValueError(f"HTTP {status} with no SOAP 1.1 Body element")
    fault = None
    if element.tag == files.FAULT:
        fault = ((element.findtext("faultcode") or "").strip(), (element.findtext("faultstring") or "").strip())
    return Answer(status, element, fault)


@dataclass(frozen=True)
class Line:
    verdict: str  # "ok", "FAIL" or "skip"
    outcome: str
    name: str
    detail: str = ""

    def text(self, mask: bool) -> str:
        line = f"{self.verdict:<5} {self.outcome:<9} {self.name}" + (f": {self.detail}" if self.detail else "")
        return mask_text(line) if mask else line


def judge(expected: Expectation, answer: Answer, recorded: Answer | None, ignore: Ignore) -> Line:
    """The line for an answer (its name left empty), by what was expected."""
    if expected.outcome == "same" and recorded is not None:
        difference = first_difference(recorded.element, answer.element, ignore)
        if difference is None:
            return Line("ok", "same", "")
        return Line("FAIL", "differs", "", f"{difference} (the answer: {answer.summary()})")
    if answer.fault is not None:
        wanted = expected.outcome == "fault" and (expected.fault_contains or "") in answer.fault[1]
        return Line("ok" if wanted else "FAIL", "fault", "", answer.summary())
    if expected.outcome == "fault":
        return Line("FAIL", "answered", "", f"{answer.summary()} (a fault was expected)")
    wanted = expected.result_code is None or expected.result_code == answer.result_code
    return Line("ok" if wanted else "FAIL", "answered", "", answer.summary())


def send(url: str, interaction: str, body: bytes) -> Answer:
    response = requests.post(
        f"{url.rstrip('/')}/{interaction}/1/rivtabp21",
        data=body,
        headers={
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"urn:riv:crm:scheduling:{interaction}Responder:1:{interaction}"',
        },
        timeout=TIMEOUT_SECONDS,
    )
    return read_answer(response.status_code, response.content)


def replay_one(fixture: files.Fixture, url: str, options: Options) -> tuple[Line, list[str]]:
    """Send one request fixture; its line and the substitutions made."""
    assert fixture.interaction is not None
    try:
        prepared = prepare(
            fixture.path.read_bytes(), options.substitutions, options.monday, options.today, fixture.demo_week
        )
    except Unresolved as missing:
        return Line("FAIL", "unsent", fixture.name, f"no value for {missing} (give it in --vars)"), []
    except (etree.XMLSyntaxError, ValueError) as exc:
        return Line("FAIL", "unsent", fixture.name, f"not well-formed after the substitutions: {exc}"), []
    recorded = None
    if fixture.answer is not None:
        try:  # its placeholders (a masked recording's ${pnr_…}) take the same values
            data, _used = expand_placeholders(
                fixture.answer.read_bytes(), options.substitutions, options.monday, options.today
            )
            recorded = read_answer(200, data)
        except Unresolved as missing:
            detail = f"no value for {missing} in its recorded answer (give it in --vars)"
            return Line("FAIL", "unsent", fixture.name, detail), []
        except ValueError as exc:
            return Line("FAIL", "unsent", fixture.name, f"its recorded answer {fixture.answer.name}: {exc}"), []
        if fixture.demo_week is not None:
            shift_dates(recorded.element, (options.monday - fixture.demo_week).days)
    try:
        answer = send(url, fixture.interaction, prepared.body)
    except (requests.RequestException, ValueError) as exc:
        return Line("FAIL", "error", fixture.name, str(exc)), prepared.changes
    expected = options.rules.expectation(fixture.name, recorded is not None)
    line = judge(expected, answer, recorded, Ignore(options.rules.ignore))
    return Line(line.verdict, line.outcome, fixture.name, line.detail), prepared.changes


def run(directory: Path, url: str, options: Options, out: TextIO) -> int:
    """Replay the folder, print a line per fixture and a summary; 0 when every request got what was
    expected (files not sent do not count against it)."""
    found = files.find(directory)
    counts: dict[str, int] = {}
    failed = 0
    for fixture in found:
        if fixture.interaction is None:
            line, changes = Line("skip", "-", fixture.name, fixture.skipped or ""), []
        else:
            line, changes = replay_one(fixture, url, options)
        counts[line.outcome] = counts.get(line.outcome, 0) + 1
        failed += line.verdict == "FAIL"
        print(line.text(options.mask), file=out)
        if options.verbose:
            for change in changes:
                print(f"      {mask_text(change) if options.mask else change}", file=out)
    requests_found = sum(n for outcome, n in counts.items() if outcome != "-")
    parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()) if outcome != "-")
    verdict = "all as expected" if not failed else f"{failed} not as expected"
    print(
        f"{requests_found} request fixture(s) ({parts or 'none'}), {counts.get('-', 0)} other file(s) skipped;"
        f" {verdict}",
        file=out,
    )
    return 1 if failed else 0
