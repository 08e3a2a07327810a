"""The top eigenvalue of a loss's Hessian by power iteration on Hessian-vector products (double backward).

Pure functions, no Lightning: `top_eigenvalue(loss, params)` differentiates `loss` once with
`create_graph=True` and then multiplies by the Hessian `iterations` times through that one graph
(`torch.autograd.grad(g, θ, grad_outputs=v)` = Hv, Pearlmutter 1994), so every product sees the same
forward pass: the same dropout masks, the same batch-norm batch statistics. No host read: the
iteration count is fixed, and the convergence is reported as the relative residual ‖Hv − λv‖/|λ|
of the last iterate (0 = an exact eigenpair).

Power iteration converges to the eigenvalue of largest *magnitude*; for the training loss of a
network that is usually the top one (sharpness), but a negative direction can dominate (ResNet-152
at initialization: −1.6e5): `largest_eigenvalue` then runs again on the shifted H − λ₁I, on the
device (no host read to decide), and finds the top one.
With `preconditioner` d (a tensor per parameter, > 0), it iterates on D H D with D = diag(d)^{-1/2}:
the eigenvalues of P⁻¹H for P = diag(d) (Adam's preconditioned sharpness, Cohen et al. 2022).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    return torch.stack([(x * y).sum() for x, y in zip(a, b, strict=True)]).sum()


def _norm(a: Sequence[Tensor]) -> Tensor:
    return _dot(a, a).sqrt()


def top_eigenvalue(
    loss: Tensor,
    params: Sequence[Tensor],
    iterations: int = 20,
    generator: torch.Generator | None = None,
    preconditioner: Sequence[Tensor] | None = None,
    grads: Sequence[Tensor] | None = None,
    shift: float | Tensor = 0.0,
    start: Sequence[Tensor] | None = None,
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """(λ, residual, v): the dominant eigenvalue of ∇²loss (or of P⁻¹∇²loss) over `params`, as device scalars,
    and its unit eigenvector (in the preconditioned coordinates).

    `grads`: ∇loss made with `create_graph=True` already (to share one graph between calls);
    `generator`: where the random start vector comes from (a fixed seed gives repeatable probes), unless
    `start` gives one. `shift` s: iterate on H + s·I and return its dominant eigenvalue minus s.
    """
    params = list(params)
    if grads is None:
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    grads = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params, strict=True)]
    live = [i for i, g in enumerate(grads) if g.requires_grad]  # a parameter the gradient does not depend on
    scale = [d.rsqrt() for d in preconditioner] if preconditioner is not None else None

    def product(v: list[Tensor]) -> list[Tensor]:
        u = [x * s for x, s in zip(v, scale, strict=True)] if scale is not None else v
        hu = torch.autograd.grad([grads[i] for i in live], params, grad_outputs=[u[i] for i in live],
                                 retain_graph=True, allow_unused=True)
        hu = [h if h is not None else torch.zeros_like(p) for h, p in zip(hu, params, strict=True)]
        hu = [h * s for h, s in zip(hu, scale, strict=True)] if scale is not None else hu
        return [h + shift * x for h, x in zip(hu, v, strict=True)]

    device = params[0].device
    v = list(start) if start is not None else random_unit(params, generator)
    lam = residual = torch.zeros((), device=device, dtype=params[0].dtype)
    if not live:
        return lam, residual, v
    for _ in range(iterations):
        hv = product(v)
        lam = _dot(v, hv)  # Rayleigh quotient of the unit vector v
        residual = _norm([h - lam * x for h, x in zip(hv, v, strict=True)])
        norm = _norm(hv).clamp_min(torch.finfo(hv[0].dtype).tiny)
        v = [h / norm for h in hv]
    top = lam - shift
    return top.detach(), (residual / top.abs().clamp_min(1e-30)).detach(), [x.detach() for x in v]


def largest_eigenvalue(
    loss: Tensor,
    params: Sequence[Tensor],
    iterations: int = 20,
    generator: torch.Generator | None = None,
    preconditioner: Sequence[Tensor] | None = None,
    grads: Sequence[Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """(λ_max, residual): the *top* eigenvalue, whatever the sign of the dominant one, without a host read.

    Two runs of `iterations` each. The first finds the dominant λ₁. The second iterates on H + sI with
    s = max(−λ₁, 0) on the device: when λ₁ ≥ 0 it is λ_max already and the second run continues from
    its eigenvector (a refinement); when λ₁ < 0 every eigenvalue of H + sI is ≥ 0, its dominant one is
    λ_max + s, and the run starts afresh from a random vector.
    """
    params = list(params)
    if grads is None:
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    fresh = random_unit(params, generator)
    first, _, v = top_eigenvalue(loss, params, iterations, None, preconditioner, grads, start=fresh)
    shift = (-first).clamp_min(0)
    positive = first >= 0
    start = [torch.where(positive, a, b) for a, b in zip(v, random_unit(params, generator), strict=True)]
    top, residual, _ = top_eigenvalue(loss, params, iterations, None, preconditioner, grads, shift, start)
    return top, residual


def random_unit(params: Sequence[Tensor], generator: torch.Generator | None) -> list[Tensor]:
    """A random unit vector shaped like `params` (drawn on the CPU from `generator`: the same on any device)."""
    v = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
    norm = _norm(v)
    return [x / norm for x in v]
