"""Checkpoints that are either complete or absent: write beside, flush to disk, rename over.

Lightning writes every checkpoint (ModelCheckpoint's saves, `last.ckpt`, the graceful stop's
`trainer.save_checkpoint`) through the strategy's `CheckpointIO`. `AtomicCheckpointIO` writes the
bytes to `.<name>.partial` in the same folder, fsyncs the file, renames it over `<name>` (atomic on
POSIX file systems) and fsyncs the folder. A process killed mid-write leaves at most that hidden
partial file, which nothing loads and the next save overwrites; the previous `<name>` stays whole.
A write that fails (a full disk: ENOSPC) removes the partial file and raises `CheckpointWriteError`
naming the file, so the run ends FAILED with that message (`src/lifecycle/exits.py`).

Loading goes through `read_checkpoint`, which turns a truncated or corrupt file into a
`CheckpointError` naming it and the newest readable checkpoint beside it.

`AtomicCheckpoints`, a callback the entry point adds to every run, installs it on the trainer's
strategy at `setup` (before Lightning restores or saves anything); a `CheckpointIO` plugin the
user configured (`trainer.plugins`, e.g. for object storage) is left in place.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.plugins import TorchCheckpointIO

PARTIAL_PREFIX, PARTIAL_SUFFIX = ".", ".partial"


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used (missing, truncated, corrupt, or for another model)."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (the errno of the cause is kept: ENOSPC for a full disk)."""


def partial_path(path: Path) -> Path:
    return path.with_name(f"{PARTIAL_PREFIX}{path.name}{PARTIAL_SUFFIX}")


def is_local(path: str | os.PathLike) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


def fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some file systems do not open folders; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def os_error_in(err: BaseException | None) -> OSError | None:
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save(obj, path)` such that `path` is never seen half-written."""
    import torch

    path = Path(str(path).removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        cause = os_error_in(err)  # torch's zip writer raises RuntimeError with the OSError as its context
        if cause is None:
            raise
        code = cause.errno or errno.EIO
        raise CheckpointWriteError(code, f"could not write checkpoint ({os.strerror(code)})", str(path)) from err
    fsync_folder(path.parent)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's `TorchCheckpointIO`, saving local files atomically (see the module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or not is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        if not is_local(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        return read_checkpoint(path, map_location=map_location)


class AtomicCheckpoints(pl.Callback):
    """Makes the trainer write its checkpoints with `AtomicCheckpointIO` (see the module docstring)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default, not a user's plugin
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()


def checkpoints_beside(path: Path) -> list[Path]:
    """The other complete checkpoints in the same folder, newest first (partial files excluded)."""
    folder = path.parent
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("*.ckpt") if p != path and not p.name.startswith(PARTIAL_PREFIX)]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def try_load(path: Path, map_location: Any = "cpu", mmap: bool = True) -> tuple[dict[str, Any] | None, str]:
    """(checkpoint, '') when the file loads as a Lightning checkpoint, else (None, why not).

    `mmap=True` maps the tensors instead of reading them: a check costs little memory or time.
    """
    import torch

    try:
        ckpt = torch.load(str(path), map_location=map_location or "cpu", weights_only=False, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - every unreadable file gets the same kind of message
        return None, f"{type(err).__name__}: {err}".splitlines()[0]
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        return None, "it holds no Lightning checkpoint (no 'state_dict')"
    return ckpt, ""


def last_good(path: Path) -> tuple[Path, int] | None:
    """The newest readable checkpoint beside `path` and its global step, or None."""
    for other in checkpoints_beside(path):
        ckpt, _ = try_load(other)
        if ckpt is not None:
            return other, int(ckpt.get("global_step", 0))
    return None


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint, or raise `CheckpointError` naming it, why, and the last good one beside it."""
    path = Path(str(path).removeprefix("file://")).absolute()
    if not path.is_file():
        reason = "it does not exist"
        ckpt = None
    else:
        ckpt, reason = try_load(path, map_location, mmap=mmap)
    if ckpt is not None:
        return ckpt
    good = last_good(path)
    other = (f"The last good checkpoint beside it is {good[0]} (step {good[1]}): resume from it with "
             f"ckpt_path={good[0]}" if good else "There is no other readable checkpoint in that folder.")
    raise CheckpointError(f"Checkpoint {path} cannot be used: {reason}. {other}")
