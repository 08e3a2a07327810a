"""Calibration: every network of the zoo (`tests/zoo.py`) earns the verdict it was built for, at default
thresholds; the healthy ones learn and get no event at all. The table in `docs/gradient_health.md` is this
test's output (`python -m tests.zoo_table` prints it)."""

from __future__ import annotations

import pytest

from tests.zoo import ZOO, run_case


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in ZOO])
def test_zoo_case_gets_its_verdict(case) -> None:  # noqa: ANN001
    result = run_case(case)
    assert result.verdict == case.expected, [(e.kind, e.step, e.source, e.value) for e in result.events]
    if case.expected == "healthy":
        assert result.events == [] and result.first_step is None
        assert result.train_acc >= case.min_accuracy, "a healthy case must learn"
    else:
        assert result.first_step is not None and result.events[0].kind == case.expected
        assert set(case.also) <= {e.kind for e in result.events}, [(e.kind, e.step) for e in result.events]
