"""Sharpness: λ_max of the training loss on a fixed probe batch, against the optimizer's stability line.

Under (full-batch) gradient descent with step η a quadratic direction of curvature λ is stable only
while λ < 2/η; Cohen et al. 2021 ("edge of stability") show training rises to that line and
hovers there, and that exploding under SGD is sharpness passing it. L2 and the learning rate move
exactly that line. So every `every_n_steps` steps, after the update, this instrument measures the
top Hessian eigenvalue of the loss by power iteration on Hessian-vector products (`hessian.py`).

The probe, and how it stays fixed:
- the batch: the first training batch of the run (its first `batch_size` examples), kept on the device;
- train mode, as training sees the net, with one forward pass per probe: every Hessian-vector product
  goes through that one graph, so dropout's masks and batch norm's batch statistics are the same for
  all of them; the forward runs inside `torch.random.fork_rng` seeded with `seed`, so every probe
  draws the *same* dropout masks (probes compare over time) and the training's random stream is
  untouched; batch norm's running statistics (every buffer of the net) are copied before the probe
  and put back after it, so the probe leaves no trace in the model;
- the loss: the data cross-entropy plus the module's penalty where it acts through the loss (L1's
  subgradient, penalty-mode L2: 2λ on the diagonal). Decoupled L2 and proximal L1 act through the step,
  not the loss; under SGD decoupled L2 moves the line to 2/η − 2λ instead.
- the start vector comes from a generator seeded with `seed`; Lanczos (`hessian.largest_eigenvalue`) runs
  until the relative residual ‖Hy − λy‖/|λ| of its top Ritz pair is at most `tolerance`, or `iterations`
  products were spent; one host read per product, on probe steps only.

Keys (at step s: the weights after update s): always `sharpness/estimate` (the top Ritz value, any sign),
`sharpness/residual`, `sharpness/converged` (1 or 0), `sharpness/products` and `sharpness/two_over_lr` =
2/η (η = the first parameter group's learning rate at that step); only when the probe converged on a
positive value, `sharpness/lambda_max` (1/units of θ², loss units) and `sharpness/stability` = λ_max·η/2
(> 1: past the line) — an unconverged or negative top value is logged as the estimate it is, never as
λ_max, and the `unstable` detector (which reads `stability`) never sees it.
Adam (an optimizer whose state has `exp_avg_sq`): the fair comparison is the *preconditioned*
sharpness λ_max(P⁻¹H), P = (1 − β1^t)·(√(v_t/(1 − β2^t)) + ε) Adam's own preconditioner, against
(2 + 2β1)/((1 − β1)η) (38/η at β1 = 0.9; Cohen et al. 2022, "Adaptive gradient methods at the edge of
stability"): logged as `sharpness/preconditioned` (converged and positive only; `sharpness/preconditioned_estimate`,
`…_residual`, `…_converged` always) and `sharpness/threshold`, and then `sharpness/stability` is
preconditioned / threshold. For SGD with momentum β the line is (2 + 2β)/η;
`stability` keeps the plain λ_max·η/2 (the issue's definition), `threshold` says 2/η.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from src.monitor.instruments.base import Instrument
from src.monitor.instruments.hessian import TopEigenvalue, largest_eigenvalue
from src.monitor.monitored import Monitored


class SharpnessInstrument(Instrument):
    name = "sharpness"
    reads_host = True  # Lanczos reads α, β after each product to stop at its tolerance: its steps are flushes

    def __init__(self, every_n_steps: int, iterations: int = 60, batch_size: int = 32, seed: int = 0,
                 tolerance: float = 0.01) -> None:
        super().__init__(every_n_steps)
        self.iterations, self.batch_size, self.seed, self.tolerance = iterations, batch_size, seed, tolerance
        self.probe: tuple[Tensor, Tensor] | None = None

    def before_forward(self, step: int, trainer: Any, pl_module: Any, batch: Any) -> None:
        if self.probe is None and self.every_n_steps > 0:
            x, y = batch[0], batch[1]
            self.probe = (x[: self.batch_size].detach().clone(), y[: self.batch_size].detach().clone())

    def after_update(self, step: int, trainer: Any, pl_module: Any) -> None:
        if not self.due(step) or self.probe is None or not trainer.optimizers:
            return
        optimizer = trainer.optimizers[0]
        lr = float(optimizer.param_groups[0]["lr"])
        keys, values = self.measure(pl_module, optimizer, lr)
        self.store(step, keys, values)

    def measure(self, pl_module: Any, optimizer: Any, lr: float) -> tuple[list[str], list[Tensor]]:
        """One probe: the keys and values (see the module's docstring)."""
        x, y = self.probe
        params = [p for p in pl_module.parameters() if p.requires_grad]
        device = params[0].device
        buffers = [(b, b.detach().clone()) for b in pl_module.buffers()]
        was_training = pl_module.training
        generator = torch.Generator(device=device).manual_seed(self.seed)  # the start vector, drawn on the device
        devices = [device] if device.type == "cuda" else []
        values: dict[str, float] = {"sharpness/two_over_lr": 2.0 / lr if lr > 0 else float("nan")}
        try:
            with torch.random.fork_rng(devices=devices), torch.enable_grad():
                torch.manual_seed(self.seed)
                pl_module.train()
                loss = F.cross_entropy(pl_module(x.to(device)), y.to(device))
                penalty = pl_module.penalty() if isinstance(pl_module, Monitored) else None  # a bare net: none
                if isinstance(penalty, Tensor) and penalty.requires_grad:
                    loss = loss + penalty
                grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
                top = largest_eigenvalue(loss, params, self.iterations, generator, grads=grads,
                                         tolerance=self.tolerance)
                values |= probe_values("", top)
                pre = adam_preconditioner(optimizer, params)
                if pre is not None:
                    diag, beta1 = pre
                    ptop = largest_eigenvalue(loss, params, self.iterations, generator, diag, grads=grads,
                                              tolerance=self.tolerance)
                    values |= probe_values("preconditioned_", ptop)
                    threshold = (2 + 2 * beta1) / ((1 - beta1) * lr) if lr > 0 else float("nan")
                    values["sharpness/threshold"] = threshold
                    if "sharpness/preconditioned" in values:
                        values["sharpness/stability"] = values["sharpness/preconditioned"] / threshold
                else:
                    values["sharpness/threshold"] = values["sharpness/two_over_lr"]
                    if "sharpness/lambda_max" in values:
                        values["sharpness/stability"] = values["sharpness/lambda_max"] * lr / 2
                del grads, loss
        finally:
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)  # batch norm's running statistics as they were
            pl_module.train(was_training)
        keys = sorted(values)
        return keys, [torch.tensor(values[k], dtype=torch.float32) for k in keys]


def probe_values(prefix: str, top: TopEigenvalue) -> dict[str, float]:
    """The keys of one Lanczos probe. The value is `sharpness/lambda_max` (`preconditioned` for Adam's) only when
    it converged and is positive; always `sharpness/<prefix>estimate`, `…residual`, `…converged` (1/0)."""
    out = {f"sharpness/{prefix}estimate": top.value, f"sharpness/{prefix}residual": top.residual,
           f"sharpness/{prefix}converged": float(top.converged), f"sharpness/{prefix}products": float(top.products)}
    if top.converged and top.value > 0:
        out["sharpness/preconditioned" if prefix else "sharpness/lambda_max"] = top.value
    return out


def adam_preconditioner(optimizer: Any, params: list[Tensor]) -> tuple[list[Tensor], float] | None:
    """Adam's P = (1 − β1^t)(√(v/(1 − β2^t)) + ε) per parameter, and β1; None when the optimizer is not
    Adam-like (no `exp_avg_sq` in its state) or has not stepped yet."""
    group = optimizer.param_groups[0]
    if "betas" not in group:
        return None
    beta1, beta2 = group["betas"]
    eps = group.get("eps", 1e-8)
    diag = []
    for p in params:
        state = optimizer.state.get(p, {})
        if "exp_avg_sq" not in state:
            return None
        t = float(state["step"])
        v = state["exp_avg_sq"]
        diag.append((1 - beta1 ** (t + 1)) * ((v / (1 - beta2 ** (t + 1))).sqrt() + eps))
    return diag, float(beta1)
