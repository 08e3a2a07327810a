"""`Forensics`: where the first NaN came from. The monitor owns one (`monitor.forensics=true`) and calls it
at two points; it keeps nothing else running.

- at each flush without a flagging event (`after_flush`): a snapshot of the state the next window starts
  from, if it is finite (`snapshot.py`: one fused check read with the flush's, one fused asynchronous copy);
- every batch start (`on_batch_start`): every batch kept by reference with its learning rate (`window.py`:
  a list append); on the first batch a process sees, an unchecked snapshot (its check is read at the next
  flush); on a window's first step, the random state its forward starts from. No host read;
- after a flush whose events include a `nonfinite` or `divergence` (on any rank; `after_flush`): once
  per process, a replay from the snapshot up to the event's step with every check on (`replay.py`),
  the findings of all ranks gathered, and on rank zero the artifacts (`report.py`).

Steps are `trainer.global_step` before the update, as the monitor's.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl

from src.monitor.events import HealthEvent
from src.monitor.forensics import ranks
from src.monitor.forensics.replay import Finding, Replay
from src.monitor.forensics.report import build_report, one_line, write
from src.monitor.forensics.snapshot import Snapshot, rng_states
from src.monitor.forensics.window import StepBatches
from src.monitor.sink import run_sink

KINDS = ("nonfinite", "divergence")
MAX_WINDOWS = 4  # batches kept without a newer finite snapshot, in windows, before giving up (bounded memory)


class Forensics:
    """Keeps the last finite state and the batches since; replays them after the first flagging event."""

    def __init__(self, every_n_steps: int) -> None:
        self.every_n_steps = every_n_steps
        self.snapshot = Snapshot()
        self.window = StepBatches()
        self.step = -1  # the step of the latest batch kept
        self.gave_up: str | None = None  # why no replay is possible (the report says it)
        self.done = False
        self.report: dict[str, Any] | None = None  # on rank zero, once written
        self.line: str | None = None

    # ---- every batch ------------------------------------------------------------------------
    def on_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any) -> None:
        if self.done or self.gave_up or not trainer.optimizers:
            return
        step, optimizer = trainer.global_step, trainer.optimizers[0]
        if step != self.step:  # the first micro-batch of an optimizer step
            self.step = step
            if not self.snapshot.taken:  # the first batch this process sees: checked at the next flush
                self.snapshot.take(step, getattr(pl_module, "net", pl_module), optimizer, check=False)
            elif step == self.snapshot.step:  # taken at the flush: the random state as this step's forward sees it
                self.snapshot.rng = rng_states()
            if step - self.snapshot.step > MAX_WINDOWS * self.every_n_steps:
                self._give_up(f"no finite state since step {self.snapshot.step}")
                return
        indices = batch[2] if isinstance(batch, list | tuple) and len(batch) > 2 else None
        self.window.add(step, (batch[0], batch[1], indices), [float(g["lr"]) for g in optimizer.param_groups])

    def _new_window(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """At a flush: settle the first snapshot's check, then snapshot the state the next window starts from."""
        first = self.snapshot.step
        if not self.snapshot.settle():
            self._give_up(f"the weights were not finite at step {first}, the first this process saw")
            return
        epochs = trainer.fit_loop.epoch_progress.current.processed  # counted before the run's last flush
        stopping = (trainer.should_stop or 0 < trainer.max_steps <= trainer.global_step
                    or 0 < (trainer.max_epochs or -1) <= epochs)  # the last flush: no window follows it
        if self.gave_up or stopping or not trainer.optimizers or self.snapshot.step == trainer.global_step:
            return
        step = trainer.global_step  # after this flush's update: the state at the start of step `step`
        if self.snapshot.take(step, getattr(pl_module, "net", pl_module), trainer.optimizers[0]):
            self.window.drop_before(step)

    def release(self) -> None:
        """Free the snapshot and the kept batches (at the end of `fit`); the report and its line stay."""
        self.window.clear()
        self.snapshot = Snapshot()
        self.done = True

    def _give_up(self, why: str) -> None:
        self.gave_up = why
        self.window.clear()
        self.snapshot = Snapshot()

    # ---- after a flush ----------------------------------------------------------------------
    def after_flush(self, trainer: pl.Trainer, pl_module: pl.LightningModule, events: list[HealthEvent],
                    flagged: bool) -> None:
        """`flagged`: a nonfinite/divergence event on some rank so far (the same on every rank)."""
        if self.done:
            return
        if not flagged:
            self._new_window(trainer, pl_module)
            return
        first = self.snapshot.step
        if not self.snapshot.settle():
            self._give_up(f"the weights were not finite at step {first}, the first this process saw")
        self.done = True
        local = next((e for e in events if e.kind in KINDS), None)
        candidates = [(e, r) for r, e in enumerate(ranks.gather(local)) if e is not None]
        if not candidates:
            return  # flagged at an earlier flush this process did not see (a resumed run)
        event, event_rank = min(candidates, key=lambda c: (c[0].step, c[1]))
        finding, losses, replay_activations, overflow = None, {}, [], set()
        if self.gave_up is None and self.snapshot.taken:  # every step kept: a stop comes at this flush
            try:  # a diagnosis must not end the run it diagnoses (the report says why there is none)
                replay = Replay(trainer, pl_module, trainer.optimizers[0], self.snapshot, self.window)
                finding = replay.run(max(self.window.steps()))
                losses, overflow = replay.losses, replay.norm_overflow
                replay_activations = replay.activations.get(event.step, replay.last_activations)
                del replay
            except Exception as exc:  # noqa: BLE001
                self.gave_up = f"the replay failed: {exc!r}"[:500]
        mine = self._package(finding, event.step, losses, replay_activations)
        mine["overflow"] = overflow
        gathered = ranks.gather(mine)
        if trainer.is_global_zero:
            self._report(trainer, event, event_rank, gathered)
        self.window.clear()
        self.snapshot = Snapshot()

    def _package(self, finding: Finding | None, event_step: int, losses: dict[int, float],
                 activations: list) -> dict[str, Any]:
        """This rank's part: its finding, losses and the batch at the finding's (else the event's) step, on the host."""
        step = finding.step if finding is not None else event_step
        batch = None
        if self.window.batches(step):
            micro = finding.micro_batch if finding is not None else -1
            x, y, idx = self.window.batches(step)[micro]
            batch = {"inputs": x.detach().cpu(), "targets": y.detach().cpu(),
                     "indices": idx.detach().cpu() if idx is not None else None, "step": step, "rank": ranks.rank()}
        return {"finding": finding, "losses": losses, "activations": activations, "batch": batch,
                "lr": self.window.lrs(step) or None}

    def _report(self, trainer: pl.Trainer, event: HealthEvent, event_rank: int, parts: list[dict[str, Any]]) -> None:
        found = [(p["finding"], r) for r, p in enumerate(parts) if p["finding"] is not None]
        phases = ("forward", "loss", "backward", "update")
        earliest = min(found, key=lambda f: (f[0].step, phases.index(f[0].phase), f[1])) if found else None
        finding, rank = earliest if earliest is not None else (None, event_rank)
        part = parts[rank]
        losses = parts[event_rank]["losses"]
        batch = part["batch"]
        indices = batch["indices"].tolist() if batch is not None and batch["indices"] is not None else None
        event_dict = {k: v for k, v in vars(event).items() if v is not None}
        overflow = set().union(*(p["overflow"] for p in parts))
        reproduced, note = self._judge(event, finding, losses, overflow)
        steps = self.window.steps()
        context = {"lr": part["lr"], "from_step": self.snapshot.step, "to_step": max(steps) if steps else None,
                   "losses": {str(k): v for k, v in sorted(losses.items())}, "world_size": len(parts),
                   "snapshot_bytes": self.snapshot.nbytes, "activations": part["activations"]}
        self.report = build_report(event_dict, finding, rank, context, indices, reproduced, note)
        self.line = one_line(self.report)
        sink = run_sink(trainer)
        if sink is not None:
            write(sink, self.report, batch)

    def _judge(self, event: HealthEvent, finding: Finding | None, losses: dict[int, float],
               overflow: set[int]) -> tuple[bool, str]:
        """Whether the replay reproduced the event, and a sentence saying how (or why not).

        Reproduced: a NaN/Inf value at or before the event's step; for a `nonfinite` event, also a
        gradient whose values were finite but whose norm overflowed float32 at the event's step (what
        the monitor counted); for a `divergence`, the event's loss again (relative tolerance 1e-3)."""
        if self.gave_up is not None:
            return False, f"no replay: {self.gave_up}"
        if not self.snapshot.taken or not len(self.window):
            return False, "no replay: no finite state was kept"
        span = f"replayed steps {self.snapshot.step}..{max(self.window.steps())}"
        first = f"first non-finite value at step {finding.step} ({finding.phase})" if finding else "no NaN/Inf value"
        if finding is not None and finding.step <= event.step:
            return True, f"{span}: {first}"
        if event.kind == "nonfinite" and event.step in overflow:
            return True, (f"{span}: at step {event.step} the gradient's values were finite but its norm overflowed "
                          f"float32 (what the monitor counted); {first}")
        if event.kind == "divergence":
            replayed = losses.get(event.step)
            same = replayed is not None and math.isclose(replayed, event.value, rel_tol=1e-3, abs_tol=1e-6)
            how = f"replayed loss {replayed} vs {event.value} at step {event.step}"
            return same, f"{span}: {first}; {how}" + ("" if same else " (not reproduced: non-determinism?)")
        return False, f"{span}: {first} at or before step {event.step}: the replay does not reproduce the event " \
                      "(non-determinism?)"


def summary_line(callbacks: list[Any]) -> str | None:
    """The forensics line of the run's printed summary, from whichever callback owns a `Forensics`."""
    for cb in callbacks:
        forensics = getattr(cb, "forensics", None)
        if isinstance(forensics, Forensics) and forensics.line:
            return forensics.line
    return None

