"""Resume keeps the health record: after SIGTERM and `resume=<id>`, events, counts, the verdict, the outcome, the
per-step record and the plots cover the whole run; an event before the break is kept and not fired twice; the
flushes realign with Lightning's logging cadence (on `global_step`)."""

from __future__ import annotations

import os
import signal
import tempfile
from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from src.models import mlp
from src.monitor import GradientHealthMonitor
from src.monitor.record import download_record, read_record
from src.training.module import ClassificationModule
from tests.memory_sink import MemoryLogger
from tests.mlflow_reads import run_events
from tests.signalled_runs import signal_after_steps

EVERY = 3
RUN = [
    "data=synthetic", "data.num_samples=1024", "data.batch_size=8", "sched=none", "test=false",
    "trainer.max_epochs=-1", "trainer.limit_val_batches=2", "trainer.enable_progress_bar=false",
    f"trainer.log_every_n_steps={EVERY}",
    # a divergence the run is sure to show early: any loss above the previous one, at once, continue
    "monitor.on_divergence=continue", "monitor.divergence_warmup=1", "monitor.divergence_window=1",
    "monitor.divergence_factor=1.0001", "monitor.divergence_min_increase=0", "monitor.divergence_patience=1",
]


@pytest.mark.slow  # a run stopped by a signal, then resumed
def test_resume_continues_the_health_record(run_cli, mlflow_client, mlflow_store, tmp_path, data_dir) -> None:
    run_id, status, out = signal_after_steps(mlflow_client, mlflow_store, tmp_path, data_dir, RUN, 4, signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, out[-3000:]
    before = run_events(mlflow_client, run_id)
    assert before and before[0]["kind"] == "divergence"
    first_event = before[0]
    run = mlflow_client.get_run(run_id)
    last = os.path.join(run.data.tags["checkpoint_dir"], "last.ckpt")
    stop = torch.load(last, weights_only=True)["global_step"]  # steps done before the break
    assert run.data.tags["health.verdict"] == "divergence"  # a killed run has its verdict so far

    assert run_cli(*RUN, f"resume={run_id}", f"trainer.max_steps={stop + 7}") == 0
    run = mlflow_client.get_run(run_id)
    events = run_events(mlflow_client, run_id)
    assert events[0] == first_event, "the event before the break is kept"
    keys = [(e["kind"], e["step"]) for e in events]
    assert len(keys) == len(set(keys)), "no event fired twice"
    assert [e for e in events if e["step"] < stop] == [e for e in before if e["step"] < stop]
    assert run.data.tags["health.verdict"] == "divergence"
    assert run.data.tags["outcome"] == "diverged", "flagged before the break: diverged after the resume too"
    assert run.data.metrics["events/divergence"] == len([e for e in events if e["kind"] == "divergence"])

    record = download_record(mlflow_client, run_id, tempfile.mkdtemp(dir=tmp_path))
    assert record["step"].tolist() == list(range(stop + 7)), "the record covers the whole run, each step once"
    history = {m.step for m in mlflow_client.get_metric_history(run_id, "grad/global_norm")}
    cadence = {s for s in range(stop + 7) if (s + 1) % EVERY == 0}
    assert cadence <= history and history - cadence <= {stop - 1, stop + 6}  # + the last step of each process
    plots = {a.path for a in mlflow_client.list_artifacts(run_id, "plots")}
    assert plots == {"plots/gradient_flow_heatmap.png", "plots/gradient_flow_lines.png"}
    ckpt = torch.load(os.path.join(run.data.tags["checkpoint_dir"], "last.ckpt"), weights_only=True)
    [state] = [v for k, v in ckpt["callbacks"].items() if "GradientHealthMonitor" in k]
    assert state["generation"] == 1 and state["history"]["steps"][0] == 0


class SaveAt(pl.Callback):
    """Saves a checkpoint at the end of batch `step` (between two flushes: rows are pending on the device)."""

    def __init__(self, step: int, path: str) -> None:
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:  # noqa: ANN001, ANN002
        if trainer.global_step == self.step + 1:
            trainer.save_checkpoint(self.path)


def test_rows_pending_at_a_checkpoint_are_judged_once_and_the_resumed_generation_supersedes(tmp_path) -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16 * 20, 1, 8, 8), torch.randint(0, 10, (16 * 20,)))
    shared = MemoryLogger(tmp_path / "artifacts")  # one run's artifact store for both processes
    ckpt = str(tmp_path / "mid.ckpt")

    def fit(steps: int, callbacks: list, ckpt_path: str | None = None) -> GradientHealthMonitor:
        monitor = GradientHealthMonitor(every_n_steps=5, plots=False, num_classes=10,
                                        max_global_rel=1e-9, exploding_patience=3)  # fires at step 2
        module = ClassificationModule(net=mlp(in_channels=1, image_size=8, depth=2, width=16),
                                      optimizer=partial(torch.optim.SGD, lr=0.05))
        pl.Trainer(accelerator="cpu", max_steps=steps, logger=shared, callbacks=[*callbacks, monitor],
                   log_every_n_steps=5, limit_val_batches=0, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False).fit(module, DataLoader(data, batch_size=16), ckpt_path=ckpt_path)
        return monitor

    first = fit(12, [SaveAt(6, ckpt)])  # the checkpoint holds rows 5 and 6, not yet flushed
    assert [e.step for e in first.state.log.events] == [2]
    assert read_record(shared.folder / "health" / "parts")["step"].tolist() == list(range(12))
    state = torch.load(ckpt, weights_only=True)["callbacks"]
    [saved] = [v for k, v in state.items() if "GradientHealthMonitor" in k]
    assert [b["steps"] for b in saved["pending"]] == [[5, 6]]

    resumed = fit(15, [], ckpt_path=ckpt)  # continues from step 7, as a new process would
    assert [e.step for e in resumed.state.log.events] == [2], "the event is kept, not fired again"
    assert resumed.state.generation == 1
    record = read_record(shared.folder / "health")  # the consolidated record.parquet
    assert record["step"].tolist() == list(range(15)), "each step once: generation 1 from step 5 on"
    parts = sorted(p.name for p in (shared.folder / "health" / "parts").iterdir())
    assert parts == ["g000-s000000000.arrows", "g001-s000000005.arrows"]
