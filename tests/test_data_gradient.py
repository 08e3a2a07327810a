"""The monitor reads the data gradient, and logs the penalty's apart: against hand computations on a known
net, through the real module, monitor and Trainer (Lightning's hook order pinned), with accumulation and
clipping; L2 penalty and decoupled under plain SGD make the same updates and report the same health."""

from __future__ import annotations

from functools import partial

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from src.monitor import GradientHealthMonitor
from src.training.module import ClassificationModule
from src.training.penalized import select_parameters
from src.training.regularizers import L1, L2, ElasticNet
from tests.memory_sink import MemoryLogger

LAM = 0.05


def known_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 2), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(), nn.Linear(8, 3))


def batches(n: int = 1, size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(size, 1, 3, 3, generator=gen), torch.randint(0, 3, (size,), generator=gen)) for _ in range(n)]


def fit(net: nn.Module, regs: list, steps: int = 1, data: list | None = None, module_cls=ClassificationModule,  # noqa: ANN001
        optimizer=None, callbacks=(), record: bool = False, **trainer: object,  # noqa: ANN001
        ) -> tuple[MemoryLogger, ClassificationModule]:
    data = data or batches(steps)
    x, y = (torch.cat(t) for t in zip(*data, strict=True))
    module = module_cls(net=net, optimizer=optimizer or partial(torch.optim.SGD, lr=0.1), num_classes=3,
                        regularizers=regs)
    logger = MemoryLogger()
    pl.Trainer(
        accelerator="cpu", max_steps=steps, max_epochs=-1, logger=logger, log_every_n_steps=1, limit_val_batches=0,
        callbacks=[*callbacks, GradientHealthMonitor(every_n_steps=1, plots=False, record=record)],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **trainer,
    ).fit(module, DataLoader(TensorDataset(x, y), batch_size=len(data[0][1])))
    return logger, module


def data_gradient(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The bare cross-entropy's gradient, by hand (autograd on the loss alone)."""
    params = dict(net.named_parameters())
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), list(params.values()))
    return dict(zip(params, grads, strict=True))


REGS = {
    "l1": lambda **k: L1(LAM, **k),
    "l2-penalty": lambda **k: L2(LAM, **k),
    "l2-decoupled": lambda **k: L2(LAM, mode="decoupled", **k),
    "elasticnet": lambda **k: ElasticNet(LAM, 0.3, **k),
}
PENALTY_GRAD = {  # the closed forms, written out here again
    "l1": lambda w: LAM * torch.sign(w),
    "l2-penalty": lambda w: 2 * LAM * w,
    "l2-decoupled": None,  # acts through the step: no gradient term
    "elasticnet": lambda w: LAM * (0.3 * torch.sign(w) + 2 * 0.7 * w),
}


@pytest.mark.parametrize("include", [{}, {"include_bias": True}, {"include_norm": True}],
                         ids=["weights", "bias", "norm"])
@pytest.mark.parametrize("kind", list(REGS))
def test_logged_gradient_is_the_bare_cross_entropys_and_the_penalty_part_its_closed_form(kind: str, include) -> None:  # noqa: ANN001
    [(x, y)] = batches(1)
    reference = known_net()
    data = data_gradient(reference, x, y)
    reg = REGS[kind](**include)
    logger, _ = fit(known_net(), [reg], data=[(x, y)])
    labels = {"0": "00.0", "4": "01.4"}  # conv and linear, in forward order
    for module, label in labels.items():
        want = float(data[f"{module}.weight"].norm())
        assert logger.history(f"grad_norm/{label}")[0] == pytest.approx(want, rel=1e-6)
        weight = reference.get_parameter(f"{module}.weight").detach()
        rel = float(data[f"{module}.weight"].norm() / weight.norm())
        assert logger.history(f"grad_rel/{label}")[0] == pytest.approx(rel, rel=1e-6)
        rms = float(data[f"{module}.weight"].norm()) / weight.numel() ** 0.5
        assert logger.history(f"grad_rms/{label}")[0] == pytest.approx(rms, rel=1e-6)
    everything = torch.sqrt(sum((g.double() ** 2).sum() for g in data.values()))
    assert logger.history("grad/global_norm")[0] == pytest.approx(float(everything), rel=1e-6)
    if PENALTY_GRAD[kind] is None:
        assert not any(k.startswith("grad_penalty/") for k in logger.keys())
        return
    penalized = {id(p) for p in select_parameters(reference, **include)}
    parts = {n: PENALTY_GRAD[kind](p.detach()) for n, p in reference.named_parameters() if id(p) in penalized}
    for module, label in labels.items():
        want = float(parts[f"{module}.weight"].norm())
        assert logger.history(f"grad_penalty/{label}")[0] == pytest.approx(want, rel=1e-6)
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in parts.values()))
    assert logger.history("grad_penalty/global_norm")[0] == pytest.approx(float(total), rel=1e-6)


class OrderProbe(pl.Callback):
    """Checks, at the callbacks' `on_before_optimizer_step`, that `p.grad` is the data gradient alone."""

    def __init__(self, expected: dict[str, torch.Tensor], events: list[str]) -> None:
        self.expected, self.events = expected, events

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # noqa: ANN001
        self.events.append("callback")
        for name, p in pl_module.net.named_parameters():
            torch.testing.assert_close(p.grad, self.expected[name])


def make_recording_module(events: list[str], expected_total: dict[str, torch.Tensor]) -> type:
    class Recording(ClassificationModule):
        def on_before_optimizer_step(self, optimizer) -> None:  # noqa: ANN001
            events.append("module")
            super().on_before_optimizer_step(optimizer)

        def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:  # noqa: ANN001
            events.append("clipping")
            for name, p in self.net.named_parameters():  # the penalty's gradient has joined by now
                torch.testing.assert_close(p.grad, expected_total[name])
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

        def optimizer_step(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            super().optimizer_step(*args, **kwargs)
            events.append("stepped")

    return Recording


def test_lightning_calls_the_callbacks_hook_then_the_modules_then_clipping_then_the_step() -> None:
    """The order the design rests on (Lightning 2.6 `Precision._after_closure`): pinned."""
    [(x, y)] = batches(1)
    reference = known_net()
    data = data_gradient(reference, x, y)
    total = {n: g + (2 * LAM * reference.get_parameter(n).detach() if n.endswith("weight") and n != "1.weight"
                     else 0) for n, g in data.items()}
    events: list[str] = []
    fit(known_net(), [L2(LAM)], data=[(x, y)], module_cls=make_recording_module(events, total),
        callbacks=[OrderProbe(data, events)])
    assert events == ["callback", "module", "clipping", "stepped"]


def test_with_accumulation_the_penalty_counts_once_and_the_loss_is_the_windows_mean() -> None:
    micro = batches(2, size=8)
    reference = known_net()
    theta0 = {n: p.detach().clone() for n, p in reference.named_parameters()}
    grads = [data_gradient(reference, x, y) for x, y in micro]
    mean_grad = {n: (grads[0][n] + grads[1][n]) / 2 for n in grads[0]}
    losses = [float(F.cross_entropy(reference(x), y).detach()) for x, y in micro]
    net = known_net()
    logger, _ = fit(net, [L2(LAM)], steps=1, data=micro, accumulate_grad_batches=2, record=True)
    for name, p in net.named_parameters():  # one SGD step on the mean data gradient + 2λθ once
        penalty = 2 * LAM * theta0[name] if name in ("0.weight", "4.weight") else 0
        torch.testing.assert_close(p.detach(), theta0[name] - 0.1 * (mean_grad[name] + penalty))
    everything = torch.sqrt(sum((g.double() ** 2).sum() for g in mean_grad.values()))
    assert logger.history("grad/global_norm") == {0: pytest.approx(float(everything), rel=1e-5)}
    [record] = [v for k, v, s in logger.rows if k == "grad/global_rel"]  # one optimizer step, one row
    assert record > 0
    assert sum(1 for k, _, _ in logger.lightning if k == "train/loss") >= 1
    assert logger_monitored_loss(logger) == pytest.approx(sum(losses) / 2, rel=1e-6)


def logger_monitored_loss(logger: MemoryLogger) -> float:
    """The loss the monitor judged at step 0, from its record (written through the sink)."""
    from src.monitor.record import read_record

    return float(read_record(logger.folder / "health" / "parts")["loss"][0])


def test_logged_global_norm_is_the_one_before_clipping() -> None:
    [(x, y)] = batches(1)
    reference = known_net()
    data = data_gradient(reference, x, y)
    before = float(torch.sqrt(sum((g.double() ** 2).sum() for g in data.values())))
    clip = before / 10
    net = known_net()
    logger, _ = fit(net, [], data=[(x, y)], gradient_clip_val=clip)
    assert logger.history("grad/global_norm")[0] == pytest.approx(before, rel=1e-6)
    step = torch.sqrt(sum(((p.detach() - q.detach()).double() ** 2).sum()
                          for p, q in zip(net.parameters(), reference.parameters(), strict=True)))
    assert float(step) == pytest.approx(0.1 * clip, rel=1e-4)  # the update used the clipped gradient


def test_l2_penalty_and_decoupled_under_plain_sgd_report_the_same_gradient_health() -> None:
    data = batches(12, size=16)
    histories, weights = [], []
    for mode in ("penalty", "decoupled"):
        net = known_net()
        logger, _ = fit(net, [L2(LAM, mode=mode)], steps=12, data=data, optimizer=partial(torch.optim.SGD, lr=0.2))
        histories.append(logger.history("grad/global_norm"))
        weights.append([p.detach().clone() for p in net.parameters()])
    assert sorted(histories[0]) == list(range(12))
    assert [histories[1][s] for s in range(12)] == pytest.approx([histories[0][s] for s in range(12)], rel=1e-5)
    for a, b in zip(*weights, strict=True):  # the same updates
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
