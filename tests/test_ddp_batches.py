"""`trainer=ddp_cpu` with in-memory batches: Lightning's DistributedSampler gives each of the two processes its
own half of the training set, in batches of `batch_size`, each batch carrying its examples' source indices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.paths import PROJECT_ROOT
from src.training.data import SyntheticDataModule


@pytest.mark.slow  # two DDP processes with gloo
def test_ddp_cpu_ranks_split_the_training_set(mlflow_store: str, tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "batches"
    cmd = [
        sys.executable, "-m", "src.train", "trainer=ddp_cpu", f"paths.log_dir={tmp_path}", f"paths.data_dir={data_dir}",
        "data=synthetic", "data.num_samples=160", "data.batch_size=8", "sched=none", "trainer.max_epochs=1",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
        "+callbacks.batch_log._target_=tests.batch_probes.BatchIndexLog", f"+callbacks.batch_log.folder={folder}",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    env.pop("GRADREG_RUN_ID", None)
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    ranks = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world_size"] == 2 and r["sampler"] == "DistributedSampler" for r in ranks)
    seen = [[i for batch in r["batches"] for i in batch] for r in ranks]
    assert all(len(batch) == 8 for r in ranks for batch in r["batches"])  # 112 training examples: 7 batches each
    assert not set(seen[0]) & set(seen[1]), "the ranks share examples"
    train = SyntheticDataModule(num_samples=160, batch_size=8, seed=0)
    train.setup("fit")
    assert sorted(seen[0] + seen[1]) == sorted(train.train_set.indices)  # together: the training set, once
