"""A CPU emulation of CUDA's sync debug mode: inside `no_host_reads()`, any call that would make the host wait
for a GPU raises `HostRead`.

`torch.cuda.set_sync_debug_mode("error")` needs a GPU. On the CPU every tensor is already on the host, so
nothing synchronizes and a `.item()` slipped between two flushes goes unnoticed until a GPU is lent. This
emulation flags, on the calling thread only (the monitor's background writer may read its own host copies
meanwhile):

- the operators that read a tensor's value or a data-dependent shape back to the host on a GPU, as the
  dispatcher sees them (`item()`, `float(t)`, `bool(t)`, `nonzero`, `masked_select`, `unique`, `equal`,
  indexing with a boolean mask, ...);
- the tensor methods that copy to host memory and wait: `.cpu()`, `.tolist()`, `.numpy()`.

Not flagged (as CUDA does not flag them): launching kernels, non-blocking copies, reading a tensor's shape.
Not caught here but by the GPU check: `.to("cpu")` and `copy_` into host memory, which on the CPU cannot be
told from a move to the training device (the CPU itself).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
SYNCING = {  # operators whose result (a Python number or a data-dependent shape) needs the device's values
    aten._local_scalar_dense, aten.nonzero, aten.masked_select, aten._unique2, aten.unique_dim,
    aten.unique_consecutive, aten.is_nonzero, aten.equal, aten.repeat_interleave, aten.masked_scatter,
}
MASKED = {aten.index, aten.index_put, aten.index_put_}  # with a boolean mask: a `nonzero` inside the kernel
METHODS = ("cpu", "tolist", "numpy")


class HostRead(RuntimeError):
    """A call that would synchronize the host with a GPU, made where none is allowed."""


class _SyncingOps(TorchDispatchMode):
    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func.overloadpacket in SYNCING:
            raise HostRead(f"{func} reads a device value on the host")
        if func.overloadpacket in MASKED and any(
                isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in args[1] or ()):
            raise HostRead(f"{func} with a boolean mask reads the mask's count on the host")
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def no_host_reads() -> Iterator[None]:
    """Raise `HostRead` at any host read of a tensor made on this thread inside the block."""
    thread = threading.get_ident()
    saved = {name: getattr(torch.Tensor, name) for name in METHODS}

    def guarded(name: str) -> Any:
        original = saved[name]

        def method(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == thread:
                raise HostRead(f"Tensor.{name}() copies a device tensor to the host and waits")
            return original(self, *args, **kwargs)

        return method

    for name in METHODS:
        setattr(torch.Tensor, name, guarded(name))
    try:
        with _SyncingOps():
            yield
    finally:
        for name, original in saved.items():
            setattr(torch.Tensor, name, original)
