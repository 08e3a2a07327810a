"""The report on runs that diverged, are still running, or lack the monitor's metrics.

The runs are written straight into a fresh MLflow store with the client (no training): the states
they are in would otherwise take a long or unlucky training run to reach.
"""

from __future__ import annotations

import math

import pytest

from src.report.table import MISSING, build_rows, markdown_table
from tests.sweeps import load_report_script


def make_run(client, experiment_id: str, name: str, tags: dict, metrics: dict, status: str | None) -> str:  # noqa: ANN001
    """A run with the tags the trainer writes and metric histories {key: [value per step]}."""
    run_id = client.create_run(experiment_id, run_name=name, tags={"mlflow.runName": name, **tags}).info.run_id
    client.log_param(run_id, "seed", name[-1])  # names end in the seed
    for key, values in metrics.items():
        for step, value in enumerate(values):
            client.log_metric(run_id, key, value, step=step * 5)
    if status:
        client.set_terminated(run_id, status)
    return run_id


@pytest.fixture
def odd_runs(mlflow_client) -> list[str]:
    exp = mlflow_client.create_experiment("odd")
    vgg = {"choice.model": "vgg19", "reg": "l2", "choice.optim": "sgd"}
    return [
        make_run(mlflow_client, exp, "vgg19-l2-sgd-s0",
                 {**vgg, "outcome": "completed", "health.first_event_step": "7", "overrides": "model=vgg19 seed=0",
                  "health.verdict": "stalled"},
                 {"test/acc": [0.5], "train/loss": [2.3, 2.1], "grad/global_norm": [1.0, 5.0, math.nan],
                  "grad/first_last_ratio": [0.1, 0.01], "events/exploding": [1, 2],
                  "grad_norm/00.features.0": [1e-3, 2e-3], "grad_norm/01.classifier.0": [1e-1, 2e-1]}, "FINISHED"),
        make_run(mlflow_client, exp, "vgg19-l2-sgd-s1",
                 {**vgg, "outcome": "diverged", "health.first_event_step": "3", "overrides": "model=vgg19 seed=1",
                  "health.verdict": "nonfinite"},
                 {"train/loss": [2.3, math.inf], "grad/global_norm": [2.0, math.inf], "events/nonfinite": [0, 1]},
                 "FINISHED"),
        make_run(mlflow_client, exp, "lenet5-none-sgd-s0",
                 {"choice.model": "lenet5", "reg": "none", "choice.optim": "sgd", "overrides": "model=lenet5 seed=0"},
                 {}, None),  # still running, nothing logged yet
    ]


def test_rows_of_diverged_running_and_unmonitored_runs(mlflow_client, odd_runs) -> None:
    rows, _ = build_rows(mlflow_client, [mlflow_client.get_run(r) for r in odd_runs])
    assert [(r.model, r.reg) for r in rows] == [("lenet5", "none"), ("vgg19", "l2")]
    running, vgg = rows
    assert dict(running.outcomes) == {"running": 1}
    assert running.test_acc_mean is None and running.max_grad_norm is None and running.first_event_step is None
    assert dict(vgg.outcomes) == {"completed": 1, "diverged": 1}
    assert vgg.test_acc == [0.5] and vgg.test_acc_std is None  # the diverged seed never reached the test
    assert vgg.max_grad_norm == math.inf  # an exploded norm is a finding; NaN is not a value
    assert vgg.min_first_last_ratio == pytest.approx(0.01)
    assert vgg.first_event_step == 3
    assert dict(vgg.events) == {"exploding": 2, "nonfinite": 1}
    assert dict(vgg.verdicts) == {"stalled": 1, "nonfinite": 1} and not running.verdicts

    table = markdown_table(rows).splitlines()
    lenet_line = next(line for line in table if line.startswith("| lenet5 |"))
    assert lenet_line.count(MISSING) == 11 and "running 1" in lenet_line  # 6 figures + final state + 4 instruments
    vgg_line = next(line for line in table if line.startswith("| vgg19 |"))
    assert "0.500 (n=1)" in vgg_line and "| inf |" in vgg_line and "exploding 2, nonfinite 1" in vgg_line
    assert "| nonfinite 1, stalled 1 |" in vgg_line


def test_report_script_on_odd_runs_writes_every_figure(mlflow_client, odd_runs, tmp_path) -> None:
    out = tmp_path / "report"
    assert load_report_script().main(["--runs", *odd_runs, "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "| lenet5 | none |" in md and "| vgg19 | l2 |" in md
    for png in ("global_grad_norm.png", "train_loss.png", "gradient_flow.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG"), png
    assert "![gradient flow](gradient_flow.png)" in md  # the vgg19 seed-0 run has per-layer norms
