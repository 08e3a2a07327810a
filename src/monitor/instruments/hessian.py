"""The top eigenvalue of a loss's Hessian from Hessian-vector products (double backward): Lanczos, which
reports its own error (`largest_eigenvalue`), and plain power iteration (`top_eigenvalue`, the dominant one).

Pure functions, no Lightning: both differentiate `loss` once with `create_graph=True` and then multiply
by the Hessian through that one graph (`torch.autograd.grad(g, θ, grad_outputs=v)` = Hv, Pearlmutter
1994), so every product sees the same forward pass: the same dropout masks, the same batch-norm batch
statistics. The relative residual ‖Hv − λv‖/|λ| (0 = an exact eigenpair) says how far to trust a value.

Power iteration converges to the eigenvalue of largest *magnitude*, slowly when the top two are close,
and to a negative one when a negative direction dominates (ResNet-152 at initialization): with a fixed
iteration count, start vectors that differ only in their seed gave values of different sign and size on
one ResNet-152 (`scripts/sharpness_seeds.py`). Lanczos finds
the top eigenvalue whatever the sign of the dominant one and stops at a tolerance on its residual.
With `preconditioner` d (a tensor per parameter, > 0), both work on D H D with D = diag(d)^{-1/2}:
the eigenvalues of P⁻¹H for P = diag(d) (Adam's preconditioned sharpness, Cohen et al. 2022).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
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


@dataclass(frozen=True)
class TopEigenvalue:
    """The top (largest algebraic) eigenvalue as Lanczos found it, and how far to trust it.

    value: the largest Ritz value (any sign; loss units per unit of θ², or of the preconditioned θ).
    residual: ‖Hy − θy‖/|θ| of its Ritz vector y (‖y‖ = 1), computed with one more product, not estimated.
    converged: residual ≤ the tolerance asked for; an unconverged value is an estimate, not λ_max (NaN with
        converged False when a product was not finite: the net has gone NaN/Inf).
    products: Hessian-vector products spent (the final residual's included).
    """

    value: float
    residual: float
    converged: bool
    products: int


def largest_eigenvalue(
    loss: Tensor,
    params: Sequence[Tensor],
    iterations: int = 60,
    generator: torch.Generator | None = None,
    preconditioner: Sequence[Tensor] | None = None,
    grads: Sequence[Tensor] | None = None,
    tolerance: float = 1e-2,
) -> TopEigenvalue:
    """The top eigenvalue of ∇²loss (or of P⁻¹∇²loss) by Lanczos with full reorthogonalization.

    Lanczos builds an orthonormal Krylov basis q₁…q_k with H q_j = β_{j−1} q_{j−1} + α_j q_j + β_j q_{j+1};
    the eigenvalues of the k×k tridiagonal T (α on the diagonal, β beside it) approach H's extremes from
    the first products on, the top one whatever the sign of the dominant one (no shift needed) and a
    near-degenerate top pair without slowing the eigen*value* (Golub & Van Loan, ch. 10). After each product
    the residual of the top Ritz pair is estimated as β_k·|s_k| (s the eigenvector of T); once it is at most
    `tolerance`·|θ|, or after `iterations` products, the Ritz vector is formed and its residual computed
    with one more product. One host read per product (α, β): a probe runs every `sharpness_every_n_steps`
    steps, never on the others. Memory: the basis, `iterations` vectors the size of `params`.
    """
    params = list(params)
    if grads is None:
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    product = _hessian_product(params, grads, preconditioner)
    if product is None:
        return TopEigenvalue(0.0, 0.0, True, 0)
    basis = [random_unit(params, generator)]
    alphas: list[float] = []
    betas: list[float] = []
    products = 0
    ritz, weights = 0.0, np.ones(1)
    for _ in range(iterations):
        q = basis[-1]
        w = product(q)
        products += 1
        alpha = float(_dot(w, q))
        w = [a - alpha * b for a, b in zip(w, q, strict=True)]
        if len(basis) > 1:
            w = [a - betas[-1] * b for a, b in zip(w, basis[-2], strict=True)]
        for _twice in range(2):  # full reorthogonalization ("twice is enough")
            for b in basis:
                c = _dot(w, b)
                w = [x - c * y for x, y in zip(w, b, strict=True)]
        beta = float(_norm(w))
        if not (math.isfinite(alpha) and math.isfinite(beta)):  # a non-finite Hessian (a net gone NaN/Inf)
            return TopEigenvalue(math.nan, math.nan, False, products)
        alphas.append(alpha)
        values, vectors = eigh_tridiagonal(np.array(alphas), np.array(betas)) if betas else (
            np.array(alphas), np.ones((1, 1)))
        ritz, weights = float(values[-1]), vectors[:, -1]
        if beta * abs(weights[-1]) <= tolerance * max(abs(ritz), 1e-30) or beta <= 1e-12 * max(abs(ritz), 1.0):
            break
        betas.append(beta)
        basis.append([x / beta for x in w])
    basis = basis[: len(weights)]
    y = [sum(float(c) * b[i] for c, b in zip(weights, basis, strict=True)) for i in range(len(params))]
    norm = float(_norm(y))
    y = [x / norm for x in y]
    hy = product(y)
    residual = float(_norm([h - ritz * x for h, x in zip(hy, y, strict=True)])) / max(abs(ritz), 1e-30)
    return TopEigenvalue(ritz, residual, residual <= tolerance, products + 1)


def _hessian_product(params: list[Tensor], grads: Sequence[Tensor | None],
                     preconditioner: Sequence[Tensor] | None) -> Callable[[list[Tensor]], list[Tensor]] | None:
    """v -> H v (or D H D v, D = diag(d)^{-1/2}: symmetric, with P⁻¹H's eigenvalues) through one graph; None
    when the gradient depends on no parameter."""
    grads = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params, strict=True)]
    live = [i for i, g in enumerate(grads) if g.requires_grad]
    if not live:
        return None
    scale = [d.rsqrt() for d in preconditioner] if preconditioner is not None else None

    def product(v: list[Tensor]) -> list[Tensor]:
        u = [x * s for x, s in zip(v, scale, strict=True)] if scale is not None else v
        hu = torch.autograd.grad([grads[i] for i in live], params, grad_outputs=[u[i] for i in live],
                                 retain_graph=True, allow_unused=True)
        hu = [h.detach() if h is not None else torch.zeros_like(p) for h, p in zip(hu, params, strict=True)]
        return [h * s for h, s in zip(hu, scale, strict=True)] if scale is not None else hu

    return product


def random_unit(params: Sequence[Tensor], generator: torch.Generator | None) -> list[Tensor]:
    """A random unit vector shaped like `params`, drawn on their device (`generator` must live there: a copy
    from the host would be a synchronization)."""
    v = [torch.randn(p.shape, generator=generator, dtype=p.dtype, device=p.device) for p in params]
    norm = _norm(v)
    return [x / norm for x in v]
