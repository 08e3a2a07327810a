"""Forensics through the real CLI: `experiment=exploding_demo`, a poisoned example under `trainer=ddp_cpu` (the
rank that holds it reports it), and `resume=<run_id> skip_bad_batches=true` going on without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.paths import PROJECT_ROOT
from tests.forensics_nets import PoisonedSynthetic
from tests.mlflow_reads import all_runs, only_run, run_events

STEPS_PER_EPOCH = 14  # 320 examples, 70% for training, batches of 16


def report_of(mlflow_client, run_id: str) -> dict:  # noqa: ANN001
    return json.loads(Path(mlflow_client.download_artifacts(run_id, "forensics/report.json")).read_text())


def test_exploding_demo_report(run_cli, mlflow_client, capsys: pytest.CaptureFixture) -> None:
    assert run_cli("experiment=exploding_demo", "trainer.enable_progress_bar=false") == 0
    run = only_run(mlflow_client)
    report = report_of(mlflow_client, run.info.run_id)
    event = run_events(mlflow_client, run.info.run_id)[0]
    assert report["reproduced"] is True and report["event"]["step"] == event["step"]
    assert report["step"] <= event["step"] and report["phase"] in ("forward", "update")
    assert report["module"].startswith("layers.") and report["lr"] == [0.05]
    assert run.data.tags["health.forensics"].startswith(f"first non-finite at step {report['step']}")
    assert f"Forensics: {run.data.tags['health.forensics']}" in capsys.readouterr().out  # the printed summary
    batch = torch.load(mlflow_client.download_artifacts(run.info.run_id, "forensics/batch.pt"), weights_only=False)
    assert batch["indices"].tolist() == report["indices"] and batch["step"] == report["step"]


def poisoned(folder: Path, row: int, arm_after_calls: int = 0) -> list[str]:
    return ["data=synthetic", "data._target_=tests.forensics_nets.PoisonedSynthetic", f"+data.poison_rows=[{row}]",
            "data.num_samples=320", "data.batch_size=16", "data.in_channels=1", "data.image_size=8", "sched=none",
            "model=mlp", "model._target_=tests.forensics_nets.gated_mlp", f"+model.arm_after_calls={arm_after_calls}",
            "model.depth=2", "trainer.log_every_n_steps=5", "trainer.enable_progress_bar=false",
            "trainer.limit_val_batches=2", "trainer.limit_test_batches=1",
            "+callbacks.batch_log._target_=tests.batch_probes.BatchIndexLog", f"+callbacks.batch_log.folder={folder}"]


def training_row(position: int) -> int:
    data = PoisonedSynthetic(num_samples=320, batch_size=16, in_channels=1, image_size=8, seed=0)
    data.setup("fit")
    return data.train_set.indices[position]


def seen(folder: Path, rank: int = 0) -> list[list[int]]:
    return json.loads((folder / f"rank{rank}.json").read_text())["batches"]


@pytest.mark.slow  # two DDP processes and a replay
def test_ddp_cpu_the_rank_holding_the_example_reports_it(mlflow_client, mlflow_store: str, tmp_path: Path,
                                                        data_dir: Path) -> None:
    row = training_row(100)
    cmd = [sys.executable, "-m", "src.train", "trainer=ddp_cpu", f"paths.log_dir={tmp_path}",
           f"paths.data_dir={data_dir}", *poisoned(tmp_path / "batches", row), "trainer.max_epochs=1"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    env.pop("GRADREG_RUN_ID", None)
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    batches = [seen(tmp_path / "batches", r) for r in range(2)]
    holder, step = next((r, s) for r in range(2) for s, b in enumerate(batches[r]) if row in b)
    run = only_run(mlflow_client)
    report = report_of(mlflow_client, run.info.run_id)
    assert (report["rank"], report["step"], report["phase"], report["module"]) == (holder, step, "forward", "0")
    assert report["nonfinite_indices"] == [row] and report["indices"] == batches[holder][step]
    assert report["replay"]["world_size"] == 2 and report["reproduced"] is True
    assert run.data.tags["outcome"] == "diverged" and "health.forensics" in run.data.tags


@pytest.mark.slow  # a poisoned run, its replay, then a resume
def test_resume_with_skip_goes_on_without_the_example(run_cli, mlflow_client, tmp_path: Path) -> None:
    row = training_row(50)
    first, second = tmp_path / "first", tmp_path / "second"
    overrides = ["trainer.max_epochs=3"]  # the gate arms after epoch 0: epoch000.ckpt is good
    assert run_cli(*poisoned(first, row, arm_after_calls=STEPS_PER_EPOCH), *overrides) == 0
    run = only_run(mlflow_client)
    step = next(s for s, b in enumerate(seen(first)) if s >= STEPS_PER_EPOCH and row in b)
    report = report_of(mlflow_client, run.info.run_id)
    assert (report["step"], report["phase"], report["skip_indices"]) == (step, "forward", [row])
    assert run.data.tags["outcome"] == "diverged"

    assert run_cli(f"resume={run.info.run_id}", "skip_bad_batches=true", f"++callbacks.batch_log.folder={second}") == 0
    run = mlflow_client.get_run(run.info.run_id)
    assert len(all_runs(mlflow_client)) == 1 and run.data.tags["outcome"] == "completed"
    tags = run.data.tags
    assert (tags["skip.indices"], tags["skip.count"], tags["skip.report_step"]) == (str(row), "1", str(step))
    assert "epoch000.ckpt (step 14)" in tags["skip.checkpoint"]
    after = seen(second)
    assert len(after) == 2 * STEPS_PER_EPOCH and not any(row in b for b in after), "the example is left out"
    assert [e["kind"] for e in run_events(mlflow_client, run.info.run_id)] == []  # gate armed, example gone
    assert tags["health.verdict"] == "healthy"


def test_skip_needs_a_report_with_examples(run_cli, mlflow_client, capsys: pytest.CaptureFixture) -> None:
    assert run_cli("skip_bad_batches=true") == 2
    assert "skip_bad_batches=true needs resume=<run_id>" in capsys.readouterr().err
    tiny = ["data=synthetic", "data.num_samples=64", "trainer.max_steps=2", "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false"]
    assert run_cli(*tiny) == 0
    run_id = only_run(mlflow_client).info.run_id
    assert run_cli(f"resume={run_id}", "skip_bad_batches=true") == 2
    assert "has no forensics/report.json" in capsys.readouterr().err
