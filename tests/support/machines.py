"""Hypothesis state machines run against real servers."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine


def run_machine(machine: type[RuleBasedStateMachine], examples: int, steps: int) -> None:
    """Up to `examples` examples of up to `steps` steps each. No deadline: every step is real HTTP
    and SQL, so slow steps (and rules whose preconditions filter much) are expected."""
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    machine.TestCase().runTest()
