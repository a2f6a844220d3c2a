"""Shared pytest fixtures; the fault suite's totals are printed at the end of the run.

A fault test takes the `fault_case` fixture, which counts it as one case of the suite;
it sets ``fault_case.lost`` to the number of messages (or frames) its fault lost, when
the fault can lose any. The totals (cases tried, passed, data lost) are printed in the
terminal summary of every run that included a fault case.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest


@dataclass
class FaultCase:
    """One case of the fault suite; `lost` counts data the fault lost (0 when none)."""

    name: str
    lost: int = 0
    passed: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class FaultSuite:
    """Every fault case of this run."""

    cases: list[FaultCase] = field(default_factory=list)


_SUITE = FaultSuite()


@pytest.fixture(scope='session')
def fault_suite() -> FaultSuite:
    """The run's fault suite (all cases so far)."""
    return _SUITE


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> None:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f'rep_{report.when}', report)


@pytest.fixture
def fault_case(request: pytest.FixtureRequest, fault_suite: FaultSuite) -> FaultCase:
    """Count the test as a fault case; it passes when the test's call phase passes."""
    case = FaultCase(request.node.nodeid.split('::', 1)[-1])
    yield case
    report = getattr(request.node, 'rep_call', None)
    if report is not None and not report.skipped:
        case.passed = report.passed
        fault_suite.cases.append(case)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    cases = _SUITE.cases
    if not cases:
        return
    tr = terminalreporter
    tr.section('fault suite totals')
    for case in cases:
        status = 'ok  ' if case.passed else 'FAIL'
        lost = f'  lost={case.lost}' if case.lost else ''
        notes = f'  ({"; ".join(case.notes)})' if case.notes else ''
        tr.write_line(f'{status} {case.name}{lost}{notes}')
    tr.write_line(f'cases tried: {len(cases)}  passed: {sum(c.passed for c in cases)}  '
                  f'data lost: {sum(c.lost for c in cases)} messages')
