"""Pre-aggregators by hand, their mixing matrices, and their (m, f) shapes."""

from __future__ import annotations

import math

import pytest
import torch

from byzmpi.aggregators import PRE_AGGREGATORS, arc, arc_count, bucketing, bucketing_shape, nnm, static_clipping
from byzmpi.aggregators.clipping import row_norms

T = lambda *rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731
COL = lambda *v: torch.tensor(v, dtype=torch.float64)[:, None]  # noqa: E731


def apply(name, x, f, seed=0, **params):
    gen = torch.Generator().manual_seed(seed)
    pre = PRE_AGGREGATORS[name]
    params = {**{k: p.default for k, p in pre.params.items()}, **params}
    return pre.apply(x, f=f, generator=gen, **params)


def test_bucketing_by_hand():
    x = COL(1, 2, 4, 8, 16)
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(7))
    v = x[perm, 0]
    y, _, mix = bucketing(x, s=2, generator=torch.Generator().manual_seed(7))
    # buckets {pi0, pi1}, {pi2, pi3}, {pi4}: the last partial bucket is averaged over its real size (1)
    assert torch.equal(y[:, 0], torch.stack([(v[0] + v[1]) / 2, (v[2] + v[3]) / 2, v[4]]))
    assert torch.equal(mix.sum(1), torch.ones(3, dtype=torch.float64))
    assert torch.equal(mix @ x, y)


def test_bucketing_shape_and_fresh_permutations():
    assert bucketing_shape(10, 3, 2) == (5, 3)
    assert bucketing_shape(5, 4, 2) == (3, 3)  # at most one contaminated bucket per bucket
    assert bucketing_shape(7, 0, 3) == (3, 0)
    assert PRE_AGGREGATORS["bucketing"].shape(9, 2, s=4) == (3, 2)
    x = torch.arange(12, dtype=torch.float64)[:, None]
    gen = torch.Generator().manual_seed(0)
    first = bucketing(x, s=3, generator=gen).mix
    second = bucketing(x, s=3, generator=gen).mix
    assert not torch.equal(first, second)  # a new permutation on each call
    assert torch.equal(bucketing(x, s=3, generator=torch.Generator().manual_seed(0)).mix, first)
    out = apply("bucketing", x, 5, s=3)
    assert out.x.shape == (4, 1) and out.f == 4


def test_nnm_by_hand():
    # f = 1: each value replaced by the mean of its 3 nearest (itself included)
    # 0: {0,1,3}; 1: {1,0,3}; 3: {3,1,0}; 10: {10,3,1}
    y, _, mix = nnm(COL(0, 1, 3, 10), f=1)
    assert torch.allclose(y[:, 0], T(4 / 3, 4 / 3, 4 / 3, 14 / 3))
    assert torch.allclose(mix @ COL(0, 1, 3, 10), y)
    assert torch.equal((mix > 0).sum(1), torch.full((4,), 3))
    assert PRE_AGGREGATORS["nnm"].shape(5, 2) == (5, 2)
    assert PRE_AGGREGATORS["nnm"].shape(2, 2) == (0, 2)  # no neighbourhood: every rule is invalid


def test_nnm_keeps_itself_when_duplicates_tie():
    x = COL(5, 5, 5, 0)
    _, _, mix = nnm(x, f=2)  # 2 neighbours each: itself first, then the lowest index at distance 0
    assert mix[2, 2] == 0.5 and mix[2, 0] == 0.5 and mix[0, 0] == 0.5 and mix[0, 1] == 0.5


def test_static_clipping_by_hand():
    x = T([3, 4], [0, 0], [0.3, 0.4])
    assert torch.allclose(static_clipping(x, tau=1.0).x, T([0.6, 0.8], [0, 0], [0.3, 0.4]))
    out = apply("clipping", x, 1, tau=1.0)
    assert torch.allclose(out.mix, torch.diag(T(0.2, 1, 1)))
    assert out.f == 1


@pytest.mark.parametrize("d", [1000, 4 * 1024, 2_000_003])
def test_row_norms_are_float64_accurate_at_large_d(d):
    # the definition: each row's squares summed in float64
    x = torch.randn(3, d, generator=torch.Generator().manual_seed(d)) + 0.3
    exact = torch.stack([row.double().square().sum().sqrt() for row in x])
    norms = row_norms(x)
    assert norms.dtype == torch.float64
    assert torch.allclose(norms, exact, rtol=1e-7, atol=0)  # a whole-row float32 norm is ~1e-4 off at d = 2e6
    # the clipping decision follows the float64 norm: a radius 1e-6 above row 0's norm leaves it
    # alone, one 1e-6 below clips it to that radius
    above, below = float(exact[0]) * (1 + 1e-6), float(exact[0]) * (1 - 1e-6)
    assert torch.equal(static_clipping(x[:1], tau=above).x, x[:1])
    clipped = static_clipping(x[:1], tau=below).x
    assert math.isclose(float(clipped.double().norm()), below, rel_tol=1e-7)


def test_row_norms_overflowing_float32_are_recomputed():
    x = torch.full((2, 3000), 3e37)
    x[1] = 1.0
    norms = row_norms(x)
    assert math.isclose(float(norms[0]), 3e37 * math.sqrt(3000), rel_tol=1e-7)
    assert math.isclose(float(norms[1]), math.sqrt(3000), rel_tol=1e-7)


def test_arc_count_and_by_hand():
    # k = floor(2 (f/m) (m - f))
    assert [arc_count(10, 3), arc_count(3, 1), arc_count(5, 0), arc_count(4, 2), arc_count(20, 5)] == [4, 1, 0, 2, 7]
    # m = 3, f = 1: k = 1; the largest row (7,8,9) is scaled to the norm of (4,5,6)
    x = T([1, 2, 3], [4, 5, 6], [7, 8, 9])
    y = arc(x, f=1).x
    assert torch.equal(y[:2], x[:2])
    assert math.isclose(float(y[2].norm()), float(x[1].norm()), rel_tol=1e-12)
    assert torch.allclose(y[2], x[2] * x[1].norm() / x[2].norm())
    assert torch.equal(arc(x, f=0).x, x)


def test_arc_clips_exactly_k_inputs():
    x = torch.arange(1, 11, dtype=torch.float64)[:, None] * torch.ones(1, 3, dtype=torch.float64)
    out = apply("arc", x, 3)  # k = 4: the 4 largest clipped to the 5th largest norm
    scales = out.mix.diagonal()
    assert int((scales < 1).sum()) == 4
    norms = out.x.norm(dim=1)
    assert torch.allclose(norms[6:], norms[5].expand(4))


@pytest.mark.parametrize("name", sorted(PRE_AGGREGATORS))
def test_mix_reproduces_the_output(name):
    x = torch.randn(9, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3
    out = apply(name, x, 2)
    assert out.mix is not None and out.mix.dtype == torch.float64
    assert torch.allclose(out.mix @ x, out.x)
    assert (out.x.shape[0], out.f) == PRE_AGGREGATORS[name].shape(
        9, 2, **{k: p.default for k, p in PRE_AGGREGATORS[name].params.items()}
    )


@pytest.mark.parametrize(("m", "s"), [(16, 2), (13, 2), (16, 3), (10, 4)])
def test_bucket_means_by_rows_against_the_float64_definition(m: int, s: int) -> None:
    """Above ROWS_MIN_NUMEL the buckets are row operations: within a float32 rounding per term of
    the exact mean, the same values as the GEMM for s = 2 (½ is exact), and no overflow on
    finite inputs near float32's maximum (each term scaled before it is added)."""
    from byzmpi.aggregators.bucketing import ROWS_MIN_NUMEL, _mix, _permutation, bucket_means
    from byzmpi.aggregators.combine import mix_rows

    x = torch.randn(m, ROWS_MIN_NUMEL // m + 7, generator=torch.Generator().manual_seed(m))
    perm = _permutation(m, torch.Generator().manual_seed(s))
    mix = _mix(perm, s)
    y = bucket_means(x, perm, s, mix)
    exact = mix @ x.double()
    bound = s * 2.0**-23 * (x.abs().max().item() + 1.0)
    assert y.shape == (-(-m // s), x.shape[1]) and (y.double() - exact).abs().max().item() <= bound
    if s == 2:
        assert torch.equal(y, mix_rows(x, mix))
    big = torch.full((4, ROWS_MIN_NUMEL), 3e38)
    assert torch.isfinite(bucket_means(big, torch.arange(4), 2, _mix(torch.arange(4), 2))).all()
