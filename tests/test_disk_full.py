"""A full disk (ENOSPC) while checkpointing or writing artifacts ends the run FAILED with one line on
stderr, not a traceback, and leaves the store readable. The disk is a small tmpfs that a test callback
fills at step 1 (mounting needs root; the tests skip where that is refused)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from src.paths import PROJECT_ROOT
from tests.conftest import FAST
from tests.mlflow_reads import only_run

RUN = ["model=mlp", "data=synthetic", "data.num_samples=96", "sched=none", "test=false", *FAST,
       "trainer.max_epochs=2"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted at a fresh folder, unmounted afterwards."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the ENOSPC path is not exercised here")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def train(tmp_path: Path, store: str, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "src.train", f"paths.log_dir={tmp_path / 'outputs'}", *RUN, *overrides]
    return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)


def assert_failed_with_one_line(proc: subprocess.CompletedProcess, mlflow_client, where: Path) -> str:  # noqa: ANN001
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last.startswith(f"gradreg: no space left on the device while writing {where}"), last
    run = only_run(mlflow_client)
    assert (run.info.status, run.data.tags["outcome"]) == ("FAILED", "failed")
    assert f"run {run.info.run_id} ended FAILED" in last and f"resume={run.info.run_id}" in last
    assert len(mlflow_client.get_metric_history(run.info.run_id, "train/loss")) >= 2, "what was logged is readable"
    return run.info.run_id


@pytest.mark.slow  # a run on a full file system (a subprocess): 28 s loaded
def test_full_disk_while_checkpointing(tmp_path: Path, small_disk: Path, mlflow_store: str, mlflow_client) -> None:  # noqa: ANN001
    proc = train(tmp_path, mlflow_store, f"callbacks.model_checkpoint.dirpath={small_disk}",
                 "+callbacks.fill._target_=tests.helpers.FillDiskAtStep", f"+callbacks.fill.path={small_disk}")
    assert_failed_with_one_line(proc, mlflow_client, small_disk)
    assert [p.name for p in small_disk.iterdir()] == ["ballast.bin"], "no partial checkpoint left behind"


@pytest.mark.slow  # a run on a full file system (a subprocess): 32 s loaded
def test_full_disk_while_writing_artifacts(tmp_path: Path, small_disk: Path, mlflow_store: str, mlflow_client) -> None:  # noqa: ANN001
    mlflow_client.create_experiment("gradreg", artifact_location=small_disk.as_uri())
    proc = train(tmp_path, mlflow_store, "+callbacks.fill._target_=tests.helpers.FillDiskAtStep",
                 f"+callbacks.fill.path={small_disk}")
    run_id = assert_failed_with_one_line(proc, mlflow_client, small_disk)
    config = mlflow_client.download_artifacts(run_id, "config/config.yaml", str(tmp_path))
    assert "model:" in Path(config).read_text(), "artifacts written before the disk filled stay readable"
