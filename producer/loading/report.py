"""What a load did (or, in a dry run, would do), and what was wrong with its input.

A report is the whole answer of a load: the CLI prints it, the HTTP API returns ``as_dict()``.
Problems name file, line and field, so an administrator can fix a spreadsheet without reading SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

MAX_PROBLEMS = 100
MAX_REMOVALS = 100  # slots listed as removed; the count says how many there are in all
KINDS = ("units", "care_types", "time_types", "performers", "resources", "alternatives", "slots")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input (or refused), located as precisely as the input allows."""

    source: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass(frozen=True)
class SlotChange:
    """One slot a load creates, changes (as it will be) or removes (Options.list_slots)."""

    what: str  # created | changed | removed
    unit: str
    who: str | None  # the performer, else the resource
    starts_at: datetime
    ends_at: datetime
    time_type: str
    slot_id: int | None  # None: not created yet


@dataclass
class Counts:
    created: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0


@dataclass
class Report:
    """Counts per kind of thing, and the problems; ``ok`` when nothing was refused."""

    dry_run: bool = False
    counts: dict[str, Counts] = field(default_factory=lambda: {kind: Counts() for kind in KINDS})
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0  # found beyond MAX_PROBLEMS, not listed
    seconds: float = 0.0
    removals: list[str] = field(default_factory=list)  # the first MAX_REMOVALS slots removed (or, dry, to be)
    slots_listed: list[SlotChange] = field(default_factory=list)  # with Options.list_slots

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def written(self) -> bool:
        return self.ok and not self.dry_run

    def add(self, problem: Problem) -> None:
        """Keep the first MAX_PROBLEMS; count the rest, so a broken million-line file stays readable."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more_problems += 1

    def room(self) -> int:
        """How many more problems are worth fetching."""
        return MAX_PROBLEMS - len(self.problems)

    def changes(self) -> int:
        return sum(c.created + c.changed + c.removed for c in self.counts.values())

    def lines(self) -> list[str]:
        head = "dry run: nothing written" if self.dry_run else "loaded"
        if not self.ok:
            head = f"refused, nothing written: {len(self.problems) + self.more_problems} problem(s)"
        out = [head]
        for problem in self.problems:
            out.append(f"  {problem}")
        if self.more_problems:
            out.append(f"  … and {self.more_problems} more")
        width = max(len(kind) for kind in KINDS)
        for kind, c in self.counts.items():
            if c.created or c.changed or c.removed or c.unchanged:
                out.append(
                    f"{kind.replace('_', ' '):<{width}}  created {c.created}  changed {c.changed}"
                    f"  removed {c.removed}  unchanged {c.unchanged}"
                )
        removed = self.counts["slots"].removed
        if self.ok and self.removals:
            verb = "would remove" if self.dry_run else "removed"
            out.append(f"{verb} {removed} slot(s) in scope that the load does not list (--add-only keeps them):")
            out.extend(f"  {line}" for line in self.removals)
            if removed > len(self.removals):
                out.append(f"  … and {removed - len(self.removals)} more")
        if self.ok and not self.changes():
            out.append("no changes")
        if self.seconds:
            slots = self.counts["slots"]
            total = slots.created + slots.changed + slots.unchanged
            rate = f", {total / self.seconds:,.0f} slots/s" if total else ""
            out.append(f"{self.seconds:.1f} s{rate}")
        return out

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "written": self.written,
            "counts": {kind: vars(c).copy() for kind, c in self.counts.items()},
            "problems": [
                {"source": p.source, "line": p.line, "field": p.field, "message": p.message} for p in self.problems
            ],
            "more_problems": self.more_problems,
            "removed_slots": self.removals,
            "seconds": round(self.seconds, 3),
        }
