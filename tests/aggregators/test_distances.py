"""Gram-matrix distances against a float64 brute force."""

from __future__ import annotations

import pytest
import torch

from byzmpi.aggregators.distances import accurate_gram, gram, pairwise_sq_distances, sq_distances_to


def brute(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    off = ~torch.eye(ref.shape[0], dtype=torch.bool)
    return float(((got.double() - ref).abs()[off] / ref[off]).max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_brute_force(dtype):
    x = torch.randn(12, 3000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = brute(x)
    got = pairwise_sq_distances(x.to(dtype))
    assert got.dtype == dtype
    assert rel_err(got, brute(x.to(dtype))) < (1e-4 if dtype == torch.float32 else 1e-12)
    assert torch.equal(got.diagonal(), torch.zeros(12, dtype=dtype))
    assert torch.equal(got, got.T) and bool((got >= 0).all())
    assert rel_err(pairwise_sq_distances(x), ref) < 1e-12


def test_shared_component_1e4_times_larger_than_differences():
    g = torch.Generator().manual_seed(1)
    diffs = torch.randn(10, 5000, generator=g, dtype=torch.float64)
    shared = 1e4 * torch.randn(5000, generator=g, dtype=torch.float64)
    x = (shared + diffs).float()  # the float32 inputs themselves are the reference
    ref = brute(x)
    assert rel_err(pairwise_sq_distances(x), ref) < 1e-3
    # the uncentred identity |a|^2 + |b|^2 - 2<a,b> in float32 is useless here
    sq = (x * x).sum(1)
    naive = (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp(min=0)
    assert rel_err(naive, ref) > 1.0


def test_outliers_far_away_keep_honest_distances_accurate():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(11, 4000, generator=g, dtype=torch.float64)
    x[0] += 1e6  # row 0 (the first origin tried) and another row are outliers of magnitude 1e6
    x[5] -= 1e6
    x32 = x.float()
    got = pairwise_sq_distances(x32)
    honest = [i for i in range(11) if i not in (0, 5)]
    ref = brute(x32)[honest][:, honest]
    assert rel_err(got[honest][:, honest], ref) < 1e-3
    _, origin = accurate_gram(x32)
    assert origin in honest


def test_huge_finite_inputs_fall_back_to_float64():
    x = torch.tensor([[1e38, -1e38, 3e38], [-2e38, 1e38, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float32)
    got = pairwise_sq_distances(x)
    assert got.dtype == torch.float64 and bool(torch.isfinite(got).all())
    assert rel_err(got, brute(x)) < 1e-12


def test_gram_with_extra_rows_and_diagonal_helper():
    x = torch.randn(5, 300, dtype=torch.float64)
    extra = torch.randn(2, 300, dtype=torch.float64)
    o = torch.randn(300, dtype=torch.float64)
    p = torch.cat([x, extra]) - o
    assert torch.allclose(gram(x, o, extra=extra), p @ p.T)
    assert torch.allclose(sq_distances_to(x, o), ((x - o) ** 2).sum(1))


def test_distances_to_a_point_keep_float64_accuracy_at_large_d():
    """At large d the distances to a point must not carry float32 accumulation error: MoNNA ranks
    them, and for data with a shared offset their spread is far below float32's d·ε. Reference: the
    definition evaluated in float64 on the same float32 values."""
    gen = torch.Generator().manual_seed(11)
    d = 2_000_000
    x = 3.0 + torch.randn(4, d, generator=gen)
    o = x[0].clone()
    got = sq_distances_to(x, o)
    want = (x.double() - o.double()).square().sum(1)
    assert got[0] == 0.0
    assert float(((got[1:] - want[1:]).abs() / want[1:]).max()) < 1e-9
    # differences whose squares overflow float32 are recomputed in float64
    y = torch.tensor([[1e38, 0.0], [-1e38, 1.0]], dtype=torch.float32)
    big = sq_distances_to(y, y[0])
    assert bool(torch.isfinite(big).all())
    assert big[0] == 0.0 and big[1] == (y.double()[1] - y.double()[0]).square().sum()
