"""The monitor's settings and joints: one source for its defaults, policies by kind, its own checkpoint entry
(`state_key`), the `Monitored` protocol it reads the module through, and the end-of-run console lines."""

from __future__ import annotations

import inspect
import math
from functools import partial
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from src.models import mlp
from src.monitor import GradientHealthMonitor
from src.monitor.detectors import KINDS
from src.monitor.events import HealthEvent
from src.monitor.monitored import Monitored, require_monitored
from src.monitor.settings import POLICY_DEFAULTS, split_settings
from src.monitor.summary import HealthSummary, health_summary_lines, summary_lines
from src.monitor.thresholds import Thresholds
from src.paths import CONFIG_DIR
from src.training.data import SyntheticDataModule
from src.training.module import ClassificationModule
from tests.memory_sink import MemoryLogger


def test_the_yaml_defaults_are_the_signatures_and_the_registrys() -> None:
    """conf/monitor/default.yaml holds every setting, each at the default the code declares."""
    yaml = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "monitor" / "default.yaml"))
    yaml.pop("_target_")
    code = {k: p.default for k, p in inspect.signature(GradientHealthMonitor).parameters.items()
            if p.kind is p.POSITIONAL_OR_KEYWORD}
    code |= POLICY_DEFAULTS | {f: getattr(Thresholds(), f) for f in Thresholds.__dataclass_fields__}
    interpolated = {k for k, v in yaml.items() if isinstance(v, str) and v.startswith("${")}
    assert interpolated == {"every_n_steps", "num_classes"}
    assert set(yaml) == set(code), (set(yaml) ^ set(code))
    assert {k: v for k, v in yaml.items() if k not in interpolated} == {k: v for k, v in code.items()
                                                                          if k not in interpolated}


def test_policies_are_keyed_by_kind_from_the_registry() -> None:
    assert set(POLICY_DEFAULTS) == {f"on_{k}" for k in KINDS}
    policies, thresholds = split_settings({"on_plateau": "stop", "plateau_patience": 7})
    assert policies["plateau"] == "stop" and policies["nonfinite"] == "stop" and policies["exploding"] == "continue"
    assert thresholds.plateau_patience == 7
    monitor = GradientHealthMonitor(on_plateau="stop", on_divergence="continue")
    assert monitor.stop_kinds == {"nonfinite", "plateau"}
    with pytest.raises(TypeError, match="on_plateu"):
        split_settings({"on_plateu": "stop"})


def _fit(callbacks: list[pl.Callback], steps: int, ckpt_path: str | None = None) -> pl.Trainer:
    pl.seed_everything(0, verbose=False)
    data = SyntheticDataModule(num_samples=256, in_channels=1, image_size=8, batch_size=32, seed=0, num_classes=10)
    module = ClassificationModule(net=mlp(in_channels=1, image_size=8, depth=3, width=16),
                                  optimizer=partial(torch.optim.SGD, lr=0.05), num_classes=10)
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, max_epochs=-1, logger=MemoryLogger(), callbacks=callbacks,
                         log_every_n_steps=2, limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return trainer


def test_two_monitors_keep_their_own_checkpoint_entries(tmp_path) -> None:  # noqa: ANN001
    settings = {"plots": False, "record": False, "forensics": False, "signal_every_n_steps": 0}
    a = GradientHealthMonitor(every_n_steps=2, **settings)
    b = GradientHealthMonitor(every_n_steps=3, **settings)
    assert a.state_key != b.state_key
    trainer = _fit([a, b], 6)
    trainer.save_checkpoint(tmp_path / "both.ckpt")
    saved = torch.load(tmp_path / "both.ckpt", weights_only=False)["callbacks"]
    assert {a.state_key, b.state_key} <= set(saved)
    assert saved[a.state_key]["timeline"] == saved[b.state_key]["timeline"] == {"segments": [["healthy", 0, 5]]}
    a2 = GradientHealthMonitor(every_n_steps=2, **settings)
    b2 = GradientHealthMonitor(every_n_steps=3, **settings)
    _fit([a2, b2], 8, ckpt_path=str(tmp_path / "both.ckpt"))
    assert a2.state.generation == b2.state.generation == 1  # each got its own state back
    assert a2.state.timeline.segments == b2.state.timeline.segments == [["healthy", 0, 7]]
    early = saved[a.state_key]
    a2.load_state_dict(early)  # after training (a test phase loading a mid-run checkpoint): the record stays final
    assert a2.state.timeline.segments == [["healthy", 0, 7]] and a2.state.generation == 1
    twin = GradientHealthMonitor(every_n_steps=2, **settings)
    with pytest.raises(TypeError, match="same settings"):
        twin.setup(SimpleNamespace(callbacks=[twin, GradientHealthMonitor(every_n_steps=2, **settings)]), None, "fit")


def test_the_monitor_reads_the_module_through_a_protocol_and_refuses_one_without_it() -> None:
    module = ClassificationModule(net=mlp(in_channels=1, image_size=8, depth=2, width=8), optimizer=torch.optim.SGD)
    assert isinstance(module, Monitored) and require_monitored(module) is module

    class Renamed(pl.LightningModule):  # `net` and `window_loss` under other names
        def __init__(self) -> None:
            super().__init__()
            self.network = torch.nn.Linear(2, 2)
            self.num_classes, self.penalty_grad_norms = 2, None

        def penalty(self) -> None:
            return None

    monitor = GradientHealthMonitor()
    with pytest.raises(TypeError, match=r"lacks \['net', 'window_loss'\]"):
        monitor.setup(SimpleNamespace(callbacks=[monitor]), Renamed(), "fit")


def test_the_end_summary_says_verdict_time_end_state_chance_and_coverage() -> None:
    event = HealthEvent(298, "plateau", 2.31, 2.07, None, "loss_window", 0)
    summary = HealthSummary(verdict="plateau", first_event=event, steps_in={"healthy": 100, "plateau": 400},
                            judged=500, final_state="plateau", recovered=False, blind_to=["unstable"],
                            ended_at_chance=True, final_loss=2.31, chance_loss=math.log(10),
                            plots=["plots/gradient_flow_heatmap.png"])
    lines = summary_lines(summary)
    assert lines[0] == ("Health: plateau — first event: plateau at step 298, since step 0: loss_window = 2.31, "
                        "limit 2.07")
    assert "plateau 400 (80%)" in lines[1] and "state at the end: plateau" in lines[1]
    assert "ended at chance level: training loss 2.310 against ln C = 2.303" in lines[2]
    assert "unstable" in lines[3] and "plots/gradient_flow_heatmap.png" in lines[4]
    assert health_summary_lines([object(), GradientHealthMonitor()]) == []  # nothing judged: nothing to say


def test_a_short_run_at_chance_is_inconclusive_and_says_what_it_could_not_see() -> None:
    monitor = GradientHealthMonitor(every_n_steps=5, plots=False, forensics=False)
    logger_holder = _fit([monitor], 10).logger
    tags = logger_holder.tags
    assert tags["health.verdict"] == "inconclusive" and monitor.verdict().kind == "inconclusive"
    assert tags["health.coverage"] == "partial"
    assert tags["health.blind_to"] == "divergence,vanishing,dead_units,stalled,unstable,plateau"  # 10 steps
    assert tags["health.final_state"] == "healthy" and tags["health.recovered"] == "false"
    rows = {k: v for k, v, _ in logger_holder.rows}
    assert rows["health/steps_healthy"] == 10 and rows["health/frac_healthy"] == 1.0
    assert rows["health/onsets_plateau"] == 0
    assert '"state": "healthy"' in logger_holder.texts["health/timeline.json"]
    lines = health_summary_lines([monitor])
    assert lines[0] == "Health: inconclusive" and any("ended at chance level" in line for line in lines)
