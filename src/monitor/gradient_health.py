"""`GradientHealthMonitor`: per-layer statistics of the data gradient, health events, one verdict per run.

When it acts (it orchestrates; each concern lives in its own file):
- `on_before_optimizer_step` (callbacks run before the module's hook, so `p.grad` is the data
  gradient: after accumulation and AMP unscaling, before the penalty's gradient and clipping): one
  row of norms on the device (`collector.py`);
- `on_train_batch_end` (after the update, outside the optimizer closure): the penalty gradient's norms
  the module made, the relative update (`updates.py`), and on the flush steps — `(step + 1) %
  every_n_steps == 0`, a stop, the end — one host read: statistics (`stats.py`), detectors
  (`detectors/`), the `health/` record part (`record.py`), one MLflow batch at the logging cadence
  (`rows.py`), the stop policy;
- at the end of training: the record consolidated, `events.jsonl`, the `health.*` tags (verdict
  included) and the gradient-flow plots (`run_end.py`, `plots.py`, from a bounded history, `history.py`).
The instruments (`instruments/`: back-propagated signal, unit health, sharpness) ride on the same hooks,
each on its own schedule; their samples join the flush (MLflow, the detectors' `StepView.extras`).
Its whole state (events, counts, detector state, timeline, history, skipped steps, unflushed rows) goes
into Lightning's checkpoints under its own `state_key` (two monitors in one trainer keep apart), so a
resumed run keeps one health record (`state.py`). Over time (`timeline.py`): each judged step is in one
state, `healthy` or a kind; the end gives time in each state, onsets, the final state and coverage.
The module it watches implements `Monitored` (`monitored.py`), checked at `setup`.
Steps are `trainer.global_step` before the update (0 = first update).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any, Unpack

import pytorch_lightning as pl
import torch

from src.amp import grad_scaler
from src.background import BackgroundWriter, FlushOutput
from src.monitor.account import end_tags, health_summary, verdict_kind
from src.monitor.collector import GradStatsCollector, StatsBlock
from src.monitor.detectors import KINDS, default_detectors
from src.monitor.events import EventLog, HealthEvent
from src.monitor.flow_images import FlowImages
from src.monitor.forensics import Forensics
from src.monitor.history import DecimatedHistory
from src.monitor.instruments import build_instruments
from src.monitor.judge import judge_views
from src.monitor.layers import ForwardOrder, Layer, candidate_layers, find_layers
from src.monitor.monitored import require_monitored
from src.monitor.record import RecordWriter
from src.monitor.rows import cadence_indices, statistic_rows
from src.monitor.run_end import write_run_end
from src.monitor.settings import POLICY_DEFAULTS, MonitorSettings, split_settings
from src.monitor.sink import run_sink
from src.monitor.state import MonitorState, NonfiniteCount, step_views
from src.monitor.stats import summarize
from src.monitor.summary import HealthSummary, event_line
from src.monitor.timeline import Timeline
from src.monitor.updates import RelativeUpdateTracker
from src.monitor.verdict import HealthVerdict
from src.settings.signature import checked
from src.settings.types import ClassCount, NonNegativeInt, OpenFraction, PositiveInt

log = logging.getLogger(__name__)


class GradientHealthMonitor(pl.Callback):
    """Watches the data gradient every optimizer step at the cost of a few fused norm passes.

    Args:
        every_n_steps: steps between host reads (flushes, on `(step + 1) % every_n_steps == 0`); the config
            passes `trainer.log_every_n_steps`. Events keep their exact step; a stop takes effect at the
            flush, at most this many steps after the event. MLflow gets the statistics at
            `trainer.log_every_n_steps` and at the last step; the `health/` record has every step.
        num_classes: C, for the chance-level loss ln C (`stalled`, `plateau`); None = the module's `num_classes`.
        rel_update_every_n_steps: every this many steps, ‖Δθ‖/‖θ‖ per layer (one copy of the weights); 0 = never.
        nonfinite_count: `tensors` (free: gradient tensors whose norm is NaN/Inf) or `values` (exact count of
            NaN/Inf gradient values; two more passes over the gradients per step).
        on_<kind>: one per detector kind of the registry (`detectors/__init__.py`; `settings.py`): `stop` (end
            the run cleanly at the flush) or `continue`; defaults `stop` for `nonfinite` and `divergence`, which
            tag the run `outcome=diverged` either way, `continue` for the others.
        test_after_divergence: whether `train.py` runs the test phase of a run tagged diverged.
        signal_every_n_steps, units_every_n_steps: every this many steps (0 = never) the back-propagated
            signal ‖∂L/∂z‖ per layer, and unit health (dead/saturated fractions, activation RMS); hooks are
            attached on those steps only (`instruments/signal.py`, `instruments/units.py`).
        saturation_limit: a tanh/sigmoid unit is saturated when its derivative is below this fraction of
            its largest (tanh′(0) = 1, σ′(0) = 1/4).
        sharpness_every_n_steps: every this many steps (0 = never) λ_max of the loss on a fixed probe batch,
            by Lanczos with at most `sharpness_iterations` Hessian-vector products, until the relative residual
            ‖Hv − λv‖/|λ| is at most `sharpness_tolerance`, on `sharpness_batch_size` examples
            (`instruments/sharpness.py`); an unconverged probe is logged as an estimate, never as λ_max.
        flow_images: step images of the gradient flow logged per run (evenly spaced; 0 = none; with plots).
        plots: log the gradient-flow heatmap and line plot at the end.
        record: write the per-step record under `health/`.
        forensics: keep the last finite state and the batches since (one snapshot per flush window), and after
            the first `nonfinite`/`divergence` event replay them to find the step, phase, module, operation and
            examples where the first NaN/Inf came from (`src/monitor/forensics/`, `docs/forensics.md`).
        **settings: the `on_<kind>` policies and the fields of `Thresholds` (limits and their sources,
            `thresholds.py`).

    Raises:
        TypeError: at `setup`, when the module does not implement `Monitored` (naming what it lacks), or
            when another monitor in the same trainer has the same `state_key`.
    """

    POLICY_DEFAULTS = POLICY_DEFAULTS  # `on_<kind>` -> its default, one per registered detector (`settings.py`)

    @checked("monitor")
    def __init__(
        self,
        every_n_steps: PositiveInt = 50,
        num_classes: ClassCount | None = None,
        rel_update_every_n_steps: NonNegativeInt = 100,
        nonfinite_count: NonfiniteCount = "tensors",
        signal_every_n_steps: NonNegativeInt = 10,
        units_every_n_steps: NonNegativeInt = 10,
        saturation_limit: OpenFraction = 0.01,
        sharpness_every_n_steps: NonNegativeInt = 2000,
        sharpness_iterations: PositiveInt = 60,
        sharpness_tolerance: OpenFraction = 0.01,
        sharpness_batch_size: PositiveInt = 32,
        flow_images: NonNegativeInt = 8,
        test_after_divergence: bool = False,
        plots: bool = True,
        record: bool = True,
        forensics: bool = True,
        **settings: Unpack[MonitorSettings],
    ) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps
        self.num_classes = num_classes
        self.rel_update_every_n_steps = rel_update_every_n_steps
        self.count_values = nonfinite_count == "values"
        self.policies, self.thresholds = split_settings(settings)  # {kind: policy}, by name
        self.stop_kinds = {kind for kind, policy in self.policies.items() if policy == "stop"}
        self.test_after_divergence = test_after_divergence
        self.plots, self.record = plots, record
        self.forensics_on = forensics
        self.forensics: Forensics | None = None
        self.instrument_settings = dict(
            signal_every_n_steps=signal_every_n_steps, units_every_n_steps=units_every_n_steps,
            saturation_limit=saturation_limit, sharpness_every_n_steps=sharpness_every_n_steps,
            sharpness_iterations=sharpness_iterations, sharpness_tolerance=sharpness_tolerance,
            sharpness_batch_size=sharpness_batch_size)
        self.flow_images = flow_images
        self.state = MonitorState(default_detectors(self.thresholds), EventLog(KINDS), DecimatedHistory(),
                                  Timeline(KINDS))
        self.flagging = {d.kind for d in self.state.detectors if d.flags_divergence}  # outcome=diverged
        identity = repr(sorted({"every_n_steps": every_n_steps, **self.instrument_settings, **self.policies,
                                **vars(self.thresholds)}.items()))
        self._key = self._generate_state_key(settings=hashlib.sha1(identity.encode()).hexdigest()[:12])
        self.collector: GradStatsCollector | None = None
        self.layers: list[Layer] | None = None

    @property
    def state_key(self) -> str:
        """Its checkpoint entry, made of its settings: two monitors in one trainer keep their states apart."""
        return self._key

    # ---- set-up -------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        twins = [cb for cb in trainer.callbacks if cb is not self and getattr(cb, "state_key", None) == self.state_key]
        if twins:
            raise TypeError("two gradient-health monitors with the same settings in one trainer would share one "
                            "checkpoint entry; give them different settings or keep one")
        module = require_monitored(pl_module)
        self.net = module.net  # names relative to the network: `features.6`
        self.collector = GradStatsCollector(self.net, self.every_n_steps, self.count_values)
        self.order = ForwardOrder(self.net, self.collector.param_names)
        self.instruments = build_instruments(**self.instrument_settings)  # src/monitor/instruments/
        self.instruments.bind(self.net, [name for name, _ in candidate_layers(self.net, self.collector.param_names)])
        self.images = FlowImages(self.flow_images if self.plots else 0, trainer)
        self.layers, self.updates, self.writer = None, None, None
        self.classes = self.num_classes or module.num_classes
        self.schedules = self.instruments.schedules
        self._tmp = tempfile.TemporaryDirectory(prefix="gradreg-health-")
        self.background: BackgroundWriter | None = None  # made at the first flush that has a sink
        self._finished = False
        self.forensics = Forensics(self.every_n_steps) if self.forensics_on else None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning restores the monitor's state after `setup` and before training (a resumed run). Once this
        process's training has ended, the record is final: a checkpoint loaded for the test phase (`ckpt_path=
        "best"`, saved mid-run) must not roll the verdict and the timeline back to its step."""
        if getattr(self, "_finished", False):
            return
        self.state.load_state_dict(state_dict)

    def state_dict(self) -> dict[str, Any]:
        if self.collector is not None and self.collector.pending:  # unflushed rows travel with the checkpoint
            self.state.pending.append(self.collector.read())
        return self.state.state_dict()

    def _fix_layers(self) -> None:
        """The layers in the order the first forward pass called them (`layers.py`)."""
        assert self.collector is not None
        self.layers = find_layers(self.net, self.collector.param_names, self.order.stop())
        by_module = {layer.name: layer.label for layer in self.layers}
        names = self.collector.param_names
        self.param_labels = [by_module.get(n.rsplit(".", 1)[0], n) for n in names]
        self.labels = [layer.label for layer in self.layers]
        self.label_of = {layer.name: layer.label for layer in self.layers}
        self.state.check_labels(self.labels)
        weights = [self.collector.params[layer.param_index] for layer in self.layers]
        self.updates = RelativeUpdateTracker(weights) if self.rel_update_every_n_steps else None
        sizes = [int(self.collector.sizes[layer.param_index]) for layer in self.layers]
        self.writer = RecordWriter(Path(self._tmp.name) / "parts", self.labels, sizes, self.state.generation)

    # ---- every step ---------------------------------------------------------------------------
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, *args: Any) -> None:
        if self.collector is not None and self.layers is None and not self.order.attached:
            self.order.start()
        if self.collector is not None:
            self.instruments.before_forward(trainer.global_step, trainer, pl_module, batch)
        if self.forensics is not None:
            self.forensics.on_batch_start(trainer, pl_module, batch)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.collector is None:
            return
        if self.layers is None:
            self._fix_layers()
        if self.collector.pending >= self.collector.capacity:  # only when flushes were missed
            self._flush(trainer, reduce=False)
        step = trainer.global_step
        self.collector.collect(step, pl_module.window_loss)
        self.instruments.after_backward(step, trainer, pl_module, optimizer)
        if self.updates is not None and step % self.rel_update_every_n_steps == 0:
            self.updates.snapshot(step)
        self.state.last_step = step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        stepped = trainer.global_step == self.state.last_step + 1  # this batch made an update
        if self.collector is None or not stepped or self.state.completed == self.state.last_step:
            return  # no update in this batch (accumulating), or its row is complete already
        step = self.state.completed = self.state.last_step
        norms = pl_module.penalty_grad_norms
        if isinstance(norms, torch.Tensor) and norms.numel() == len(self.collector.params):
            self.collector.add_penalty(norms)
        if self.updates is not None and self.updates.waiting == step:
            self.updates.finish()
        self.instruments.after_update(step, trainer, pl_module)
        if self.flush_due(step, trainer):
            self._flush(trainer, reduce=True)

    def flush_due(self, step: int, trainer: pl.Trainer) -> bool:
        """Whether step `step` ends with a flush, the monitor's one host read: every `every_n_steps` steps, on a
        stop, and on the steps of an instrument that reads the host anyway (a sharpness probe)."""
        return ((step + 1) % self.every_n_steps == 0 or trainer.should_stop
                or (self.instruments is not None and self.instruments.read_host_at(step)))

    # ---- host side ------------------------------------------------------------------------------
    def _flush(self, trainer: pl.Trainer, reduce: bool, final: bool = False) -> list[HealthEvent]:
        """Read the device buffer once; statistics, detectors, record, one MLflow batch, the stop policy."""
        assert self.collector is not None
        blocks = [*self.state.pending, self.collector.read()]
        self.state.pending = []
        rows = [b for b in blocks if len(b)]
        events: list[HealthEvent] = []
        if rows and self.layers is not None:
            events = self._judge(trainer, rows, final or trainer.should_stop)
        flag = any(e.kind in self.flagging for e in events)
        stop = any(e.kind in self.stop_kinds for e in events)
        if reduce:  # every rank flushes at the same step; any rank's event counts for all
            flag = bool(trainer.strategy.reduce_boolean_decision(flag, all=False))
            stop = bool(trainer.strategy.reduce_boolean_decision(stop, all=False))
        self.state.flagged |= flag
        if self.forensics is not None and reduce:  # every rank takes part in the replay's collectives
            self.forensics.after_flush(trainer, trainer.lightning_module, events, self.state.flagged)
        if stop and not trainer.should_stop:
            trainer.should_stop = True  # Lightning's documented stop (validation refuses min_epochs/min_steps with it)
        return events

    def _judge(self, trainer: pl.Trainer, blocks: list[StatsBlock], last_row: bool) -> list[HealthEvent]:
        block = StatsBlock.concat(blocks)
        scaler = grad_scaler(trainer)
        summary = summarize(block, self.layers, self.param_labels, self.collector.sizes, scaler is not None)
        scale = float(scaler.get_scale()) if scaler is not None else None  # one read, at the flush
        samples = self.instruments.read(self.label_of)  # {step: {signal/…, dead/…, sharpness/…}}
        views = step_views(summary, self.labels, self.classes, scale)
        for view in views:
            view.extras.update(samples.get(view.step, {}))
        announce = (lambda e: log.info(event_line(e))) if trainer.is_global_zero else None
        found = judge_views(views, self.state.detectors, self.state.log, self.state.timeline, announce)
        events, counts = [e for e, _ in found], [c for _, c in found]
        skipped_before = self.state.skipped_steps
        self.state.skipped_steps += int(summary.skipped.sum())
        self.state.history.add(summary.steps, summary.layer_rel)
        updates = self.updates.read() if self.updates is not None else []  # the device read stays on this thread
        sink = run_sink(trainer) if trainer.is_global_zero else None
        if sink is None:
            return events
        picked = cadence_indices(summary.steps, trainer.log_every_n_steps, include_last=last_row)
        metrics = statistic_rows(summary, self.labels, picked, skipped_before, scaler is not None)
        metrics += [(key, value, step) for step, values in samples.items() for key, value in values.items()]
        metrics += [(f"events/{e.kind}", float(c), e.step) for e, c in zip(events, counts, strict=True)]
        for step, ratios in updates:
            metrics += [(f"rel_update/{label}", float(r), step) for label, r in zip(self.labels, ratios, strict=True)]
        tags = self.state.log.tags() if events or not self.state.tagged else None
        jsonl = self.state.log.jsonl() if events else None
        self.state.tagged = True
        image = self.images.job(sink, summary.steps, summary.layer_rel, self.labels)  # a step image, now and then
        if self.background is None:
            self.background = BackgroundWriter(sink, self.writer if self.record else None)
        self.background.submit(FlushOutput(summary if self.record else None, metrics, tags, jsonl,
                                           (image,) if image else ()))
        return events

    def _finish(self, trainer: pl.Trainer, reduce: bool) -> None:
        """Last flush, the consolidated record, final counts, tags, events.jsonl and plots; once per fit."""
        if self.collector is None or self._finished:
            return
        self._finished = True
        if self.layers is None and self.state.pending:  # resumed, then stopped before a step: no forward seen
            self._fix_layers()
        self.order.stop()
        if self.updates is not None and self.updates.waiting is not None and trainer.global_step > self.updates.waiting:
            self.updates.finish()
        self._flush(trainer, reduce=reduce, final=True)
        if self.background is not None:
            self.background.close()  # everything measured is written before the run's end is
            self.background = None
        sink = run_sink(trainer) if trainer.is_global_zero else None
        if sink is None:
            return
        labels = self.labels if self.layers is not None else None
        self.plot_paths = write_run_end(
            sink, self.state, Path(self._tmp.name) / "parts", labels, self.record, self.plots,
            lambda: {p: self.instruments.layer_history(p, self.labels) for p in ("signal", "dead")},
            self.end_tags())

    def verdict_kind(self) -> str:
        """The first event's kind, or `inconclusive`/`healthy` (`account.py`)."""
        return verdict_kind(self.state, getattr(self, "schedules", {}))

    def end_tags(self) -> dict[str, str]:
        """The run-end `health.*` tags: verdict, events, final state, recovered, coverage (`account.py`)."""
        return end_tags(self.state, getattr(self, "schedules", {}))

    def verdict(self) -> HealthVerdict:
        """The run's health so far (see `src/monitor/verdict.py`); final once training has ended."""
        first = self.state.log.first
        return HealthVerdict(kind=self.verdict_kind(), diverged=self.state.flagged,
                             test_after_divergence=self.test_after_divergence,
                             first_event_step=first.step if first else None)

    def health_summary(self) -> HealthSummary | None:
        """The end-of-run account for the console (`summary.py`); None before any step was judged."""
        return health_summary(self.state, getattr(self, "schedules", {}), getattr(self, "plot_paths", []))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, reduce=True)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        try:  # keep what was measured up to the crash; never hide the original exception
            self._finish(trainer, reduce=False)
        except Exception as exc:  # noqa: BLE001
            pl.utilities.rank_zero_warn(f"GradientHealthMonitor could not finish after {exception!r}: {exc!r}")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.collector is not None:
            self.instruments.detach()
            if self.forensics is not None:
                self.forensics.release()
            if self.background is not None:
                self.background.close()
                self.background = None
            self._tmp.cleanup()
