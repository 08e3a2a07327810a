"""Real multirun sweeps through the CLI: grouped in MLflow under one parent run, in parallel (joblib)
on one sqlite store without races, with submitit's local executor (the SLURM code path), and the
report generated from such a sweep."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from src.tracking.sweeps import SWEEP_FILE
from tests.sweeps import NAN_AT_STEP, load_report_script, run_sweep, sweep_runs, tail


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MlflowClient]:
    """4 jobs (optimizer x seed) on 2 joblib workers, on a store that does not exist yet."""
    tmp = tmp_path_factory.mktemp("joblib-sweep")
    uri = f"sqlite:///{tmp / 'store' / 'mlflow.db'}"  # the sweep callback creates it before any worker starts
    proc = run_sweep(tmp, uri, "optim=sgd,adam", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert proc.returncode == 0, tail(proc)
    return tmp, MlflowClient(tracking_uri=uri)


@pytest.mark.slow  # a 4-job joblib sweep through the CLI
def test_joblib_sweep_leaves_four_finished_runs_under_one_parent(joblib_sweep) -> None:
    tmp, client = joblib_sweep
    parent, children = sweep_runs(client)
    assert len(children) == 4
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweep_launcher"] == "JoblibLauncher"
    assert parent.data.tags["sweep_jobs"] == "4" and parent.data.tags["sweep_outcomes"] == "completed=4"
    sweep_id = parent.data.tags["sweep_id"]
    for run in children:
        tags = run.data.tags
        assert run.info.status == "FINISHED" and tags["outcome"] == "completed"
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["sweep_id"] == sweep_id and tags["sweep_role"] == "job"
        assert f"seed={run.data.params['seed']}" in tags["overrides"].split()
        assert {"train/loss", "test/acc"} <= set(run.data.metrics)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "config")}
        assert "config/config.yaml" in artifacts
    assert sorted(int(r.data.tags["sweep_job"]) for r in children) == [0, 1, 2, 3]
    combos = {(r.data.tags["choice.optim"], r.data.params["seed"]) for r in children}
    assert combos == {("sgd", "0"), ("sgd", "1"), ("adam", "0"), ("adam", "1")}
    sweep_files = list((tmp / "outputs" / "multiruns").glob(f"*/{SWEEP_FILE}"))
    assert len(sweep_files) == 1
    assert json.loads(sweep_files[0].read_text())["parent_run_id"] == parent.info.run_id


@pytest.mark.slow  # the 4-job joblib sweep, then its report
def test_report_on_the_sweep_matches_mlflow(joblib_sweep, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp, client = joblib_sweep
    parent, children = sweep_runs(client)
    out = tmp / "report"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    assert load_report_script().main(["--sweep", parent.data.tags["sweep_id"], "--out", str(out)]) == 0

    rows = json.loads((out / "report.json").read_text())["rows"]
    assert len(rows) == 2  # optimizer x regularizer(none); the seeds are folded into each row
    for row in rows:
        runs = [r for r in children if r.data.tags["choice.optim"] == row["optim"]]
        assert sorted(row["run_ids"]) == sorted(r.info.run_id for r in runs)
        accs = [r.data.metrics["test/acc"] for r in sorted(runs, key=lambda r: r.data.params["seed"])]
        assert row["test_acc"] == pytest.approx(accs)
        assert row["test_acc_mean"] == pytest.approx(statistics.fmean(accs))
        assert row["test_acc_std"] == pytest.approx(statistics.stdev(accs))
        assert row["outcomes"] == dict(Counter(r.data.tags["outcome"] for r in runs))
        norms = [m.value for r in runs for m in client.get_metric_history(r.info.run_id, "grad/global_norm")]
        expected = max((v for v in norms if not math.isnan(v)), default=None)
        assert row["max_grad_norm"] == (pytest.approx(expected) if expected is not None else None)

    md = (out / "report.md").read_text()
    table_rows = [line for line in md.splitlines() if line.startswith("| lenet5 | none |")]
    assert len(table_rows) == 2
    for row in rows:  # the markdown shows the same mean and its interval, inside [0, 1]
        line = next(t for t in table_rows if f"| {row['optim']} |" in t)
        ci = row["test_acc_interval"]
        assert 0 <= ci["lo"] <= row["test_acc_mean"] <= ci["hi"] <= 1 and ci["n"] == 2
        assert f"{row['test_acc_mean']:.3f} [{ci['lo']:.3f}, {ci['hi']:.3f}] (n=2)" in line
    for png in ("global_grad_norm.png", "train_loss.png", "gradient_flow.png"):
        data = (out / png).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000, png
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/train_loss.png"} <= logged


@pytest.mark.slow  # a 2-job submitit sweep
def test_submitit_local_sweep_runs_both_jobs_and_records_a_nan_job(tmp_path: Path, mlflow_store: str) -> None:
    """The SLURM launcher's code path (submitit) with its local executor. Job 1 gets a NaN written into
    a gradient at step 1 (the NaN learning rate a user might try is refused before any run starts), so
    its weights turn NaN: a job that diverges. Job 0's poison step lies past the end of training."""
    proc = run_sweep(tmp_path, mlflow_store, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                     *NAN_AT_STEP, "+callbacks.poison.step=1000,1")
    assert proc.returncode == 0, tail(proc)
    parent, children = sweep_runs(MlflowClient(tracking_uri=mlflow_store))
    assert parent.data.tags["sweep_launcher"] == "LocalLauncher"
    assert len(children) == 2
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert all(r.info.status in ("FINISHED", "FAILED") for r in children)
    healthy = next(r for r in children if r.data.params["callbacks.poison.step"] == "1000")
    diverging = next(r for r in children if r.data.params["callbacks.poison.step"] == "1")
    assert healthy.data.tags["outcome"] == "completed" and "test/acc" in healthy.data.metrics
    outcomes = Counter(r.data.tags["outcome"] for r in children)
    assert parent.data.tags["sweep_outcomes"] == " ".join(f"{k}={v}" for k, v in sorted(outcomes.items()))
    assert diverging.data.tags["outcome"] == "diverged"  # the monitor stopped it at the first NaN
    assert diverging.data.tags["health.first_event_step"] == "1"
    assert parent.info.status == "FINISHED", "a diverged job ended: divergence is a finding, not a crash"
    assert parent.data.tags["sweep_planned_jobs"] == "2"
