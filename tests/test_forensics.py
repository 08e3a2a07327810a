"""Forensics on nets built to go non-finite in a known place (real module, monitor and Trainer, CPU): the
report names the step, the phase, the module, the operation and the examples; a net that trains gets no
report, and `forensics=false` leaves nothing behind."""

from __future__ import annotations

import copy
import json
from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from src.monitor import GradientHealthMonitor
from src.training.module import ClassificationModule
from tests.forensics_nets import LogGate, SqrtSquare, batch_rows, first_step_with, tensor_loader
from tests.memory_sink import MemoryLogger

N, POISON = 256, 37  # examples; the source row made to fail


def fit(net: nn.Module, loader, lr: float = 0.1, epochs: int = 1, accumulate: int = 1,  # noqa: ANN001
        **monitor) -> tuple[GradientHealthMonitor, MemoryLogger]:
    torch.manual_seed(0)
    module = ClassificationModule(net, partial(torch.optim.SGD, lr=lr))
    mon = GradientHealthMonitor(every_n_steps=5, num_classes=10, plots=False, record=False, **monitor)
    logger = MemoryLogger()
    trainer = pl.Trainer(max_epochs=epochs, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[mon], log_every_n_steps=5,
                         accumulate_grad_batches=accumulate)
    trainer.fit(module, loader)
    return mon, logger


def data(poison_value: float | None, scale: float = 1.0, offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(N, 1, 4, 4, generator=gen) + offset) * scale
    y = torch.randint(0, 10, (N,), generator=gen)
    if poison_value is not None:
        x[POISON] = poison_value
    return x, y


def saved_report(logger: MemoryLogger) -> dict:
    report = json.loads(logger.texts["forensics/report.json"])
    batch = torch.load(logger.folder / "forensics" / "batch.pt", weights_only=False)
    assert batch["indices"].tolist() == report["indices"] and len(batch["inputs"]) == len(batch["targets"])
    assert logger.tags["health.forensics"].startswith("first non-finite at step")
    return report


def log_net() -> nn.Module:
    return nn.Sequential(LogGate(), nn.Flatten(), nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 10))


def test_log_of_a_negative_names_the_forward_module_the_step_and_the_example() -> None:
    x, y = data(-7.0)
    step = first_step_with(tensor_loader(x, y), POISON)
    assert step > 0
    mon, logger = fit(log_net(), tensor_loader(x, y))
    report = saved_report(logger)
    where = (report["step"], report["phase"], report["module"], report["module_type"])
    assert where == (step, "forward", "0", "LogGate")
    assert report["nonfinite_indices"] == [POISON] and report["skip_indices"] == [POISON]
    assert report["indices"] == batch_rows(tensor_loader(x, y), step)
    assert report["reproduced"] is True and report["event"]["kind"] == "nonfinite"
    assert report["lr"] == [0.1]
    names = [a["module"] for a in report["activations"]]
    assert names[:3] == ["0", "1", "2"] and names[-1] == "(net)"  # forward order, the network last
    assert report["activations"][0]["nonfinite"] == 16  # the example's 16 values


def test_a_net_that_trains_gets_no_report_and_carries_no_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    from src.monitor.forensics.snapshot import Snapshot

    taken, take = [], Snapshot.take
    monkeypatch.setattr(Snapshot, "take", lambda self, step, *a, **k: taken.append(step) or take(self, step, *a, **k))
    net = log_net()
    mon, logger = fit(net, tensor_loader(*data(None)))
    assert mon.state.log.events == [] and mon.forensics is not None and mon.forensics.report is None
    # the first batch, then one at each flush for the window after (16 steps, every 5; the sharpness probe's
    # step 0 is a flush too: `GradientHealthMonitor.flush_due`)
    assert taken == [0, 1, 5, 10, 15]
    assert not mon.forensics.snapshot.taken and len(mon.forensics.window) == 0, "released at the end of fit"
    assert "forensics/report.json" not in logger.texts and "health.forensics" not in logger.tags
    assert not any(m._forward_hooks for m in net.modules()), "probes only ever sit on the replay's copy"


def test_forensics_off_keeps_nothing_and_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from src.monitor.forensics import core

    monkeypatch.setattr(core.Forensics, "__init__", lambda *a, **k: pytest.fail("made a Forensics"))
    mon, logger = fit(log_net(), tensor_loader(*data(-7.0)), forensics=False)
    assert mon.forensics is None and mon.state.log.events[0].kind == "nonfinite"
    assert not any(k.startswith("forensics/") for k in logger.texts) and "health.forensics" not in logger.tags
    assert not (logger.folder / "forensics").exists()


def test_sqrt_at_zero_is_a_backward_failure_with_its_operation() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 32, bias=False), SqrtSquare(), nn.Linear(32, 10))
    x, y = data(0.0, offset=0.1)  # every input > 0 but the poisoned one: exactly 0
    step = first_step_with(tensor_loader(x, y), POISON)
    mon, logger = fit(net, tensor_loader(x, y))
    report = saved_report(logger)
    assert (report["step"], report["phase"], report["module"], report["module_type"]) == (step, "backward", "2",
                                                                                          "SqrtSquare")
    assert report["autograd_op"] == "MulBackward0"  # anomaly mode: the first NaN (inf · 0 in x·x's backward)
    assert report["first_nonfinite_op"] == "SqrtBackward0"  # the first Inf: 1 / (2·sqrt(0))
    assert report["nonfinite_indices"] == [POISON] and report["nonfinite_params"] == ["1.weight"]
    assert all(a["nonfinite"] == 0 for a in report["activations"]), "the forward was finite"


def oracle_first_bad_update(net: nn.Module, loader, lr: float) -> tuple[int, list[str]]:  # noqa: ANN001
    """Plain PyTorch, the same steps: the first step whose SGD update leaves non-finite weights, and which."""
    net = copy.deepcopy(net)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    for step, (x, y, _) in enumerate(loader):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        assert torch.isfinite(loss)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in net.parameters()), "a finite gradient"
        opt.step()
        bad = [n for n, p in net.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            return step, bad
    raise AssertionError("no update overflowed")


def test_an_update_that_overflows_at_lr_1e8_is_an_update_failure_at_its_step() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 32, bias=False), nn.ReLU(), nn.Linear(32, 10, bias=False))
    x, y = data(1e32, scale=1e-12)  # tiny inputs move nothing at lr 1e8; the poisoned one does
    step, bad = oracle_first_bad_update(net, tensor_loader(x, y), lr=1e8)
    assert step == first_step_with(tensor_loader(x, y), POISON)
    mon, logger = fit(net, tensor_loader(x, y), lr=1e8)
    report = saved_report(logger)
    assert (report["step"], report["phase"], report["module"], report["module_type"]) == (step, "update", "3", "Linear")
    assert report["nonfinite_params"] == bad == ["3.weight"]
    assert report["lr"] == [1e8] and report["reproduced"] is True
    assert report["skip_indices"] == sorted(batch_rows(tensor_loader(x, y), step))  # the whole batch's doing


def test_with_accumulation_the_step_and_the_micro_batch() -> None:
    x, y = data(-7.0)
    batch = first_step_with(tensor_loader(x, y), POISON)
    mon, logger = fit(log_net(), tensor_loader(x, y), accumulate=2)
    report = saved_report(logger)
    assert (report["step"], report["micro_batch"], report["phase"]) == (batch // 2, batch % 2, "forward")
    assert report["indices"] == batch_rows(tensor_loader(x, y), batch) and report["nonfinite_indices"] == [POISON]


class NaNAtCall(nn.Module):
    """NaN at its `at`-th training forward, counted in a plain attribute: no checkpoint or snapshot carries it,
    so a replay cannot reproduce it (what non-determinism looks like to forensics)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * float("nan") if self.calls == self.at else x


def test_a_replay_that_does_not_reproduce_says_so() -> None:
    net = nn.Sequential(nn.Flatten(), NaNAtCall(8), nn.Linear(16, 10))
    mon, logger = fit(net, tensor_loader(*data(None)), sharpness_every_n_steps=0)  # a probe's forward would count
    report = json.loads(logger.texts["forensics/report.json"])
    assert report["event"]["step"] == 7 and report["reproduced"] is False
    assert report["phase"] is None and report["skip_indices"] == []
    assert "does not reproduce the event" in report["note"]
    assert "NOT reproduced" in logger.tags["health.forensics"]
