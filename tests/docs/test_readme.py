"""The README's examples, run: every YAML, CSV and shell example, in the README's order, against a
fresh database, so that the README cannot drift from what tidbok does.

- The set-up YAML example is `setup.yaml` and the CSV example is `slots.csv`, as the shell examples
  call them; every other YAML example must at least be YAML.
- Every shell line is run with `python -m producer` for `tidbok` (or `.venv/bin/tidbok`), in a
  folder holding those files and the few others the examples name (`kallelse.xml`, `lista.csv`),
  and must exit 0. Optional parts (`[--free]`, `[ROW_ID ...]`) are left out. Placeholders are made
  real: `T1234`/`T1240` become free slots of the example's unit, `B17` the booking the example's
  `staff book` made. Dates move by whole years so that they are in the future on any day.
- A line whose program cannot run here (make, apt-get, a server that would not stop, curl against
  one) is listed in SKIPPED with where it is tested instead; any other line fails the test.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import pytest
import yaml
from support.server import DATABASE_PREFIX, PYTHON, REPO, fresh_database, run_cli, subprocess_env

README = REPO / "README.md"
EXAMPLE_YEAR = 2027  # the year the examples' future dates are written in
# Programs the test does not run, and why (what tests them instead).
SKIPPED = {
    "make": "the Makefile's targets are the suite itself, make bench and make chaos",
    "apt-get": "installs a system package",
    "createdb": "a PostgreSQL client tool; the test makes its own database",
    "curl": "needs a running server: tests/admin_api/test_admin_api.py and engagement_index/test_ei_stub.py send them",
    "serve": "a server runs until stopped: tests/support/server.py starts `tidbok serve`",
    "run": "a server runs until stopped: tests/cli/test_supervision.py starts `tidbok run`",
    "npx": "Node.js: tests/testkit/test_collections.py runs the collection with newman",
    "fixtures": "replays against a running server: tests/testkit/test_fixtures_replay.py",
    "demo": "`demo reset` replaces the calendar the examples built: tests/cli/test_demo_reset.py",
}
KALLELSE = "<article><title>Kallelse</title><para>Välkommen till provtagning.</para></article>\n"
LISTA = "personnummer\n191212121212\n19121212-1212\n"
A100 = "SE2321000016-A100"


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int  # of the README, for messages


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(m.group(1), m.group(2), text[: m.start()].count("\n") + 1)
        for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)
    ]


def shifted(text: str) -> str:
    """The examples' years moved so that EXAMPLE_YEAR is next year: their dates are in the future."""
    shift = date.today().year + 1 - EXAMPLE_YEAR
    return re.sub(r"\b(20\d\d)-(\d\d)-(\d\d)\b", lambda m: f"{int(m.group(1)) + shift}-{m.group(2)}-{m.group(3)}", text)


def commands(block: Block) -> list[str]:
    """A shell block's command lines: continuations joined, comments and blank lines dropped."""
    joined = block.text.replace("\\\n", " ")
    return [line for line in joined.splitlines() if shlex.split(line, comments=True)]


def without_options_in_brackets(words: list[str]) -> list[str]:
    out, depth = [], 0
    for word in words:
        if word.startswith("["):
            depth += 1
        if depth == 0:
            out.append(word)
        if word.endswith("]") and depth:
            depth -= 1
    return out


class Runner:
    """Runs the README's shell lines in a folder of their files, against one database."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url, self.folder = url, folder
        self.variables: dict[str, str] = {}
        self.used_slots: set[int] = set()
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def run(self, line: str, where: str) -> None:
        words = shlex.split(shifted(line), comments=True)
        if len(words) == 1 and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # S="--staff …"
            name, _, value = words[0].partition("=")
            self.variables[name] = value
            return
        words = shlex.split(
            shifted(re.sub(r"\$([A-Z_]+)", lambda m: self.variables.get(m.group(1), m.group(0)), line)), comments=True
        )
        env = {}
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        program = words[0]
        if program in SKIPPED:
            self.skipped.append(line)
            return
        assert program in ("tidbok", ".venv/bin/tidbok"), f"{where}: the test cannot run {line!r}: add it to SKIPPED"
        arguments = without_options_in_brackets(words[1:])
        if arguments and arguments[0] in SKIPPED:
            self.skipped.append(line)
            return
        arguments = [self.real(word, arguments) for word in arguments]
        result = subprocess.run(
            [PYTHON, "-m", "producer", *arguments],
            cwd=self.folder,
            env=subprocess_env({**env, "DATABASE_URL": self.url}),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (
            f"{where}: {line}\nran: tidbok {' '.join(arguments)}\nexit {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
        self.ran.append(line)

    def real(self, word: str, arguments: list[str]) -> str:
        """A placeholder made real: a free slot of the example's unit, or the booking made before."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            if re.fullmatch(r"T\d+", word):
                time_type = "PROV" if "--time-type" in arguments and "PROV" in arguments else "LAK"
                row = conn.execute(
                    "SELECT id FROM slot_named WHERE unit_hsa_id = %s AND time_type_code = %s AND booking_pk IS NULL"
                    " AND starts_at > now() AND NOT id = ANY(%s) ORDER BY starts_at, id LIMIT 1",
                    (A100, time_type, sorted(self.used_slots)),
                ).fetchone()
                assert row is not None, f"no free {time_type} slot at {A100} for {word}"
                self.used_slots.add(row[0])
                return f"T{row[0]}"
            if word == "B17":
                row = conn.execute(
                    "SELECT booking_id FROM booking WHERE kind = 'booking' ORDER BY pk DESC LIMIT 1"
                ).fetchone()
                assert row is not None, "B17 is the booking an earlier example made: none was made"
                return row[0]
        return word


def test_every_yaml_csv_and_shell_example_of_the_readme_runs(pg_admin_url: str, tmp_path: Path) -> None:
    url = fresh_database(pg_admin_url, f"{DATABASE_PREFIX}readme")
    run_cli(["migrate"], {"DATABASE_URL": url})
    found = blocks()
    setups = [b for b in found if b.language == "yaml" and yaml.safe_load(b.text).get("units") is not None]
    csvs = [b for b in found if b.language == "csv"]
    assert len(setups) == 1 and len(csvs) == 1, "the shell examples name one setup.yaml and one slots.csv"
    (tmp_path / "setup.yaml").write_text(shifted(setups[0].text), encoding="utf-8")
    (tmp_path / "slots.csv").write_text(shifted(csvs[0].text), encoding="utf-8")
    (tmp_path / "kallelse.xml").write_text(KALLELSE, encoding="utf-8")
    (tmp_path / "lista.csv").write_text(LISTA, encoding="utf-8")
    for block in found:
        if block.language == "yaml":
            assert isinstance(yaml.safe_load(block.text), dict), f"README line {block.line}: not a YAML mapping"
    runner = Runner(url, tmp_path)
    for block in (b for b in found if b.language == "sh"):
        for number, line in enumerate(commands(block), start=1):
            runner.run(line, f"README line {block.line} (command {number})")
    assert any("load setup.yaml" in line for line in runner.ran) and any("staff book" in line for line in runner.ran)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM slot_named WHERE unit_hsa_id = %s", (A100,)).fetchone()[0] > 100
        kinds = dict(conn.execute("SELECT kind, count(*) FROM booking GROUP BY kind").fetchall())
    assert kinds.get("booking") == 1 and kinds.get("open_invitation", 0) >= 2 and kinds.get("timed_invitation") == 1
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE_PREFIX}readme WITH (FORCE)")


def test_the_examples_are_found() -> None:
    """The extraction itself: it sees the README's shell, YAML and CSV blocks."""
    languages = [b.language for b in blocks()]
    assert languages.count("sh") >= 8 and "yaml" in languages and "csv" in languages


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a 2027-03-01 b", f"a {date.today().year + 1}-03-01 b"),
        ("2026-12-01", f"{date.today().year}-12-01"),
        ("T1234 20270301", "T1234 20270301"),
    ],
)
def test_dates_move_by_whole_years(text: str, expected: str) -> None:
    assert shifted(text) == expected
