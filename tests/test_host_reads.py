"""No host read between flushes, in every monitor mode and precision: the monitor's batch hooks run under a CPU
emulation of CUDA's sync debug mode (`bench/host_reads.py`) on every step where no flush is due.

The emulation is proven on a pair first: a monitor that calls `.item()` between flushes is caught, naming the
hook and the step, and one that reads only at its flushes is not."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bench.host_reads import HostRead, no_host_reads
from bench.modes import MODES
from bench.steps import ModelRun
from bench.sync import check_host_reads, report_lines
from src.monitor import GradientHealthMonitor

MONITOR_MODES = {m: f for m, f in MODES.items() if m.startswith("monitor")}
RUN = ModelRun("lenet5", None, 2, 10, batch_size=8, log_every=5)  # tanh units, two flushes


class ReadsEveryStep(GradientHealthMonitor):
    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args)
        float(next(pl_module.parameters()).detach().sum())  # a host read on every step


class ReadsAtFlushes(GradientHealthMonitor):
    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args)
        if trainer.global_step % self.every_n_steps == 0:  # the step that just flushed
            next(pl_module.parameters()).sum().item()


def test_the_emulation_flags_reads_and_lets_launches_and_async_copies_through() -> None:
    x = torch.randn(4, 3)
    with no_host_reads():
        y = (x * 2).sum(0)  # kernels
        torch.empty(3).copy_(y, non_blocking=True)
        for read in (lambda: y.sum().item(), lambda: float(y[0]), lambda: bool(y.any()), lambda: y.cpu(),
                     lambda: y.tolist(), lambda: torch.nonzero(y), lambda: y[y > 0]):
            with pytest.raises(HostRead):
                read()
    assert y.tolist() and x.cpu() is x  # restored after the block


def test_the_check_catches_a_read_between_flushes_and_passes_one_at_flushes() -> None:
    def only(cls: type) -> dict[str, Any]:
        # no sharpness probe: its step is a flush (`flush_due`), and the pair is about the steps between flushes
        return {"probe": lambda every: [cls(every_n_steps=every, plots=False, forensics=False,
                                            sharpness_every_n_steps=0)]}

    [(_, _, _, caught)] = check_host_reads(RUN, only(ReadsEveryStep), ("32-true",), "cpu", emulate=True)
    assert caught is not None and "on_train_batch_end" in caught and "at step 0" in caught
    [(_, _, calls, none)] = check_host_reads(RUN, only(ReadsAtFlushes), ("32-true",), "cpu", emulate=True)
    assert none is None and calls > 0


@pytest.mark.parametrize("precision", [
    "32-true",
    pytest.param("bf16-mixed", marks=pytest.mark.slow),  # 9 fits each: ~10-25 s on 2 cores; fp32 stays fast
    pytest.param("16-mixed", marks=pytest.mark.slow),
])
def test_no_mode_reads_the_host_between_flushes(precision: str, capsys: pytest.CaptureFixture) -> None:
    results = check_host_reads(RUN, MONITOR_MODES, (precision,), "cpu", emulate=True)
    with capsys.disabled():
        print("\n" + "\n".join(report_lines(results, "the CPU emulation of sync debug mode")))
    assert [r for r in results if r[3] is not None] == []
    # every non-flush step was guarded: all but the two cadence flushes and step 0 (a sharpness probe's, a flush);
    # a probe on every step makes every step a flush, so that mode has nothing left to guard
    calls = {mode: n for mode, _, n, _ in results}
    assert calls.pop("monitor+sharpness@1") == 0
    assert all(n >= 3 * (RUN.total - 3) for n in calls.values()), calls
