"""The benchmark and the GPU check run end to end (their quick settings) and write what they promise.
Their figures are measurements, never asserted here: only the shape of what they write."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.modes import BARE, COMPARISONS, LIGHTNING, MODES, check_names, monitor
from src.paths import PROJECT_ROOT

MODELS = ("lenet5", "vgg19", "resnet152")


def run_script(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("GRADREG_RUN_ID", None)
    return subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow  # the quick benchmark of every model and mode: minutes
def test_bench_quick_writes_every_model_and_mode(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run_script("scripts/bench_monitor.py", "--quick", "--threads", "1", "--json", str(out))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    data = json.loads(out.read_text())
    assert set(data) == {*MODELS, "default_run", "context"}
    for model in MODELS:
        assert list(data[model]) == list(MODES), model  # bare, module, monitor, monitor+<instrument>...
        assert all(isinstance(ms, float) and ms > 0 for ms in data[model].values()), data[model]
    default = data["default_run"]
    assert {"run", "bare", "wall_ratio", "cpu_ratio", "imports"} <= set(default)
    assert {"wall_s", "cpu_s", "first_step_cpu_s", "peak_rss_mib", "test_acc"} <= set(default["run"])
    assert default["run"]["first_step_cpu_s"] < default["run"]["cpu_s"]  # the CPU before training is part of it
    assert 0 <= default["run"]["gc_cpu_s"] < default["run"]["cpu_s"]  # the collections' CPU is part of it
    assert {"wall_s", "cpu_s"} <= set(default["bare"]) and "test_acc" not in default["bare"]
    assert default["libraries"]["first_step_cpu_s"] < default["libraries"]["cpu_s"]  # imports, then the exit
    assert default["lightning"]["first_step_cpu_s"] < default["lightning"]["cpu_s"]  # its loop ran after set-up
    assert default["wall_ratio"] == pytest.approx(default["run"]["wall_s"] / default["bare"]["wall_s"], rel=0.01)
    assert default["imports"]["run"]["total_s"] > 0 and "torch" in default["imports"]["run"]
    assert {"load_1min_start", "threads", "repeats"} <= set(data["context"])
    for model in MODELS:
        assert f"| {model} (batch 32" in proc.stdout  # one row per model in the printed table
    assert "default run `python -m src.train" in proc.stdout and "| bare PyTorch, same steps |" in proc.stdout
    assert "| the libraries' imports alone (floor) |" in proc.stdout
    assert "| Lightning alone, same steps (floor) |" in proc.stdout


def test_modes_are_named_for_their_json_keys() -> None:
    check_names({BARE: None, LIGHTNING: None, "module": None, "monitor": None, "monitor+signal": monitor(),
                 **COMPARISONS})
    with pytest.raises(ValueError, match="monitor\\+<instrument>"):
        check_names({"signal": monitor()})
    [callback] = monitor(rel_update_every_n_steps=0)(7)
    assert (callback.every_n_steps, callback.rel_update_every_n_steps, callback.plots) == (7, 0, False)


def test_the_lightning_floor_trains_the_bare_step_through_lightning_alone() -> None:
    """The `lightning` mode is the floor of every Lightning mode: the same steps as `bare` (each one an update of
    the weights), through a Trainer with nothing of the project's attached (no logger, no callback but the clock)."""
    from bench.steps import ModelRun, build_net, fit_plain, random_examples

    run = ModelRun("lenet5", None, warmup=2, steps=3)
    net = build_net(run)
    before = [p.detach().clone() for p in net.parameters()]
    ms, trainer = fit_plain(net, random_examples(run), run, "cpu")
    assert ms > 0 and trainer.global_step == run.total and trainer.logger is None
    assert [type(c).__name__ for c in trainer.callbacks] == ["StepClock"]
    trained = list(trainer.lightning_module.net.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, trained, strict=True))  # every tensor was updated
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))  # on a copy of the net


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_gpu_check_without_cuda_says_so_and_measures_nothing() -> None:
    proc = run_script("scripts/gpu_check.py", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no CUDA device" in proc.stdout and "measured nothing" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # every monitor mode in three precisions under the sync emulation, then the step table: minutes
def test_gpu_check_dry_run_on_cpu_runs_all_but_the_cuda_parts() -> None:
    proc = run_script("scripts/gpu_check.py", "--cpu", "--models", "vgg19")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    out = proc.stdout
    assert out.count("skipped: needs CUDA") == 1  # the 16-mixed skipped-step count; the sync check is emulated
    assert "(CPU emulation)" in out and out.count("0 host reads between flushes") == 3 * len(
        [m for m in MODES if m.startswith("monitor")])
    assert "16-mixed" in out and "bf16-mixed" in out and out.count("| vgg19 (batch 8") == 3
    assert "all checks passed" in out


def test_the_writer_cost_benchmark_drops_every_write_and_only_in_its_block() -> None:
    """`bench.writer_cost` compares a fit with the background writers' work against the same fit without it: in
    `writes_dropped()` the monitor's and the logger's rows reach the store no more, and after it they do again."""
    from bench.modes import MODES
    from bench.steps import ModelRun, ThrowawayStore, build_net, fit, random_examples
    from bench.writer_cost import writes_dropped

    run = ModelRun("lenet5", None, warmup=2, steps=18)
    net, data, store = build_net(run), random_examples(run), ThrowawayStore()

    def logged_keys(dropped: bool) -> set[str]:
        with writes_dropped() if dropped else contextlib.nullcontext():
            _, trainer = fit(net, data, run, MODES["monitor"](run.log_every), store, "cpu")
        return set(store.client.get_run(trainer.logger.run_id).data.metrics)

    step_rows = {"train/loss", "grad/global_norm", "grad_norm/00.features.0"}  # the logger's and the flushes' rows
    assert logged_keys(dropped=True) & step_rows == set()  # (the run-end summary is the training thread's own)
    assert logged_keys(dropped=False) >= step_rows


def test_the_module_cost_benchmark_clocks_every_self_log_call_and_the_hook_of_every_batch() -> None:
    """`bench.module_cost` times Lightning's `self.log` and the module's step-metrics hook inside a real fit:
    each call Lightning turned into a logged value is clocked once (Lightning adds `epoch` to what it sends and
    takes the logged `step` as the row's step), the hook once per batch, and both methods are back after it."""
    import pytorch_lightning as pl

    from bench.module_cost import module_fit
    from bench.steps import ModelRun, build_net, random_examples
    from src.training.module import ClassificationModule
    from tests.memory_sink import MemoryLogger

    log, hook = pl.LightningModule.log, ClassificationModule.on_train_batch_end
    run, logger = ModelRun("lenet5", None, warmup=2, steps=18), MemoryLogger()
    _, durations = module_fit(build_net(run), random_examples(run), run, logger)
    sent = [key for key, _, _ in logger.lightning if key != "epoch"]
    logged_steps = {step for key, _, step in logger.lightning if key == "train/loss"}
    assert len(logged_steps) == run.total // run.log_every
    assert len(durations["self.log"]) == len(sent) + len(logged_steps)
    assert len(durations["step-metrics hook"]) == run.total
    assert all(seconds > 0 for seconds in durations["self.log"])
    assert pl.LightningModule.log is log and ClassificationModule.on_train_batch_end is hook


def test_the_writer_process_start_is_timed_up_to_a_row_in_the_store() -> None:
    """`process_start_cpu` times a fresh interpreter up to its first write: the row is in the run afterwards."""
    from bench.steps import ThrowawayStore
    from bench.writer_cost import process_start_cpu

    store = ThrowawayStore()
    seconds = process_start_cpu(store, repeats=1)
    assert len(seconds) == 1 and seconds[0] > 0
    runs = store.client.search_runs([store.experiment_id])
    assert [run.data.metrics for run in runs] == [{"bench/process_start": 1.0}]
