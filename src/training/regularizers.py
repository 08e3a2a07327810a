"""The regularizers of the `reg` config group, each a small object with one shared protocol.

Protocol (every hook is optional; `Regularizer` gives no-op defaults), called by
`ClassificationModule`, which never needs to know a regularizer by name:

- `penalty(net)`: the term's value (`train/penalty`). It carries autograd's gradient only when the
  regularizer acts through the loss (subgradient L1, penalty-mode L2, Elastic Net); proximal L1
  and decoupled L2 act through the step instead and return their value detached, so
  `train/penalty` means the same number λΣ|θ| or λΣθ² in every mode.
- `penalty_gradient(net)`: (parameter, ∂penalty/∂parameter) pairs, in closed form on the device.
  The module backpropagates the *data* loss only and adds these to `p.grad` once per optimizer
  step (`ClassificationModule.on_before_optimizer_step`), so every gradient statistic can read
  the data gradient exactly and the penalty's part apart. The default differentiates `penalty`
  with autograd (a regularizer written for the loss alone still works).
- `before_step(net, optimizer, gate)`: runs after backward, just before the optimizer updates
  (decoupled L2: θ ← (1 − η·2λ)θ, the order AdamW uses).
- `after_step(net, optimizer, gate)`: runs after the optimizer update (proximal L1 soft-thresholding).
  `gate` is None, or a 0-d 0/1 tensor on the weights' device that is 0 on a step the AMP grad
  scaler skips: the step hooks then leave the weights alone, as the optimizer did (no host sync).
- `network_kwargs()`: keyword arguments for the model builder (dropout's `p` and placement).
- `penalized(net)`: the tensors the regularizer acts on (for `reg/weight_norm`, `reg/sparsity`).

Units: λ (`strength`) multiplies a sum over individual weights and is added to the batch-mean
cross-entropy; η is the optimizer's current learning rate of the parameter's group.

Which tensors are penalized: weights of convolution and linear layers by default. Their biases
only with `include_bias`, the affine scale and shift of normalization layers only with
`include_norm`. Nothing else (no other parameter type exists in the three models) is penalized.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from src import foreach
from src.models.common import DropoutPlacement
from src.settings.signature import checked
from src.settings.types import Fraction, NonNegativeFloat, UnitInterval
from src.training.penalized import abs_sum, grouped_by_lr, select_parameters, soft_threshold_, square_sum

L2_MODES = ("penalty", "decoupled")
L2Mode = Literal[L2_MODES]

Gradient = list[tuple[Tensor, Tensor]]  # (parameter, its penalty gradient) pairs


class Regularizer:
    """No-op defaults of the protocol; subclasses override what they need."""

    name = "regularizer"
    penalizes_weights = False  # True: acts on weights, contributes to `reg/weight_norm`
    sparsifies = False  # True: `reg/sparsity` is logged

    @property
    def steps_weights(self) -> bool:
        """True when `before_step`/`after_step` change the weights (they then need the AMP gate)."""
        return False

    def penalized(self, net: nn.Module) -> list[Tensor]:
        return []

    def penalty(self, net: nn.Module) -> Tensor | None:
        return None

    def penalty_gradient(self, net: nn.Module) -> Gradient:
        """∂penalty/∂θ by autograd (one backward of the penalty alone); subclasses give closed forms."""
        with torch.enable_grad():
            value = self.penalty(net)
        if value is None or not value.requires_grad:
            return []
        params = [p for p in net.parameters() if p.requires_grad]
        grads = torch.autograd.grad(value, params, allow_unused=True)
        return [(p, g) for p, g in zip(params, grads, strict=True) if g is not None]

    def before_step(self, net: nn.Module, optimizer: torch.optim.Optimizer, gate: Tensor | None = None) -> None:
        return None

    def after_step(self, net: nn.Module, optimizer: torch.optim.Optimizer, gate: Tensor | None = None) -> None:
        return None

    def network_kwargs(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class WeightRegularizer(Regularizer):
    """A regularizer on a selection of weights: conv/linear weights, plus biases and norm layers when asked."""

    penalizes_weights = True

    def __init__(self, include_bias: bool = False, include_norm: bool = False) -> None:
        self.include_bias = include_bias
        self.include_norm = include_norm

    def penalized(self, net: nn.Module) -> list[Tensor]:
        return select_parameters(net, self.include_bias, self.include_norm)


class L1(WeightRegularizer):
    """λ Σ|θ|.

    `proximal=False`: the penalty is added to the loss; its gradient is the subgradient λ·sign(θ)
    (0 at θ = 0). Weights hover around zero but are almost never exactly zero.
    `proximal=True`: after each optimizer step, θ ← sign(θ)·max(|θ| − ηλ, 0) with η the current
    learning rate of the parameter's group (proximal gradient / ISTA); gives exact zeros.
    With momentum β the two are not equally strong: the subgradient is accumulated by momentum
    (≈ ηλ/(1 − β) per step), the threshold is not (ηλ per step).
    """

    name = "l1"
    sparsifies = True

    @checked("reg.l1")
    def __init__(
        self, strength: NonNegativeFloat = 1e-4, proximal: bool = False, include_bias: bool = False,
        include_norm: bool = False,
    ) -> None:
        super().__init__(include_bias, include_norm)
        self.strength = float(strength)
        self.proximal = proximal

    def penalty(self, net: nn.Module) -> Tensor | None:
        params = self.penalized(net)
        if not params:
            return None
        if self.proximal:
            with torch.no_grad():
                return self.strength * abs_sum(params)
        return self.strength * abs_sum(params)

    @property
    def steps_weights(self) -> bool:
        return self.proximal and self.strength != 0

    @torch.no_grad()
    def penalty_gradient(self, net: nn.Module) -> Gradient:
        """λ·sign(θ) (0 at θ = 0, autograd's subgradient); none when proximal."""
        params = self.penalized(net)
        if self.proximal or not params:
            return []
        return list(zip(params, foreach.scaled(foreach.signs(params), self.strength), strict=True))

    @torch.no_grad()
    def after_step(self, net: nn.Module, optimizer: torch.optim.Optimizer, gate: Tensor | None = None) -> None:
        if not self.steps_weights:
            return
        for lr, params in grouped_by_lr(self.penalized(net), optimizer).items():
            soft_threshold_(params, lr * self.strength if gate is None else gate * (lr * self.strength))


class L2(WeightRegularizer):
    """λ Σθ².

    `mode="penalty"`: added to the loss, gradient 2λθ; with plain SGD the update is
    θ ← (1 − 2ηλ)θ − η∇L. With Adam the 2λθ term is divided by the adaptive denominator like
    any gradient.
    `mode="decoupled"`: weight decay outside the gradient, as AdamW (Loshchilov & Hutter 2019):
    after backward and before the optimizer's update, θ ← (1 − η·wd)θ with `wd = 2λ`, η the
    group's current learning rate. With plain SGD (no momentum) this is exactly the penalty-mode
    update; with momentum or Adam it is not (the decay bypasses momentum and adaptive scaling).
    The decay is applied here, not through the optimizer's `weight_decay` argument, because
    `torch.optim.SGD`/`Adam` treat that argument as a coupled L2 gradient: only this way is
    `decoupled` decoupled for every optimizer.
    """

    name = "l2"

    @checked("reg.l2")
    def __init__(
        self, strength: NonNegativeFloat = 1e-4, mode: L2Mode = "penalty", include_bias: bool = False,
        include_norm: bool = False,
    ) -> None:
        super().__init__(include_bias, include_norm)
        self.strength = float(strength)
        self.mode = mode

    @property
    def weight_decay(self) -> float:
        """The decoupled decay coefficient wd = 2λ (per unit of learning rate) matching λΣθ²."""
        return 2.0 * self.strength

    def penalty(self, net: nn.Module) -> Tensor | None:
        params = self.penalized(net)
        if not params:
            return None
        if self.mode == "decoupled":
            with torch.no_grad():
                return self.strength * square_sum(params)
        return self.strength * square_sum(params)

    @property
    def steps_weights(self) -> bool:
        return self.mode == "decoupled" and self.strength != 0

    @torch.no_grad()
    def penalty_gradient(self, net: nn.Module) -> Gradient:
        """2λθ; none in decoupled mode."""
        params = self.penalized(net)
        if self.mode == "decoupled" or not params:
            return []
        return list(zip(params, foreach.scaled(params, 2.0 * self.strength), strict=True))

    @torch.no_grad()
    def before_step(self, net: nn.Module, optimizer: torch.optim.Optimizer, gate: Tensor | None = None) -> None:
        if not self.steps_weights:
            return
        for lr, params in grouped_by_lr(self.penalized(net), optimizer).items():
            decay = lr * self.weight_decay
            foreach.scale_(params, 1.0 - decay if gate is None else 1.0 - gate * decay)


class ElasticNet(WeightRegularizer):
    """λ (r Σ|θ| + (1 − r) Σθ²).

    `proximal=False`: added to the loss, gradient λ(r·sign(θ) + 2(1 − r)θ); r = 1 is L1 (subgradient)
    and r = 0 is L2 (penalty mode) with the same λ. Weights hover around zero, almost never on it.
    `proximal=True`: after each optimizer step, with η the group's current learning rate,
    θ ← sign(θ)·max(|θ| − ηλr, 0) / (1 + 2ηλ(1 − r)): the proximal operator of ηλ(r|θ| + (1 − r)θ²)
    (ISTA's step), giving exact zeros; r = 1 is proximal L1. Its shrink factor lies in (0, 1] for any
    η, so unlike the gradient form's 1 − 2ηλ(1 − r) under SGD it never flips or grows the weights.
    The value is still returned (detached), so `train/penalty` means one number in both modes.
    """

    name = "elasticnet"
    sparsifies = True

    @checked("reg.elasticnet")
    def __init__(
        self, strength: NonNegativeFloat = 1e-4, l1_ratio: UnitInterval = 0.5, proximal: bool = False,
        include_bias: bool = False, include_norm: bool = False,
    ) -> None:
        super().__init__(include_bias, include_norm)
        self.strength = float(strength)
        self.l1_ratio = float(l1_ratio)
        self.proximal = proximal

    def penalty(self, net: nn.Module) -> Tensor | None:
        params = self.penalized(net)
        if not params:
            return None
        r = self.l1_ratio
        if self.proximal:
            with torch.no_grad():
                return self.strength * (r * abs_sum(params) + (1.0 - r) * square_sum(params))
        return self.strength * (r * abs_sum(params) + (1.0 - r) * square_sum(params))

    @torch.no_grad()
    def penalty_gradient(self, net: nn.Module) -> Gradient:
        """λ(r·sign(θ) + 2(1 − r)θ); none when proximal."""
        params = self.penalized(net)
        if self.proximal or not params:
            return []
        grads = foreach.scaled(foreach.signs(params), self.strength * self.l1_ratio)
        foreach.add_(grads, params, alpha=2.0 * self.strength * (1.0 - self.l1_ratio))
        return list(zip(params, grads, strict=True))

    @property
    def steps_weights(self) -> bool:
        return self.proximal and self.strength != 0

    @torch.no_grad()
    def after_step(self, net: nn.Module, optimizer: torch.optim.Optimizer, gate: Tensor | None = None) -> None:
        """The proximal step; `gate` 0 (an AMP-skipped step) leaves the weights as they are."""
        if not self.steps_weights:
            return
        r = self.l1_ratio
        for lr, params in grouped_by_lr(self.penalized(net), optimizer).items():
            threshold = lr * self.strength * r
            shrink = 2.0 * lr * self.strength * (1.0 - r)
            if gate is None:
                soft_threshold_(params, threshold)
                foreach.scale_(params, 1.0 / (1.0 + shrink))
            else:
                soft_threshold_(params, gate * threshold)
                foreach.scale_(params, 1.0 / (1.0 + gate * shrink))


class Dropout(Regularizer):
    """Inverted dropout with probability `p`, placed by each model builder's `dropout` and
    `dropout_placement` arguments.

    Structural: it changes the network, not the loss or the step. `nn.Dropout` (and the trunk's
    spatial `nn.Dropout2d`) scales kept units by 1/(1 − p) in training and is the identity in eval
    mode (no sampling at test time).
    `placement`: `head` (the classifier, after its hidden FC layers), `trunk` (inside the feature
    extractor) or `both`; each model's docstring says where exactly (`src/models/`). `head` hands the
    builder `dropout` alone, as before the knob existed, so a builder without `dropout_placement`
    still takes `reg=dropout`; the other two hand it `dropout_placement` too.
    """

    name = "dropout"

    @checked("reg.dropout")
    def __init__(self, p: Fraction = 0.5, placement: DropoutPlacement = "head") -> None:
        super().__init__()
        self.p = float(p)
        self.placement = placement

    def network_kwargs(self) -> dict[str, Any]:
        if self.placement == "head":
            return {"dropout": self.p}
        return {"dropout": self.p, "dropout_placement": self.placement}
