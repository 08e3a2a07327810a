"""Replay the steps since the last finite snapshot on a copy of the network, with every check on.

The copy (`clone_net`) gets the snapshot's weights, a new optimizer of the same class gets its state,
and the global RNGs its states; then each recorded step runs as training ran it — forward,
`pl_module.data_loss`, backward (scaled by the micro-batch count), DDP's gradient average, the
penalty's gradient, clipping, the regularizers' step hooks, `optimizer.step()` at the step's
recorded learning rate — with `ModuleProbes` on every micro-batch, until the first phase that makes a
non-finite value: `forward` (a module's output), `loss`, `backward` (a gradient; then the micro-batch
runs again under `torch.autograd.detect_anomaly`, which names the autograd operation), `update`
(weights or optimizer state after the step). The live network, optimizer and RNG states are never
touched (the RNGs are restored). A one-off cost, paid only after a `nonfinite`/`divergence` event.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src import foreach
from src.monitor.forensics import ranks
from src.monitor.forensics.probes import ModuleProbes
from src.monitor.forensics.snapshot import Snapshot, finite_values, rng_states, set_rng_states, tensors_in
from src.monitor.forensics.window import StepBatches

HOOK_ATTRS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
              "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks")
OP_PATTERNS = (re.compile(r"Function '(\w+)' returned nan"), re.compile(r"Error detected in (\w+)"))


@dataclass
class Finding:
    """Where the replay first met a non-finite value (host values only)."""

    step: int
    phase: str  # forward | loss | backward | update
    micro_batch: int
    module: str | None = None  # relative to the network; "(net)" is the network itself
    module_type: str | None = None
    autograd_op: str | None = None  # backward: named by anomaly mode (first NaN); forward: the output's grad_fn
    nonfinite_params: list[str] = field(default_factory=list)  # backward: gradients, update: weights/state
    example_rows: list[int] = field(default_factory=list)  # positions in the batch of the examples at fault
    activations: list[dict[str, Any]] = field(default_factory=list)
    loss: float | None = None
    first_nonfinite_op: str | None = None  # backward: the first node whose output gradient is NaN or Inf


def clone_net(net: nn.Module) -> nn.Module:
    """A deep copy of `net` without its module hooks (other instruments' hooks stay on the live net)."""
    saved = [(m, {a: getattr(m, a) for a in HOOK_ATTRS if hasattr(m, a)}) for m in net.modules()]
    try:
        for module, hooks in saved:
            for attr in hooks:
                setattr(module, attr, OrderedDict())
        clone = copy.deepcopy(net)
    finally:
        for module, hooks in saved:
            for attr, value in hooks.items():
                setattr(module, attr, value)
    for p in clone.parameters():
        p.grad = None
    return clone


def clone_optimizer(live: torch.optim.Optimizer, net: nn.Module, clone: nn.Module) -> torch.optim.Optimizer:
    """An optimizer of `live`'s class over `clone`'s parameters, in the same groups."""
    names = {id(p): n for n, p in net.named_parameters()}
    params = dict(clone.named_parameters())
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [params[names[id(p)]] for p in g["params"]]}
              for g in live.param_groups]
    return type(live)(groups, **live.defaults)


def _float(value: Tensor) -> float:
    return float(value.detach().float().cpu())


class Replay:
    """Replays `window` from `snapshot` for `pl_module` trained by `trainer` with `optimizer`."""

    def __init__(self, trainer: Any, pl_module: Any, optimizer: torch.optim.Optimizer, snapshot: Snapshot,
                 window: StepBatches) -> None:
        self.trainer, self.pl_module, self.window, self.snapshot = trainer, pl_module, window, snapshot
        self.live_net: nn.Module = getattr(pl_module, "net", pl_module)
        self.net = clone_net(self.live_net)
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # the snapshot's asynchronous copies have landed
        self.net.load_state_dict(snapshot.weights)
        self.net.train()
        self.optimizer = clone_optimizer(optimizer, self.live_net, self.net)
        self.optimizer.load_state_dict(snapshot.optimizer)
        self.device = next(self.net.parameters()).device
        self.losses: dict[int, float] = {}
        self.norm_overflow: set[int] = set()  # steps whose finite gradient had a norm overflowing float32
        self.last_activations: list[dict[str, Any]] = []
        self.activations: dict[int, list[dict[str, Any]]] = {}  # per step: its last micro-batch's

    def data_loss(self, logits: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
        loss_fn = getattr(self.pl_module, "data_loss", None)
        return loss_fn(logits, y, reduction=reduction) if loss_fn else F.cross_entropy(logits, y, reduction=reduction)

    def run(self, last_step: int) -> Finding | None:
        """Replay up to and including `last_step`; the first finding (on any rank, all stop there), or None."""
        live_rng = rng_states()
        set_rng_states(self.snapshot.rng)
        try:
            with torch.enable_grad():
                for step in self.window.steps():
                    if step > last_step:
                        break
                    finding = self._step(step)
                    if ranks.any_rank(finding is not None, self.device):
                        return finding
        finally:
            set_rng_states(live_rng)
        return None

    def _step(self, step: int) -> Finding | None:
        batches, lrs = self.window.batches(step), self.window.lrs(step)
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=False):
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        finding = None
        for i, (x, y) in enumerate((b[0].to(self.device), b[1].to(self.device)) for b in batches):
            finding = self._micro_batch(step, i, x, y, len(batches))
            if finding is not None:
                break
        if ranks.any_rank(finding is not None, self.device):
            return finding
        return self._update(step)

    def _micro_batch(self, step: int, index: int, x: Tensor, y: Tensor, count: int) -> Finding | None:
        rng_before = rng_states()
        buffers_before = self._buffers()
        probes = ModuleProbes(self.net, len(x))
        try:
            with self.trainer.precision_plugin.forward_context():
                logits = self.net(x)
            bad = probes.first_nonfinite_output()
            self.last_activations = self.activations[step] = probes.activations()
            if bad is not None:
                rows = torch.nonzero(bad.rows).flatten().tolist() if bad.rows is not None else []
                return Finding(step, "forward", index, bad.name or "(net)", bad.kind, bad.grad_fn, [], rows,
                               self.last_activations)
            loss = self.data_loss(logits.float(), y)
            self.losses[step] = self.losses.get(step, 0.0) + _float(loss) / count
            if not math.isfinite(_float(loss)):
                per_example = self.data_loss(logits.float().detach(), y, reduction="none")
                rows = torch.nonzero(~torch.isfinite(per_example).flatten()).tolist()
                return Finding(step, "loss", index, None, None, None, [], rows, self.last_activations, _float(loss))
            (loss / count).backward()
            bad_grads = [n for n, p in self.net.named_parameters()
                         if p.grad is not None and not finite_values([p.grad])]
            culprit = probes.backward_culprit()
            if not bad_grads and culprit is None:
                grads = [p.grad for p in self.net.parameters() if p.grad is not None]
                if grads and not bool(torch.isfinite(foreach.norms(grads)).all()):
                    self.norm_overflow.add(step)  # finite values whose norm overflows: the monitor counts these
                return None
        finally:
            probes.close()
        buffers_after = self._buffers()
        op = self._anomaly_op(x, y, count, rng_before, buffers_before)
        first_op = self._graph_op(x, y, count, rng_before, buffers_before)  # anomaly mode sees NaN only, not Inf
        self._set_buffers(buffers_after)
        if culprit is None:  # only a parameter's gradient: its module
            return Finding(step, "backward", index, _owner(bad_grads[0]), None, op, bad_grads, [],
                           self.last_activations, _float(loss), first_op)
        rows = torch.nonzero(culprit.grad_in_rows).flatten().tolist() if culprit.grad_in_rows is not None else []
        return Finding(step, "backward", index, culprit.name or "(net)", culprit.kind, op, bad_grads, rows,
                       self.last_activations, _float(loss), first_op)

    def _buffers(self) -> dict[str, Tensor]:
        """Copies of the buffers (batch norm's running statistics), which every training forward updates."""
        return {name: b.detach().clone() for name, b in self.net.named_buffers()}

    def _set_buffers(self, saved: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for name, b in self.net.named_buffers():
                b.copy_(saved[name])

    def _anomaly_op(self, x: Tensor, y: Tensor, count: int, rng: dict, buffers: dict[str, Tensor]) -> str | None:
        """The micro-batch again, from the same RNG and buffer state, under anomaly mode: the op it names."""
        set_rng_states(rng)
        self._set_buffers(buffers)
        params = [p for p in self.net.parameters() if p.requires_grad]
        text = ""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with torch.autograd.detect_anomaly(check_nan=True):
                    with self.trainer.precision_plugin.forward_context():
                        logits = self.net(x)
                    loss = self.data_loss(logits.float(), y) / count
                    torch.autograd.grad(loss, params, allow_unused=True)
            except RuntimeError as err:
                text = str(err)
        text += "\n".join(str(w.message) for w in caught)
        for pattern in OP_PATTERNS:
            match = pattern.search(text)
            if match:
                return match.group(1)
        return None

    def _graph_op(self, x: Tensor, y: Tensor, count: int, rng: dict, buffers: dict[str, Tensor]) -> str | None:
        """The first autograd node, in backward's order, to turn finite incoming gradients into non-finite ones."""
        set_rng_states(rng)
        self._set_buffers(buffers)
        with self.trainer.precision_plugin.forward_context():
            logits = self.net(x)
        loss = self.data_loss(logits.float(), y) / count
        found: list[str] = []

        def watch(name: str):  # noqa: ANN202
            def hook(grad_inputs: tuple, grad_outputs: tuple) -> None:
                incoming = [g for g in grad_outputs if g is not None]
                produced = [g for g in grad_inputs if g is not None]
                if not found and finite_values(incoming) and not finite_values(produced):
                    found.append(name)
            return hook

        seen, todo, handles = set(), [loss.grad_fn], []
        while todo:  # every node of the graph (public `Node.register_hook`: grads in and out of its backward)
            node = todo.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            handles.append(node.register_hook(watch(node.name())))
            todo.extend(n for n, _ in node.next_functions)
        params = [p for p in self.net.parameters() if p.requires_grad]
        try:
            torch.autograd.grad(loss, params, allow_unused=True)
        finally:
            for handle in handles:
                handle.remove()
        return found[0] if found else None

    def _update(self, step: int) -> Finding | None:
        params = [p for p in self.net.parameters() if p.requires_grad]
        ranks.average_gradients([p.grad for p in params if p.grad is not None])
        with torch.no_grad():
            regs = list(getattr(self.pl_module, "regularizers", []) or [])
            if regs:
                from src.training.penalty_gradient import add_penalty_gradient

                add_penalty_gradient(self.net, regs)
                for reg in regs:
                    reg.before_step(self.net, self.optimizer, None)
            clip = self.trainer.gradient_clip_val
            if clip:
                grads = [p for p in params if p.grad is not None]
                if self.trainer.gradient_clip_algorithm == "value":
                    torch.nn.utils.clip_grad_value_(grads, clip)
                else:
                    torch.nn.utils.clip_grad_norm_(grads, clip)
        self.optimizer.step()
        with torch.no_grad():
            for reg in regs:
                reg.after_step(self.net, self.optimizer, None)
        state = self.optimizer.state
        bad = [n for n, p in self.net.named_parameters()
               if not finite_values([p.detach(), *tensors_in(state.get(p, {}))])]
        if not bad:
            return None
        order = [a["module"] for a in self.last_activations]
        owners = sorted({_owner(n) for n in bad}, key=lambda m: order.index(m) if m in order else len(order))
        kind = type(dict(self.net.named_modules()).get(owners[0], self.net)).__name__
        return Finding(step, "update", len(self.window.batches(step)) - 1, owners[0], kind, None, bad, [],
                       self.last_activations, self.losses.get(step))


def _owner(param_name: str) -> str:
    return param_name.rsplit(".", 1)[0] if "." in param_name else "(net)"
