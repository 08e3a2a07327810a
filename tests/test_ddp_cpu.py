"""`trainer=ddp_cpu` from the real CLI: 2 gloo processes (Lightning re-launches the command line for
rank 1), exactly one MLflow run logged by rank zero, per-layer gradient metrics taken on the
synchronized gradients. A Hydra multirun with a re-launching strategy is refused before any run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.paths import PROJECT_ROOT
from tests.mlflow_reads import all_runs


@pytest.mark.slow  # two DDP processes with gloo
def test_ddp_cpu_two_processes_one_run(mlflow_client, mlflow_store: str, tmp_path: Path, data_dir: Path) -> None:
    cmd = [
        sys.executable, "-m", "src.train", "trainer=ddp_cpu", f"paths.log_dir={tmp_path}",
        f"paths.data_dir={data_dir}", "data=synthetic", "data.num_samples=160", "data.batch_size=8", "sched=none",
        "trainer.max_steps=3", "trainer.max_epochs=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
        "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
        "+callbacks.grad_probe._target_=tests.helpers.GradNormProbe",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    env.pop("GRADREG_RUN_ID", None)
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in out, "rank 1 ran"

    runs = all_runs(mlflow_client)
    assert len(runs) == 1, f"{len(runs)} runs for one DDP job"
    run = runs[0]
    assert (run.info.status, run.data.tags["outcome"]) == ("FINISHED", "completed")
    assert run.data.params["trainer.strategy.process_group_backend"] == "gloo"
    history = mlflow_client.get_metric_history
    assert [m.value for m in history(run.info.run_id, "grad/world_size")] == [2.0, 2.0, 2.0]
    assert max(m.value for m in history(run.info.run_id, "grad/rank_max_abs_diff")) == 0.0, "synchronized gradients"
    layers = [k for k in run.data.metrics if k.startswith("grad_norm/")]
    assert "grad_norm/net.features.0.weight" in layers and len(layers) >= 10
    assert all(len(history(run.info.run_id, k)) == 3 for k in layers), "one value per step: rank zero logs alone"
    assert sorted(m.step for m in history(run.info.run_id, "train/loss")) == [0, 1, 2]
    assert "test/acc" in run.data.metrics
    assert len(list(tmp_path.glob("runs/*"))) == 1, "rank 1 used rank 0's run directory"


def test_multirun_with_relaunching_ddp_is_refused(
    mlflow_client, capfd, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from src.train import main

    argv = ["src.train", "-m", f"paths.log_dir={tmp_path}", f"paths.data_dir={data_dir}", "trainer=ddp_cpu", "seed=0,1"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code != 0
    out = "".join(capfd.readouterr())
    assert "re-launches the command line" in out and "multirun" in out, out[-2000:]
    runs = all_runs(mlflow_client)
    # refused when the sweep is validated whole, before launch: no job run and no parent either
    assert runs == []
