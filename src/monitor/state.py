"""The monitor's state that must outlive a process: what a checkpoint carries, and how a row becomes a view.

Lightning saves it with every checkpoint (`Callback.state_dict`) and gives it back on resume
(`load_state_dict`), so after `resume=<id>` the events, counts, verdict, detector state (patience
counters, running means), the timeline, plot history and skipped-step count continue; rows collected but not yet
flushed travel too, and are judged once, after the resume. A resumed process is the next
*generation* of the record (`record.py`). Every value is plain Python (checkpoints load with
`weights_only`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pytorch_lightning.utilities import rank_zero_warn

from src.monitor.collector import StatsBlock
from src.monitor.detectors import Detector, StepView
from src.monitor.events import EventLog
from src.monitor.history import DecimatedHistory
from src.monitor.stats import Summary
from src.monitor.timeline import Timeline

NonfiniteCount = Literal["tensors", "values"]
VERSION = 2  # 2: patience in steps, the timeline, `zeroed_weights` and `plateau`


@dataclass
class MonitorState:
    detectors: list[Detector]
    log: EventLog
    history: DecimatedHistory
    timeline: Timeline
    flagged: bool = False  # a nonfinite or divergence event happened (on any rank)
    skipped_steps: int = 0  # steps the AMP grad scaler skipped
    generation: int = 0  # 0 for a new run, +1 at each resume
    last_step: int = -1  # the latest step collected
    completed: int = -1  # the latest step whose row is complete (penalty part, update)
    tagged: bool = False  # this process has set the run's health tags once
    labels: list[str] | None = None  # layer labels of the run (checked against a resumed network)
    pending: list[StatsBlock] = field(default_factory=list)  # rows read from the device, not yet judged

    def check_labels(self, labels: list[str]) -> None:
        if self.labels is not None and self.labels != labels:
            rank_zero_warn("the resumed network's layers differ from the checkpoint's; the health record's "
                           "columns follow the new ones")
        self.labels = list(labels)

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "detectors": {d.kind: d.state_dict() for d in self.detectors},
            "log": self.log.state_dict(),
            "history": self.history.state_dict(),
            "timeline": self.timeline.state_dict(),
            "flagged": self.flagged,
            "skipped_steps": self.skipped_steps,
            "generation": self.generation,
            "last_step": self.last_step,
            "labels": self.labels,
            "pending": [_block_state(b) for b in self.pending],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != VERSION:
            rank_zero_warn(f"health monitor state version {state.get('version')} is not {VERSION}: starting afresh")
            return
        for detector in self.detectors:
            if detector.kind in state["detectors"]:
                detector.load_state_dict(state["detectors"][detector.kind])
        self.log.load_state_dict(state["log"])
        self.history.load_state_dict(state["history"])
        self.timeline.load_state_dict(state["timeline"])
        self.flagged, self.skipped_steps = bool(state["flagged"]), int(state["skipped_steps"])
        self.generation = int(state["generation"]) + 1
        self.last_step = self.completed = int(state["last_step"])
        self.labels = state["labels"]
        self.pending = [_block_from_state(b) for b in state["pending"]]


def _block_state(block: StatsBlock) -> dict[str, Any]:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(block).items()}


def _block_from_state(state: dict[str, Any]) -> StatsBlock:
    dtypes = {"steps": np.int64, "missing": bool, "has_loss": bool}
    return StatsBlock(**{k: (None if v is None else np.asarray(v, dtype=dtypes.get(k, np.float64)))
                         for k, v in state.items()})


def _first_zeroed(weights: np.ndarray, labels: list[str]) -> str | None:
    """The input-most layer whose weight norm is exactly 0 (a layer of zeros), or None."""
    zero = np.flatnonzero(weights == 0)
    return labels[zero[0]] if len(zero) else None


def step_views(summary: Summary, labels: list[str], num_classes: int | None, amp_scale: float | None) -> list[StepView]:
    """One `StepView` per row of `summary`; `amp_scale` (read at the flush) goes to the last row."""
    chance = math.log(num_classes) if num_classes else math.nan
    views = []
    for i in range(len(summary)):
        rel = summary.layer_rel[i]
        valid = np.flatnonzero(np.isfinite(rel))
        first, last = (valid[0], valid[-1]) if len(valid) else (None, None)
        views.append(StepView(
            step=int(summary.steps[i]),
            loss=float(summary.loss[i]) if summary.has_loss[i] else None,
            skipped=bool(summary.skipped[i]),
            nonfinite=float(summary.nonfinite[i]),
            norm_overflow=bool(summary.norm_overflow[i]),
            nonfinite_layer=summary.nonfinite_layer[i],
            global_norm=float(summary.global_norm[i]),
            global_rel=float(summary.global_rel[i]),
            first_rel=float(rel[first]) if first is not None else math.nan,
            first_layer=labels[first] if first is not None else None,
            last_rel=float(rel[last]) if last is not None else math.nan,
            median_layer_rel=float(np.median(rel[valid])) if len(valid) else math.nan,
            amp_scale=amp_scale if i == len(summary) - 1 else None,
            chance_loss=chance,
            zeroed_layer=_first_zeroed(summary.layer_weight[i], labels),
        ))
    return views
