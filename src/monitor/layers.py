"""Which modules are *layers*, and their order: the order the forward pass runs them.

A layer is a module that owns a weight of two or more dimensions (conv and linear layers,
embeddings) that is trained. Per-layer statistics are those of that weight and its gradient;
biases and normalization-layer affine parameters belong to no layer but count in the global
statistics and in the non-finite check, which cover every trainable parameter (what
`clip_grad_norm_` sees).

Order: the monitor records the order in which the first training forward pass *calls* the
layers (`ForwardOrder`, forward pre-hooks removed after that pass), so depth 0 is the layer
nearest the input even when a network registers its modules in another order. Layers the
forward pass never calls (unused, or only on other paths) follow, in registration order; they
have no gradient, which the statistics record as missing (NaN), never as a small one.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.utils.hooks import RemovableHandle


@dataclass(frozen=True)
class Layer:
    """One tracked layer: its depth in forward order and its module name inside the network."""

    depth: int
    name: str
    param_index: int  # position of the layer's weight among the tracked parameters
    width: int = 2  # digits of the zero-padded depth index

    @property
    def label(self) -> str:
        """`03.features.6`: the depth index keeps metric names sorted in forward order."""
        return f"{self.depth:0{self.width}d}.{self.name}"


def candidate_layers(net: nn.Module, param_names: list[str]) -> list[tuple[str, int]]:
    """(module name, index of its weight among `param_names`) in registration order."""
    index = {name: i for i, name in enumerate(param_names)}
    found = []
    for name, module in net.named_modules():
        weight = dict(module.named_parameters(recurse=False)).get("weight")
        key = f"{name}.weight" if name else "weight"
        if weight is not None and weight.dim() >= 2 and key in index:
            found.append((name or "net", index[key]))
    return found


def find_layers(net: nn.Module, param_names: list[str], called: list[str] | None = None) -> list[Layer]:
    """The layers of `net`; in the order of `called` (module names as the forward pass called them),
    then the rest in registration order. Without `called`, registration order."""
    found = candidate_layers(net, param_names)
    if called is not None:
        rank = {name: i for i, name in enumerate(dict.fromkeys(called))}
        found.sort(key=lambda item: rank.get(item[0], len(rank)))  # stable: the uncalled keep their order
    width = max(2, len(str(len(found) - 1)))
    return [Layer(depth, name, pi, width) for depth, (name, pi) in enumerate(found)]


class ForwardOrder:
    """Records the order in which one forward pass calls the candidate layers of `net`.

    `start()` attaches a forward pre-hook to each candidate layer; `stop()` removes them and returns the
    module names in first-call order. Costs one list append per layer call while attached.
    """

    def __init__(self, net: nn.Module, param_names: list[str]) -> None:
        self.net = net
        self.names = [name for name, _ in candidate_layers(net, param_names)]
        self.called: list[str] = []
        self._handles: list[RemovableHandle] = []

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def start(self) -> None:
        modules = dict(self.net.named_modules())
        for name in self.names:
            module = modules[name] if name != "net" else self.net
            self._handles.append(module.register_forward_pre_hook(self._hook(name)))

    def _hook(self, name: str):  # noqa: ANN202
        def record(module: nn.Module, args: object) -> None:
            self.called.append(name)

        return record

    def stop(self) -> list[str]:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return list(dict.fromkeys(self.called))
