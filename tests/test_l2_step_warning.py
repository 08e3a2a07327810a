"""The start-of-run warning for an L2 step that flips the weights (2ηλ ≥ 1): through the real CLI for the
case that asks for it and not for the defaults, and the check's cases (SGD, momentum, decoupled, Adam,
Elastic Net's gradient and proximal forms)."""

from __future__ import annotations

import pytest

from src.config.checks import an_l2_step_keeps_the_weights_sign
from tests.conftest import FAST
from tests.mlflow_reads import only_run

TINY = ["data=synthetic", "data.num_samples=64", "trainer.max_steps=2", *FAST]
FLIPS = "2·lr·strength = 2 ≥ 1, so the penalty's factor on the weights per step is 1 − 2 = -1 ≤ 0"


def test_the_cli_warns_at_start_and_still_trains(run_cli, mlflow_client, capsys) -> None:
    assert run_cli("reg=l2", "reg.l2.strength=20", "optim.lr=0.05", "optim=sgd", *TINY) == 0
    out = capsys.readouterr()
    line = next(line for line in (out.out + out.err).splitlines() if "reg.l2.strength=20" in line)
    assert "WARNING" in line and "optim.lr=0.05 (SGD)" in line and FLIPS in line
    assert "with momentum 0.9 they oscillate instead, and diverge once it passes 2(1 + momentum) = 3.8" in line
    assert only_run(mlflow_client).info.status == "FINISHED"  # a warning, not a refusal


def test_the_defaults_and_a_usual_l2_run_get_no_warning(run_cli, capsys) -> None:
    assert run_cli(*TINY) == 0
    assert run_cli("reg=l2", *TINY) == 0  # 2 · 0.05 · 1e-4 = 1e-5
    out = capsys.readouterr()
    assert "factor on the weights" not in out.out + out.err


@pytest.mark.parametrize("overrides, warned", [
    (["reg=l2", "reg.l2.strength=9.99"], False),  # 2ηλ = 0.999
    (["reg=l2", "reg.l2.strength=10", "optim.momentum=0"], True),  # exactly 1: the factor is 0
    (["reg=l2", "reg.l2.strength=20", "optim=adam", "optim.lr=0.05"], False),  # Adam: no (1 − 2ηλ) factor
    (["reg=l2", "reg.l2.mode=decoupled", "reg.l2.strength=500", "optim=adam"], True),  # decay 1 − 2ηλ, any optimizer
    (["reg=elasticnet", "reg.elasticnet.strength=40"], True),  # 2ηλ(1 − r) = 2
    (["reg=elasticnet", "reg.elasticnet.strength=40", "reg.elasticnet.proximal=true"], False),  # divides
    (["reg=[l1,dropout]", "reg.l1.strength=100"], False),  # no L2 term
])
def test_which_runs_are_warned(compose, overrides: list[str], warned: bool) -> None:
    lines = an_l2_step_keeps_the_weights_sign(compose(*overrides))
    assert bool(lines) == warned, lines
    assert len(lines) <= 1
