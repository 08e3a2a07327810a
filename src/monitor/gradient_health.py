"""`GradientHealthMonitor`: per-layer gradient statistics and health events, logged to MLflow.

When it acts: at `on_before_optimizer_step` (gradients after accumulation and AMP unscaling,
before clipping) it records one row of statistics on the device (`grad_stats.py`); every
`every_n_steps` rows it reads them to the host once, finds events (`health_events.py`), and sends
MLflow one `log_batch`. At the end of training (or when it stops a run) it writes
`events.jsonl`, the `health.*` tags and the gradient-flow plots (`health_plots.py`).

What reaches MLflow (steps are `trainer.global_step` before the update: 0 = first update):
- every step: `grad/global_norm`, `grad/nonfinite`, `grad/first_last_ratio`, `grad/depth_slope`;
- the last step of each flush (the logging cadence, like `train/loss`): `grad_norm/<NN>.<layer>`
  and `weight_norm/<NN>.<layer>`; every `rel_update_every_n_steps`: `rel_update/<NN>.<layer>`;
- at each event: `events/<kind>` (running count), and final counts of all kinds at the end.
Non-finite values are never sent as metric values (the MLflow UI breaks on NaN); the
`grad/nonfinite` count and the `nonfinite` event say where they were.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Unpack

import numpy as np
import pytorch_lightning as pl
import torch

from src.config.signature import checked
from src.config.types import NonNegativeInt, PositiveInt
from src.monitor.events import KINDS, EventDetector, HealthEvent, NonfiniteCount, Policy, Thresholds, ThresholdSettings
from src.monitor.grad_stats import GradStatsCollector, RelativeUpdateTracker, StatsBlock, summarize
from src.monitor.plots import save_gradient_flow
from src.monitor.sink import run_sink
from src.monitor.verdict import HEALTHY, HealthVerdict

FLAGGING_KINDS = ("nonfinite", "divergence")  # these mark a run `diverged`, whatever the policy


class GradientHealthMonitor(pl.Callback):
    """Watches gradient health every optimizer step at the cost of one fused norm pass.

    Args:
        every_n_steps: rows kept on the device between host reads (and MLflow batches); the
            config passes `trainer.log_every_n_steps`. Events are found at a read, with the exact
            step they happened; a stop therefore takes effect at most this many steps later.
        rel_update_every_n_steps: every this many steps, ‖Δθ‖/‖θ‖ per layer (one copy of the
            weights); 0 = never.
        nonfinite_count: `tensors` (free: gradient tensors whose norm is NaN/Inf) or `values`
            (exact count of NaN/Inf gradient values; one more pass over the gradients per step).
        on_nonfinite, on_divergence: `stop` (end the run cleanly) or `continue`. Either way the
            run is flagged and `train.py` tags it `outcome=diverged`.
        test_after_divergence: whether `train.py` runs the test phase of a flagged run.
        plots: log the gradient-flow heatmap and line plot at the end.
        **thresholds: the fields of `Thresholds` (event limits, documented there).
    """

    @checked("monitor")
    def __init__(
        self,
        every_n_steps: PositiveInt = 50,
        rel_update_every_n_steps: NonNegativeInt = 100,
        nonfinite_count: NonfiniteCount = "tensors",
        on_nonfinite: Policy = "stop",
        on_divergence: Policy = "stop",
        test_after_divergence: bool = False,
        plots: bool = True,
        **thresholds: Unpack[ThresholdSettings],
    ) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps
        self.rel_update_every_n_steps = rel_update_every_n_steps
        self.count_values = nonfinite_count == "values"
        self.stop_kinds = {k for k, p in (("nonfinite", on_nonfinite), ("divergence", on_divergence)) if p == "stop"}
        self.test_after_divergence = test_after_divergence
        self.plots = plots
        self.thresholds = Thresholds(**thresholds)
        self.flagged = False  # a nonfinite or divergence event happened (on any rank)
        self.stopped = False  # this monitor asked the trainer to stop
        self.collector: GradStatsCollector | None = None

    # ---- set-up -------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        net = getattr(pl_module, "net", pl_module)  # names relative to the network: `features.6`
        self.collector = GradStatsCollector(net, self.every_n_steps, self.count_values)
        layers = self.collector.layers
        self.labels = [layer.label for layer in layers]
        by_module = {layer.name: layer.label for layer in layers}
        param_layers = [by_module.get(name.rsplit(".", 1)[0], name) for name in self.collector.param_names]
        self.detector = EventDetector(self.thresholds, self.labels, param_layers)
        weights = [self.collector.params[layer.param_index] for layer in layers]
        self.updates = RelativeUpdateTracker(weights) if self.rel_update_every_n_steps else None
        self._history: list[tuple[np.ndarray, np.ndarray]] = []  # (steps, layer grad norms) for plots
        self._last_step = -1
        self._finished = False

    # ---- every step ---------------------------------------------------------------------------
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.collector is None:
            return
        step = trainer.global_step
        loss = getattr(pl_module, "last_loss", None)
        logged_row = self.collector.pending + 1 == self.every_n_steps
        self.collector.collect(step, loss if isinstance(loss, torch.Tensor) else None, with_weights=logged_row)
        if self.updates is not None and step % self.rel_update_every_n_steps == 0:
            self.updates.snapshot(step)
        self._last_step = step
        if self.collector.pending >= self.every_n_steps:
            self._flush(trainer, reduce=True)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        waiting = self.updates.waiting if self.updates is not None else None
        if waiting is not None and trainer.global_step > waiting:  # the snapshot's update is applied
            self.updates.finish()

    # ---- host side ------------------------------------------------------------------------------
    def _flush(self, trainer: pl.Trainer, reduce: bool) -> list[HealthEvent]:
        """Read the device buffer once, find events, log one MLflow batch, apply the stop policy."""
        assert self.collector is not None
        block = self.collector.read()
        updates = self.updates.read() if self.updates is not None else []
        stats = summarize(block, self.collector.layers)
        events: list[HealthEvent] = []
        for i, step in enumerate(block.steps):
            events += self.detector.update(
                int(step),
                None if block.loss is None else float(block.loss[i]),
                float(stats["global_norm"][i]),
                block.nonfinite_per_param[i],
                stats["layer_grad_norms"][i],
                float(stats["first_last_ratio"][i]),
            )
        if len(block):
            self._history.append((block.steps, stats["layer_grad_norms"].astype(np.float32)))
        if trainer.is_global_zero:
            self._log(trainer, block, stats, updates, events)
        flag = any(e.kind in FLAGGING_KINDS for e in events)
        stop = any(e.kind in self.stop_kinds for e in events)
        if reduce:  # every rank reads at the same step; any rank's event counts for all
            flag = bool(trainer.strategy.reduce_boolean_decision(flag, all=False))
            stop = bool(trainer.strategy.reduce_boolean_decision(stop, all=False))
        self.flagged |= flag
        if stop and not self.stopped:
            self.stopped = True
            trainer.should_stop = True  # Lightning's documented stop (validation refuses min_epochs/min_steps with it)
        return events

    def _log(
        self,
        trainer: pl.Trainer,
        block: StatsBlock,
        stats: dict[str, np.ndarray],
        updates: list[tuple[int, np.ndarray]],
        events: list[HealthEvent],
    ) -> None:
        sink = run_sink(trainer)
        if sink is None:
            return
        metrics: list[tuple[str, float, int]] = []
        for i, step in enumerate(block.steps.tolist()):
            for name in ("global_norm", "nonfinite", "first_last_ratio", "depth_slope"):
                metrics.append((f"grad/{name}", stats[name][i], step))
        for row, weight_norms in block.weight_norms.items():
            step = int(block.steps[row])
            for label, g, w in zip(self.labels, stats["layer_grad_norms"][row], weight_norms, strict=True):
                metrics += [(f"grad_norm/{label}", g, step), (f"weight_norm/{label}", w, step)]
        for step, ratios in updates:
            metrics += [(f"rel_update/{label}", r, step) for label, r in zip(self.labels, ratios, strict=True)]
        running = {kind: 0 for kind in KINDS}
        previous = {k: self.detector.counts[k] - sum(e.kind == k for e in events) for k in KINDS}
        for event in events:
            running[event.kind] += 1
            metrics.append((f"events/{event.kind}", previous[event.kind] + running[event.kind], event.step))
        tags = self._summary_tags() if events else {}
        sink.log_rows(metrics, tags)
        if events:
            sink.log_text(self.detector.jsonl(), "events.jsonl")

    def _summary_tags(self) -> dict[str, str]:
        tags = {"health.events": self.detector.summary()}
        if self.detector.events:
            tags["health.first_event_step"] = str(self.detector.events[0].step)
        return tags

    def _finish(self, trainer: pl.Trainer, reduce: bool) -> None:
        """Last read, final counts, tags, events.jsonl and plots; runs once per fit."""
        if self.collector is None or self._finished:
            return
        self._finished = True
        if self.updates is not None and self.updates.waiting is not None and trainer.global_step > self.updates.waiting:
            self.updates.finish()
        self._flush(trainer, reduce=reduce)
        sink = run_sink(trainer) if trainer.is_global_zero else None
        if sink is None:
            return
        step = max(self._last_step, 0)
        sink.log_rows([(f"events/{k}", v, step) for k, v in self.detector.counts.items()], self._summary_tags())
        sink.log_text(self.detector.jsonl(), "events.jsonl")
        if self.plots and self._history:
            steps = np.concatenate([s for s, _ in self._history])
            norms = np.concatenate([n for _, n in self._history])
            with tempfile.TemporaryDirectory() as tmp:
                for path in save_gradient_flow(steps, norms, self.labels, Path(tmp)):
                    sink.log_artifact(str(path), "plots")

    def verdict(self) -> HealthVerdict:
        """The run's health so far (see `src/monitor/verdict.py`); final once training has ended."""
        events = self.detector.events if self.collector is not None else []
        return HealthVerdict(
            kind=events[0].kind if events else HEALTHY,
            diverged=self.flagged,
            test_after_divergence=self.test_after_divergence,
            first_event_step=events[0].step if events else None,
        )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, reduce=True)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        try:  # keep what was measured up to the crash; never hide the original exception
            self._finish(trainer, reduce=False)
        except Exception as exc:  # noqa: BLE001
            pl.utilities.rank_zero_warn(f"GradientHealthMonitor could not finish after {exception!r}: {exc!r}")
