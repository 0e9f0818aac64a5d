"""The EI contract (contracts/engagementindex_1.0), loaded by producer's engine like crm:scheduling is.

Only the names are EI's: the interactions, the 1.0 file names, and no Actor header schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from producer.soap.contract import Interaction, load_interactions
from producer.soap.scheduling import CONTRACTS_DIR

EI_DIR = "engagementindex_1.0"
INTERACTIONS = ("Update", "FindContent")
EI_NS = "urn:riv:itintegration:engagementindex:1"


@dataclass(frozen=True)
class EiContract:
    """What the stub needs of producer.soap.contract.Contract: EI has no Actor header to validate."""

    root: Path
    interactions: dict[str, Interaction]


def load_ei_contract(contracts_dir: Path = CONTRACTS_DIR) -> EiContract:
    root = contracts_dir / EI_DIR
    return EiContract(root=root, interactions=load_interactions(root, INTERACTIONS, "1.0"))
