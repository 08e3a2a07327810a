"""How a job starts: which checkpoint and run it continues, what it leaves out, and when each is checked.

`JobStart` holds the resume / skip / reap protocol as five steps that must run in this order; a step
called out of turn raises `RuntimeError` naming the one that comes next, so the order is enforced by
the object, not by comments beside its calls:

1. `JobStart.plan(cfg)`: close runs whose process died (the reaper; not in a re-launched DDP rank),
   find the checkpoint and run to continue (`resume=<run_id>`, `ckpt_path=<file>`,
   `src/lifecycle/resume.py`) and, with `skip_bad_batches`, the examples to leave out
   (`src/lifecycle/skip_resume.py`). Read-only: every DDP rank plans the same.
2. `data_ready(datamodule)`: leave those examples out, then `prepare_data()`, so a missing data set
   fails before any run exists.
3. `model_fits(module)`: a checkpoint whose weights do not fit the module fails here, the run untouched.
4. `tracked_run()`: open the run, or reopen the one resumed (`src/lifecycle/run_context.py`).
5. `callbacks(run, callbacks)`: add the lifecycle callbacks (graceful stop, the stop on a store that refuses
   writes, the run id in every checkpoint, atomic saves, the data set as the run's input), write the metric
   rows a refusing store left beside the checkpoint (`src/lifecycle/unsent_rows.py`) and tag the run with its checkpoint
   folder (how `resume=<run_id>` finds `last.ckpt`) and what it leaves out.

Example (what `src/train.py` does)::

    start = JobStart.plan(cfg)
    datamodule = start.data_ready(build_datamodule(cfg))
    module = start.model_fits(build_module(cfg))
    with start.tracked_run() as run:
        callbacks = start.callbacks(run, build_callbacks(cfg))
        trainer.fit(module, datamodule=datamodule, ckpt_path=start.ckpt_path)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig

from src.lifecycle.resume import ResumePlan
from src.lifecycle.run_context import Run
from src.lifecycle.skip_resume import Skip

STEPS = ("plan", "data_ready", "model_fits", "tracked_run", "callbacks")


class JobStart:
    """The plan of one job's start (see the module docstring); made by `JobStart.plan(cfg)`."""

    def __init__(self, cfg: DictConfig, resume: ResumePlan, skip: Skip | None,
                 choices: Mapping[str, Any] | None = None, overrides: list[str] | None = None) -> None:
        self.cfg = cfg
        self.resume = resume
        self.skip = skip
        self.choices = dict(choices or {})  # Hydra's config-group choices, for the run's name and tags
        self.overrides = list(overrides or [])  # the command line's overrides, for the run's tags
        self._done = "plan"

    @classmethod
    def plan(cls, cfg: DictConfig) -> JobStart:
        """Step 1: reap lost runs, then plan the resume and the skip (read-only)."""
        from hydra.core.hydra_config import HydraConfig

        from src.lifecycle.ranks import is_relaunched_rank
        from src.lifecycle.resume import plan_resume
        from src.lifecycle.skip_resume import plan_skip
        from src.tracking.client import client
        from src.tracking.reaper import reap_at_start

        if not is_relaunched_rank():
            reap_at_start(client())  # one search of RUNNING runs
        resume, skip = plan_skip(cfg, client(), plan_resume(cfg, client()))
        hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
        choices = hydra_cfg.runtime.choices if hydra_cfg else {}
        overrides = list(hydra_cfg.overrides.task) if hydra_cfg else []
        return cls(cfg, resume, skip, choices, overrides)

    @property
    def nothing_to_train(self) -> str | None:
        """Why this resume would train no step (then nothing is opened and the run stays as it is), or None.
        None too when a store that refused writes left rows beside the checkpoint: the run is reopened to write
        them (`src/lifecycle/unsent_rows.py`), and ends as trained."""
        from src.lifecycle.unsent_rows import has_unsent

        if self.resume.ckpt_path and has_unsent(Path(self.resume.ckpt_path).parent):
            return None
        return self.resume.nothing_to_train

    @property
    def ckpt_path(self) -> str | None:
        """The checkpoint `trainer.fit` restores from (None: a fresh start)."""
        return self.resume.ckpt_path

    def _advance(self, step: str) -> None:
        expected = STEPS[STEPS.index(self._done) + 1] if self._done != STEPS[-1] else None
        if step != expected:
            raise RuntimeError(f"JobStart.{step}() called after {self._done}(); "
                               + (f"{expected}() comes next" if expected else "every step has run"))
        self._done = step

    def data_ready(self, datamodule: pl.LightningDataModule) -> pl.LightningDataModule:
        """Step 2: leave the skipped examples out, then fetch or check the data (a clear error if missing)."""
        self._advance("data_ready")
        if self.skip is not None:
            datamodule.leave_out(self.skip.indices)
        datamodule.prepare_data()
        return datamodule

    def model_fits(self, module: pl.LightningModule) -> pl.LightningModule:
        """Step 3: refuse a checkpoint whose weights do not fit `module`, before the run is touched."""
        from src.lifecycle.resume import check_checkpoint_fits

        self._advance("model_fits")
        check_checkpoint_fits(self.resume, module)
        return module

    @contextmanager
    def tracked_run(self) -> Iterator[Run]:
        """Step 4: the job's MLflow run, new or the one resumed, whose status always tells how it ended."""
        from src.lifecycle.run_context import tracked_run
        from src.lifecycle.sweep_stop import refuse_if_sweep_stopped

        self._advance("tracked_run")
        refuse_if_sweep_stopped()  # the sweep's launcher was signalled: no new run
        resume = (self.resume.run_id, self.resume.ckpt_path) if self.resume.run_id else None
        with tracked_run(self.cfg, self.choices, self.overrides, resume=resume) as run:
            yield run

    def callbacks(self, run: Run, callbacks: list[pl.Callback]) -> list[pl.Callback]:
        """Step 5: `callbacks` with the lifecycle's own after them; the run tagged with its checkpoint folder
        and what it leaves out."""
        from src.lifecycle.checkpoint_io import AtomicCheckpoints
        from src.lifecycle.checkpoint_owner import remove_partial_files, run_checkpoint_folder
        from src.lifecycle.graceful_stop import GracefulStop
        from src.lifecycle.resume import (
            CHECKPOINT_DIR_TAG,
            RunIdentity,
            checkpoint_dir,
            record_checkpoint_dir,
            use_checkpoint_folder,
        )
        from src.lifecycle.skip_resume import record_skip
        from src.lifecycle.store_write_stop import StoreWriteStop
        from src.lifecycle.unsent_rows import replay_unsent
        from src.tracking.datasets import LogDatasetInputs

        self._advance("callbacks")
        tagged = None  # a resumed run keeps its folder; a re-launched DDP rank takes rank 0's
        if self.resume.run_id or not run.owner:
            tagged = run.client.get_run(run.run_id).data.tags.get(CHECKPOINT_DIR_TAG)
        folder = run_checkpoint_folder(checkpoint_dir(self.cfg.trainer, callbacks), run.run_id, tagged)
        use_checkpoint_folder(callbacks, folder)
        if run.owner:
            remove_partial_files(folder)
            replay_unsent(run.client, run.run_id, folder)  # rows a full or locked store refused last time
        record_checkpoint_dir(run, folder, self.resume)
        record_skip(run, self.skip)
        run.store_stop = StoreWriteStop(folder)  # a store that refuses writes: stop at the next step, keep the rows
        return [*callbacks, GracefulStop(folder), run.store_stop, RunIdentity(run.run_id), AtomicCheckpoints(),
                LogDatasetInputs(run.client, run.run_id)]  # the last: the Dataset column of the UI
