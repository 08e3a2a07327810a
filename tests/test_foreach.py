"""The fused multi-tensor helpers equal the public per-tensor ops, on the fused path and on the fallback."""

from __future__ import annotations

import math

import pytest
import torch

from src import foreach


def tensors() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    out = [torch.randn(3, 4, generator=gen), torch.randn(7, generator=gen), torch.zeros(2, 2)]
    out.append(torch.randn(1, generator=gen))
    out[1][2] = math.nan
    out[3][0] = math.inf
    return out


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "fallback"])
def test_norms_and_counts_match_public_ops(fused: bool) -> None:
    ts = [t for t in tensors() if torch.isfinite(t).all()]
    expected = torch.stack([torch.linalg.vector_norm(t) for t in ts])
    torch.testing.assert_close(foreach.norms(ts, fused=fused), expected)
    assert foreach.norms(tensors(), 0.0, fused=fused).tolist() == [12.0, 7.0, 0.0, 1.0]  # non-zero entries
    assert foreach.nonfinite_counts(tensors(), fused=fused).tolist() == [0.0, 1.0, 0.0, 1.0]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "fallback"])
def test_differences_and_scale(fused: bool) -> None:
    a, b = [torch.ones(3), torch.full((2,), 5.0)], [torch.zeros(3), torch.ones(2)]
    assert [d.tolist() for d in foreach.differences(a, b, fused=fused)] == [[1.0] * 3, [4.0, 4.0]]
    foreach.scale_(a, 0.5, fused=fused)
    assert [t.tolist() for t in a] == [[0.5] * 3, [2.5, 2.5]]


def test_this_torch_has_the_fused_path() -> None:
    assert foreach.FUSED, "torch lost its _foreach_* functions: the monitor now takes the slower per-tensor path"
