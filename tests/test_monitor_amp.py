"""Mixed precision on CPU (Lightning's `16-mixed` with a `torch.amp.GradScaler`): the scaler's routine skips are
counted, never `nonfinite`; regularizer step hooks leave the weights alone on skipped steps; a scaler that keeps
skipping is a blow-up. The scaler starts at 2^24 so its first steps overflow fp16 for sure (it halves per skip)."""

from __future__ import annotations

from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.precision import MixedPrecision
from torch.utils.data import DataLoader, TensorDataset

from src.models import mlp
from src.monitor import GradientHealthMonitor
from src.training.module import ClassificationModule
from src.training.regularizers import L1, L2
from tests.memory_sink import MemoryLogger


class StepWatch(pl.Callback):
    """Per step: weights before the update (callbacks run before the module's decay), after it, and the scale."""

    def __init__(self, inf_from: int | None = None) -> None:
        self.before, self.after, self.scales, self.inf_from = [], [], [], inf_from

    def on_after_backward(self, trainer, pl_module) -> None:  # noqa: ANN001
        if self.inf_from is not None and trainer.global_step >= self.inf_from:  # before the scaler unscales
            next(pl_module.net.parameters()).grad.view(-1)[0] = float("inf")  # a real, lasting blow-up

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # noqa: ANN001
        self.before.append([p.detach().clone() for p in pl_module.net.parameters()])

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:  # noqa: ANN001, ANN002
        self.after.append([p.detach().clone() for p in pl_module.net.parameters()])
        self.scales.append(trainer.precision_plugin.scaler.get_scale())


def fp16_fit(regs: list, steps: int = 16, init_scale: float = 2.0**24, inf_from: int | None = None):  # noqa: ANN201
    torch.manual_seed(0)
    net = mlp(in_channels=1, image_size=8, depth=3, width=32)
    data = TensorDataset(torch.randn(32 * steps, 1, 8, 8), torch.randint(0, 10, (32 * steps,)))
    module = ClassificationModule(net=net, optimizer=partial(torch.optim.SGD, lr=0.05), num_classes=10,
                                  regularizers=regs)
    watch, logger = StepWatch(inf_from), MemoryLogger()
    monitor = GradientHealthMonitor(every_n_steps=4, plots=False)
    pl.Trainer(
        accelerator="cpu", max_steps=steps, logger=logger, callbacks=[watch, monitor], log_every_n_steps=4,
        limit_val_batches=0, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=init_scale))],
    ).fit(module, DataLoader(TensorDataset(*data.tensors), batch_size=32))
    previous = [init_scale, *watch.scales[:-1]]
    skipped = [after < before for before, after in zip(previous, watch.scales, strict=True)]  # the scaler halved
    return monitor, logger, watch, skipped


@pytest.mark.parametrize("reg", [L2(1e-2, mode="decoupled"), L1(1e-2, proximal=True)], ids=["decoupled-l2", "prox-l1"])
def test_routine_skips_are_counted_not_events_and_step_hooks_skip_them_too(reg) -> None:  # noqa: ANN001
    monitor, logger, watch, skipped = fp16_fit([reg])
    assert 3 <= sum(skipped) < 16 and not all(skipped)  # the scaler calibrated: a few steps skipped
    # random labels: 16 steps at chance, too few for `plateau` to judge; no event
    assert monitor.verdict().kind == "inconclusive" and not monitor.verdict().diverged
    assert logger.history("amp/skipped_steps")[max(logger.history("amp/skipped_steps"))] == sum(skipped)
    for was_skipped, before, after in zip(skipped, watch.before, watch.after, strict=True):
        changed = any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
        assert changed != was_skipped  # a skipped step moves nothing: no decay, no soft-threshold


def test_a_scaler_that_keeps_skipping_is_a_nonfinite_event() -> None:
    monitor, logger, watch, skipped = fp16_fit([], steps=40, init_scale=2.0**16, inf_from=4)
    [event] = monitor.state.log.events
    assert (event.kind, event.source, event.since, event.step) == ("nonfinite", "amp_skips", 4, 19)
    assert monitor.verdict().diverged and all(skipped[4:20])
    assert max(logger.history("grad/nonfinite")) <= 23  # stopped at the flush after the event (every 4 steps)
