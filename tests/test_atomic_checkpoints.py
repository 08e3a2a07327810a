"""Checkpoints are whole or absent: a process killed while writing leaves the previous file loadable,
and a truncated file is refused with a message that names it and the last good one beside it."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from src.lifecycle.checkpoint_io import AtomicCheckpointIO, CheckpointError, partial_path, read_checkpoint

WRITER = """
import sys, torch
from src.lifecycle.checkpoint_io import atomic_torch_save
n = 0
while True:
    n += 1
    atomic_torch_save({"state_dict": {"w": torch.full((6_000_000,), float(n))}, "global_step": n}, sys.argv[1])
    print("saved", n, flush=True)
"""
CEILING_S = 120  # for one 24 MB save on a loaded runner; it takes well under a second on an idle one


def wait_for_line(proc: subprocess.Popen, wanted: str) -> None:
    """Block until the process prints `wanted` (an event, not a sleep), failing after CEILING_S."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + CEILING_S
    while (line := lines.get(timeout=max(0.0, deadline - time.monotonic()))) != wanted:
        assert line.startswith("saved"), line


def test_a_writer_killed_mid_save_leaves_the_last_checkpoint_whole(tmp_path: Path) -> None:
    """Killed right after a save completed, the writer is inside the next 24 MB save: the file on disk
    is still a whole checkpoint, from the save it reported or a later one, never a mix or a truncation."""
    target = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(3)}, "global_step": 0}, target)
    for saves in (1, 2):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=Path(__file__).parents[1],
                                stdout=subprocess.PIPE, text=True)
        try:
            wait_for_line(proc, f"saved {saves}")
        finally:
            proc.kill()
            proc.wait()
        ckpt = torch.load(target, weights_only=False)  # never a truncated file
        assert ckpt["global_step"] >= saves, "the completed save is on disk"
        assert float(ckpt["state_dict"]["w"][0]) == ckpt["global_step"], "tensors and step come from one save"
    assert not [p for p in tmp_path.glob("*.ckpt") if p != target], "no other file under a checkpoint name"


def test_plugin_saves_through_a_partial_file_and_loads_back(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "ckpts" / "epoch000.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 7}, path)
    assert not partial_path(path).exists()
    assert io.load_checkpoint(path)["global_step"] == 7


def test_a_truncated_checkpoint_names_itself_and_the_last_good_one(tmp_path: Path) -> None:
    good, last = tmp_path / "epoch002.ckpt", tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}, "global_step": 30}, good)
    torch.save({"state_dict": {"w": torch.ones(1000)}, "global_step": 40}, last)
    last.write_bytes(last.read_bytes()[:1500])  # as a crash of a non-atomic writer (or a bad copy) leaves it
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(last)
    message = str(err.value)
    assert f"Checkpoint {last} cannot be used" in message
    assert f"The last good checkpoint beside it is {good} (step 30)" in message
    assert f"ckpt_path={good}" in message


def test_a_missing_checkpoint_with_nothing_beside_it(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="it does not exist. There is no other readable checkpoint"):
        read_checkpoint(tmp_path / "last.ckpt")


def test_every_run_saves_through_the_atomic_plugin(compose, tmp_path: Path) -> None:
    import pytorch_lightning as pl

    from src.lifecycle.checkpoint_io import AtomicCheckpoints
    from src.training.builders import build_datamodule, build_module

    cfg = compose("model=mlp", "data=synthetic", "data.num_samples=64")
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", default_root_dir=tmp_path, enable_progress_bar=False,
                         logger=False, callbacks=[AtomicCheckpoints()])
    trainer.fit(build_module(cfg), datamodule=build_datamodule(cfg))
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    saved = list(tmp_path.rglob("*.ckpt"))
    assert saved and all(read_checkpoint(p)["global_step"] >= 1 for p in saved)
