"""Which contracts judge the producer: the OFFICIAL release when it is found, else our own contracts/.

The official WSDLs and XSDs are not in the repository (they are published by Inera, and a person who
clones the repository has no ../shared). They are looked for in TIDBOK_OFFICIAL_CONTRACTS, then in
../shared/reference-contracts. When they are found (CI), every test runs against them. When they
are not, the behaviour tests still run, judged by our own rendition in contracts/ (which the
contract tests compare with the official files particle by particle whenever those are present),
and the checks that only make sense against the official files are skipped, all with one reason
(:func:`require_official`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OURS = REPO / "contracts"
ENV = "TIDBOK_OFFICIAL_CONTRACTS"
DEFAULT = REPO.parent / "shared" / "reference-contracts"
MISSING = f"official contracts not found: set {ENV}=<dir> or place them at ../shared/reference-contracts"


def _official_root() -> Path | None:
    named = os.environ.get(ENV)
    root = Path(named).expanduser().resolve() if named else DEFAULT
    return root if (root / "crm_scheduling_1.1").is_dir() else None


OFFICIAL = _official_root()
FOUND = OFFICIAL is not None
# The root the tests' zeep clients and schema checks are built from.
REFEREE = OFFICIAL if OFFICIAL is not None else OURS


def require_official() -> Path:
    """The official contracts' root, or skip the calling test (one reason, one summary line)."""
    if OFFICIAL is None:
        pytest.skip(MISSING)
    return OFFICIAL


def describe() -> str:
    """For the test run's header: which contracts are the referee."""
    if OFFICIAL is not None:
        return f"contracts referee: the official release at {OFFICIAL}"
    return f"contracts referee: our own contracts/ ({MISSING}; the checks against them are skipped)"


RECORDED_FIXTURES = REPO.parent / "shared" / "recorded-fixtures"
FIXTURES_MISSING = "recorded fixtures not found: place them at ../shared/recorded-fixtures (see its PROVENANCE.md)"


def require_recorded_fixtures() -> Path:
    """The recorded messages' folder, or skip the calling test."""
    if not RECORDED_FIXTURES.is_dir():
        pytest.skip(FIXTURES_MISSING)
    return RECORDED_FIXTURES


REASONS = (MISSING, FIXTURES_MISSING)  # conftest reports these skips at one place each
