"""Report rows that hold one configuration each, the instrument and time-in-state columns, and the sweep
dashboard, on runs written straight into a fresh MLflow store (the health-over-time names included)."""

from __future__ import annotations

import json
import math
import re

import pytest

from src.report.dashboard import write_dashboard
from src.report.dashboard_data import segments
from src.report.records import RunRecord
from src.report.table import build_rows, markdown_table

ARM_PARAMS = {"model._target_": "src.models.lenet.lenet5", "optim._target_": "torch.optim.SGD",
              "reg.l2.mode": "penalty"}


def log_run(client, experiment_id: str, name: str, params: dict, metrics: dict | None = None,  # noqa: ANN001
            tags: dict | None = None, timeline: list[dict] | None = None, tmp_path=None) -> str:  # noqa: ANN001
    """A finished run with params, tags, metric histories {key: [value per step]} and a health timeline."""
    tags = {"choice.model": "lenet5", "choice.optim": "sgd", "reg": "l2", "outcome": "completed", **(tags or {})}
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for key, values in (metrics or {}).items():
        for step, value in enumerate(values):
            client.log_metric(run_id, key, value, step=step * 10)
    if timeline is not None:
        client.log_text(run_id, json.dumps(timeline), "health/timeline.json")
    client.set_terminated(run_id, "FINISHED")
    return run_id


def arm_run(client, exp: str, strength: str, seed: int, acc: float, **extra) -> str:  # noqa: ANN001
    """A study-arm job: the dose only in the params (`reg.l2.strength`), name and overrides without it."""
    params = {**ARM_PARAMS, "seed": str(seed), "data.seed": str(seed), "reg.l2.strength": strength,
              "paths.output_dir": f"/out/{strength}/{seed}"}
    tags = {"overrides": f"+study/arm=l2_{strength} seed={seed}", **extra.pop("tags", {})}
    return log_run(client, exp, f"lenet5-l2-sgd-s{seed}", params, {"test/acc": [acc], **extra.pop("metrics", {})},
                   tags, **extra)


def test_two_doses_at_one_seed_are_two_rows_never_one_spread(mlflow_client) -> None:
    exp = mlflow_client.create_experiment("arms")
    ids = [arm_run(mlflow_client, exp, s, seed, acc) for s, seed, acc in
           [("0.001", 0, 0.10), ("0.0001", 0, 0.90), ("0.001", 1, 0.12), ("0.0001", 1, 0.94)]]
    rows, _ = build_rows(mlflow_client, [mlflow_client.get_run(i) for i in ids])
    assert [(r.variant, len(r.runs), sorted(r.test_acc)) for r in rows] == [
        ("lam1e-4", 2, [0.90, 0.94]), ("lam1e-3", 2, [0.10, 0.12])]  # numbers in order; seed, data.seed, paths apart
    assert all({run.seed for run in r.runs} == {"0", "1"} for r in rows), "n counts seeds"
    table = markdown_table(rows)
    assert "| lam1e-4 | 2 |" in table and "0.920 [" in table and "(n=2)" in table

    again = arm_run(mlflow_client, exp, "0.001", 1, 0.11)  # the same configuration and seed run twice
    rows, _ = build_rows(mlflow_client, [mlflow_client.get_run(i) for i in [*ids, again]])
    assert "| lam1e-3 | 3 (seed 1 ×2) |" in markdown_table(rows), "a repeated seed is said, not counted as a seed"


def test_accuracy_interval_stays_inside_zero_one(mlflow_client) -> None:
    exp = mlflow_client.create_experiment("bounded")
    ids = [arm_run(mlflow_client, exp, "0.001", seed, acc) for seed, acc in [(0, 0.99), (1, 0.5)]]
    (row,), _ = build_rows(mlflow_client, [mlflow_client.get_run(i) for i in ids])
    interval = row.test_acc_interval
    assert interval.estimate == pytest.approx(0.745) and 0 < interval.lo < 0.5 and 0.99 < interval.hi < 1
    logits = [math.log(0.99 / 0.01), 0.0]  # the t-interval of the logits, given back: t(0.975, 1) = 12.706
    half = 12.7062047 * abs(logits[0] - logits[1]) / math.sqrt(2) / math.sqrt(2)
    assert interval.hi == pytest.approx(1 / (1 + math.exp(-(sum(logits) / 2 + half))), rel=1e-6)


def test_instrument_and_time_in_state_columns(mlflow_client) -> None:
    exp = mlflow_client.create_experiment("instruments")
    runs = [
        arm_run(mlflow_client, exp, "0.001", 0, 0.5, metrics={
            "signal/first_last_ratio": [0.5, 1e-3, 0.1], "dead/max": [0.1, 0.4], "sharpness/lambda_max": [3.0, 10.0],
            "health/frac_healthy": [0.75], "health/frac_vanishing": [0.25]}, tags={"health.final_state": "healthy"}),
        arm_run(mlflow_client, exp, "0.001", 1, 0.5, metrics={
            "signal/first_last_ratio": [1e-1], "dead/max": [0.2], "sharpness/lambda_max": [1000.0],
            "health/frac_healthy": [0.25], "health/frac_vanishing": [0.75]}, tags={"health.final_state": "vanishing"}),
    ]
    (row,), _ = build_rows(mlflow_client, [mlflow_client.get_run(i) for i in runs])
    assert row.instruments == {"signal_ratio": [1e-3, 1e-1], "dead_max": [0.4, 0.2], "sharpness_max": [10.0, 1000.0]}
    assert row.instrument("signal_ratio").estimate == pytest.approx(1e-2)  # geometric mean of 1e-3 and 1e-1
    assert row.instrument("sharpness_max").estimate == pytest.approx(100.0)
    assert row.instrument("dead_max").estimate == pytest.approx(0.3)
    assert row.time_in_state == {"healthy": 0.5, "vanishing": 0.5}
    line = markdown_table([row]).splitlines()[-1]
    assert dict(row.final_states) == {"healthy": 1, "vanishing": 1}
    assert "| healthy 1, vanishing 1 | healthy 0.50, vanishing 0.50 |" in line
    assert "| 0.01 [" in line and "| 100 [" in line


def test_runs_logged_without_their_config_fall_back_to_overrides(mlflow_client) -> None:
    exp = mlflow_client.create_experiment("bare")
    ids = [log_run(mlflow_client, exp, f"r{i}", {"seed": str(i % 2)}, tags={"overrides": f"optim.lr={lr} seed={i % 2}"})
           for i, lr in enumerate(["0.1", "0.1", "0.01", "0.01"])]
    rows, _ = build_rows(mlflow_client, [mlflow_client.get_run(i) for i in ids])
    assert sorted((r.variant, len(r.runs)) for r in rows) == [("lr0.01", 2), ("lr0.1", 2)]


def test_dashboard_draws_timelines_heat_maps_profiles_and_the_table(mlflow_client, tmp_path) -> None:
    exp = mlflow_client.create_experiment("dash")
    layers = {"grad_rel/00.conv1": [1e-2], "grad_rel/01.fc": [1e-1], "signal/00.conv1": [1e-5], "signal/01.fc": [1e-3],
              "signal/first_last_ratio": [1e-2], "train/loss": [2.3, 2.2, 2.1, 2.0]}
    timeline = [{"state": "healthy", "start_step": 0, "end_step": 19}, {"state": "vanishing", "start_step": 20,
                                                                       "end_step": 30}]
    with_timeline = arm_run(mlflow_client, exp, "0.001", 0, 0.5, metrics=layers, timeline=timeline,
                            tags={"health.verdict": "vanishing"})
    verdict_only = arm_run(mlflow_client, exp, "0.001", 1, 0.6, metrics=layers, tags={"health.verdict": "healthy"})
    records = {i: RunRecord.from_run(mlflow_client.get_run(i)) for i in (with_timeline, verdict_only)}
    assert [(s.state, s.start_step, s.end_step, s.from_verdict) for s in segments(mlflow_client, records[with_timeline])
            ] == [("healthy", 0, 19, False), ("vanishing", 20, 30, False)]
    assert [(s.state, s.end_step, s.from_verdict) for s in segments(mlflow_client, records[verdict_only])] == [
        ("healthy", 30, True)]  # over the steps it logged train/loss (0, 10, 20, 30)

    rows, _ = build_rows(mlflow_client, [mlflow_client.get_run(i) for i in (with_timeline, verdict_only)])
    page = write_dashboard(mlflow_client, rows, "Gradient health: test", tmp_path / "d.html").read_text()
    assert "<script src=" not in page and "plotly.js" in page.lower(), "Plotly inlined: opens without a network"
    figures = [json.loads(m) for m in re.findall(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', page, re.S)]
    traces = [t for fig in figures for t in fig]
    bars = [t for t in traces if t["type"] == "bar"]
    assert sorted((t["name"], t["base"][0], t["x"][0]) for t in bars) == [
        ("healthy", 0, 20), ("healthy", 0, 31), ("vanishing", 20, 11)]
    heat = [t for t in traces if t["type"] == "heatmap"]
    assert [h["x"] for h in heat] == [["conv1", "fc"], ["conv1", "fc"]], "layer names, not indices"
    assert heat[0]["z"][0] == pytest.approx([-2.0, -1.0]) and heat[1]["z"][0] == pytest.approx([-5.0, -3.0])
    lines = [t for t in traces if t["type"] == "scatter" and t.get("mode") == "lines+markers"]
    assert [t["name"] for t in lines] == ["l2+sgd (n=2)", "l2+sgd (n=2)"]  # one per configuration and prefix
    assert [t for t in traces if t["type"] == "table"], "the report's table"
