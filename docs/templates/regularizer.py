"""TEMPLATE: a regularizer. Copy to `src/training/<name>.py` and `regularizer.yaml` to
`conf/reg/<name>.yaml`, rename `GroupLasso` / `group_lasso`, and change the math.
docs/extending.md ("A regularizer") is the contract: every hook and attribute is listed there.

Group lasso on the output units: λ Σ_units ‖w_unit‖₂, one group per output unit (a row of a linear
layer's weight, a filter of a conv layer's). Its gradient is λ·w_unit/‖w_unit‖₂, 0 for a unit already
at zero (the subgradient autograd gives), so it drives whole units to zero: it `sparsifies`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from src.settings.signature import checked
from src.settings.types import NonNegativeFloat
from src.training.regularizers import Gradient, WeightRegularizer


def unit_norms(weight: Tensor) -> Tensor:
    """‖w_unit‖₂ of each output unit: the rows of the weight flattened from dimension 1 on."""
    return weight.flatten(1).norm(dim=1) if weight.dim() > 1 else weight.abs()


class GroupLasso(WeightRegularizer):
    """λ Σ_units ‖w_unit‖₂ over the selected weights (conv/linear weights; biases, norm layers on request)."""

    name = "group_lasso"  # its short name: by convention its key in conf/reg/
    sparsifies = True  # `reg/sparsity` (the share of exact zeros) is logged
    # penalizes_weights = True comes from WeightRegularizer: `reg/weight_norm` is logged

    @checked("reg.group_lasso")
    def __init__(self, strength: NonNegativeFloat = 1e-4, include_bias: bool = False,
                 include_norm: bool = False) -> None:
        super().__init__(include_bias, include_norm)
        self.strength = float(strength)

    def penalty(self, net: nn.Module) -> Tensor | None:
        """The term's value (`train/penalty`), with autograd's graph: it acts through the loss."""
        params = self.penalized(net)
        if not params:
            return None
        return self.strength * torch.stack([unit_norms(p).sum() for p in params]).sum()

    @torch.no_grad()
    def penalty_gradient(self, net: nn.Module) -> Gradient:
        """∂penalty/∂θ in closed form, added to the data gradient once per optimizer step."""
        pairs = []
        for p in self.penalized(net):
            norms = unit_norms(p)
            scale = torch.where(norms > 0, self.strength / norms.clamp_min(torch.finfo(p.dtype).tiny), 0.0)
            pairs.append((p, p * scale.view(-1, *([1] * (p.dim() - 1)))))
        return pairs

    # Hooks this regularizer does not need keep the base class's no-op defaults:
    # steps_weights (False: it never changes weights itself), before_step, after_step (proximal or
    # decoupled updates go there, gated by `gate` on AMP-skipped steps), network_kwargs ({}: it does
    # not change the network; dropout's returns {"dropout": p}).
