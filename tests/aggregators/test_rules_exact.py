"""Every rule on small inputs whose answer is worked out by hand (in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from byzmpi.aggregators import (
    bulyan,
    bulyan_select,
    caf,
    centered_clipping,
    coordinate_median,
    geometric_median,
    krum,
    krum_scores,
    mda,
    meamed,
    mean,
    monna,
    multi_krum,
    trimmed_mean,
)

from .helpers import aggregate, pipeline

T = lambda *rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731
COL = lambda *v: torch.tensor(v, dtype=torch.float64)[:, None]  # noqa: E731


def test_mean():
    x = T([0, 10], [1, 11], [2, 12], [3, -1])
    assert torch.equal(mean(x).value, T(1.5, 8))
    assert torch.equal(aggregate("mean", x, 0).weights, torch.full((4,), 0.25, dtype=torch.float64))


def test_median_odd_and_even():
    assert torch.equal(coordinate_median(T([1, 5], [3, 2], [2, 9])), T(2, 5))
    # even m: col0 sorted 1,2,3,10 -> (2+3)/2; col1 sorted 0,2,5,9 -> (2+5)/2  (not torch's lower median)
    assert torch.equal(coordinate_median(T([1, 5], [3, 2], [2, 9], [10, 0])), T(2.5, 3.5))


def test_trimmed_mean_drops_extremes_per_coordinate():
    x = T([0, 10], [1, 11], [2, 12], [100, -100])
    # per column, trim 1 each side: col0 -> mean(1, 2), col1 -> mean(10, 11)
    assert torch.equal(trimmed_mean(x, trim=1), T(1.5, 10.5))
    assert torch.equal(aggregate("trimmed_mean", x, 1).value, T(1.5, 10.5))  # trim defaults to f
    assert torch.equal(aggregate("trimmed_mean", x, 1, trim=0).value, mean(x).value)


def test_meamed_keeps_the_m_minus_f_values_closest_to_the_median():
    # col0: median 2 of {0,1,2,3,100}; closest 4 = {0,1,2,3} -> 1.5
    # col1: median 2 of {-100,1,2,3,4}; closest 4 = {1,2,3,4} -> 2.5
    x = T([0, -100], [1, 1], [2, 2], [3, 3], [100, 4])
    assert torch.equal(meamed(x, f=1), T(1.5, 2.5))


def test_krum_and_multi_krum_on_a_line():
    x = COL(0, 1, 2, 10, 11)
    # f = 1: each score sums the m - f - 2 = 2 smallest squared distances to others
    # 0: 1+4=5, 1: 1+1=2, 2: 1+4=5, 10: 1+64=65, 11: 1+81=82
    assert torch.equal(krum_scores(x, f=1), torch.tensor([5.0, 2, 5, 65, 82], dtype=torch.float64))
    assert torch.equal(krum(x, f=1).value, COL(1)[0])
    # Multi-Krum, k = m - f = 4: rows 1, 0, 2 (tie 5/5 -> lower index first), 10 -> mean 13/4
    assert multi_krum(x, f=1).value.item() == 3.25
    assert multi_krum(x, f=1, k=3).value.item() == pytest.approx(1.0, rel=1e-15)
    w = aggregate("multi_krum", x, 1, k=3).weights
    assert torch.allclose(w, torch.tensor([1, 1, 1, 0, 0], dtype=torch.float64) / 3)


def test_krum_ties_go_to_the_lowest_index():
    x = COL(5, 6, 7)  # f = 0: one neighbour each; scores 1, 1, 1
    assert krum(x, f=0).value.item() == 5.0
    assert torch.equal(aggregate("krum", x, 0).weights, torch.tensor([1.0, 0, 0], dtype=torch.float64))


def test_geometric_median():
    # the four corners of a square: the centre (also the coordinate-wise median, the start)
    assert torch.allclose(geometric_median(T([0, 0], [1, 0], [0, 1], [1, 1])).value, T(0.5, 0.5))
    # collinear points: the middle one
    assert torch.allclose(geometric_median(T([1, 2, 3], [4, 5, 6], [7, 8, 9])).value, T(4, 5, 6), atol=1e-5)
    # equilateral triangle: the centroid (the Fermat point), reached from the start (1, 0)
    tri = T([0, 0], [2, 0], [1, math.sqrt(3)])
    assert torch.allclose(geometric_median(tri, max_iter=1000, tol=1e-12).value, T(1, 1 / math.sqrt(3)), atol=1e-6)
    # T = 0: the starting point, the coordinate-wise median (not zero, not the mean)
    assert torch.equal(geometric_median(tri, max_iter=0).value, T(1, 0))


def test_geometric_median_first_order_condition():
    x = torch.randn(7, 20, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z = geometric_median(x, max_iter=2000, tol=1e-14).value
    u = (z - x) / (z - x).norm(dim=1, keepdim=True)
    assert u.sum(0).norm() < 1e-6  # the subgradient of sum_i |z - x_i| vanishes


def test_weiszfeld_iteration_count_matches_a_plain_loop():
    from byzmpi.aggregators.geometric_median import NU_FACTOR, weiszfeld

    x = torch.randn(9, 30, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    z0, lam, ran = weiszfeld(x, max_iter=50, tol=1e-6)
    # the definition on explicit vectors: start at the coordinate-wise median (midpoint for even m; m is odd)
    z = x.median(dim=0).values
    assert torch.equal(z0, z)
    scale = float((x - z).norm(dim=1).median())
    nu = NU_FACTOR * scale
    count = 0
    for _ in range(50):
        count += 1
        beta = 1.0 / (x - z).norm(dim=1).clamp_min(nu)
        new = (beta[:, None] * x).sum(0) / beta.sum()
        step = float((new - z).norm())
        z = new
        if step <= 1e-6 * scale:
            break
    assert 1 < ran < 50 and ran == count
    assert lam is not None and torch.allclose(lam @ x, z, atol=1e-9)


def test_centered_clipping_by_hand_and_warm_start():
    x = COL(0, 1, 2, 100)
    # first call starts at the coordinate-wise median 1.5; tau = 10, L = 1:
    # x - v = -1.5, -0.5, 0.5, 98.5 -> clipped -1.5, -0.5, 0.5, 10 -> mean 2.125 -> v = 3.625
    pipe = pipeline("centered_clipping", tau=10.0, iterations=1)
    assert torch.allclose(pipe(x, f=1, round_=0).value, COL(3.625)[0], rtol=0, atol=1e-12)
    assert torch.allclose(pipe.state["centre"], COL(3.625)[0])
    # second call warm-starts at 3.625: x - v = -3.625, -2.625, -1.625, 96.375 -> clipped sum 2.125 -> +0.53125
    assert torch.allclose(pipe(x, f=1, round_=1).value, COL(4.15625)[0], rtol=0, atol=1e-12)
    # the pure function, from an explicit centre, L = 2 from 0 with tau = 1:
    # step 1: clipped 0, 1, 1, 1 -> v = 0.75; step 2: -0.75, 0.25, 1, 1 -> +0.375 -> 1.125
    assert torch.allclose(centered_clipping(x, centre=COL(0)[0], tau=1.0, iterations=2).value, COL(1.125)[0])


def test_monna():
    x = COL(0, 1, 5, 6, 100)
    # f = 2, pivot 0: the 3 nearest to 0 are 0, 1, 5 -> 2; pivot 3 (value 6): 6, 5, 1 -> 4
    assert monna(x, f=2).value.item() == pytest.approx(2.0, rel=1e-15)
    assert monna(x, f=2, pivot=3).value.item() == pytest.approx(4.0, rel=1e-15)
    assert torch.allclose(
        aggregate("monna", x, 2, trusted=3).weights, torch.tensor([0, 1, 1, 1, 0], dtype=torch.float64) / 3
    )


def test_mda():
    # f = 2, subsets of 3: {0,1,3} has diameter 3, every other at least 3.5 -> mean 4/3
    assert math.isclose(mda(COL(0, 1, 3, 4.5, 10), f=2).value.item(), 4 / 3, rel_tol=1e-12)
    # tie {0,1,2} / {1,2,3} (diameter 2): the first in combinations order
    assert mda(COL(0, 1, 2, 3), f=1).value.item() == pytest.approx(1.0, rel=1e-15)


def test_bulyan_by_hand():
    x = COL(0, 1, 2, 3, 4, 5, 100)  # m = 7 = 4f + 3 with f = 1; theta = 5, beta = 3
    # Krum on all 7 (4 neighbours): 0:30 1:15 2:10 3:10 4:15 5:30 100:huge -> 2 (tie with 3, lower index)
    # on {0,1,3,4,5,100} (3 neighbours): 0:26 1:14 3:9 4:11 5:21 -> 3
    # on {0,1,4,5,100} (2): 0:17 1:10 4:10 5:17 -> 1;  on {0,4,5,100} (1): 0:16 4:1 5:1 -> 4
    # on {0,5,100} (0 neighbours): all 0 -> 0
    assert bulyan_select(x, f=1).tolist() == [2, 3, 1, 4, 0]
    # coordinate-wise: the 3 values of {0,1,2,3,4} closest to their median 2 are 1,2,3 -> 2
    assert bulyan(x, f=1).item() == 2.0
    y = COL(0, 1, 2, 3, 4, 5, 100) * torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    assert torch.equal(bulyan(y, f=1), T(2, -4))


def caf_reference(x: torch.Tensor, f: int) -> torch.Tensor:
    """CAF straight from its definition in R^d (d x d covariance, exact eigenpairs)."""
    m = x.shape[0]
    c = torch.ones(m, dtype=torch.float64)
    best, best_lam = x.mean(0), math.inf
    while c.sum() > m - 2 * f:
        mu = (c[:, None] * x).sum(0) / c.sum()
        dev = x - mu
        cov = (c[:, None, None] * dev[:, :, None] * dev[:, None, :]).sum(0) / c.sum()
        evals, evecs = torch.linalg.eigh(cov)
        if evals[-1] < best_lam:
            best_lam, best = float(evals[-1]), mu
        tau = (dev @ evecs[:, -1]) ** 2
        alive = c > 0
        tau_max = tau[alive].max()
        c = torch.where(alive, c * (1 - tau / tau_max).clamp(0, 1), torch.zeros_like(c))
        c[alive & (tau >= tau_max)] = 0
    return best


def test_caf():
    # mean (4,5,6); the covariance's top direction is (1,1,1); tau = 27, 0, 27 -> only the middle
    # input keeps weight (sum 1 = m - 2f): stop; the only (hence best) mean met is (4, 5, 6)
    assert torch.allclose(caf(T([1, 2, 3], [4, 5, 6], [7, 8, 9]), f=1).value, T(4, 5, 6))
    # f = 0: no filtering, the mean
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.allclose(caf(x, f=0).value, x.mean(0))
    # against the d-dimensional definition
    for f in (1, 2, 3):
        x = torch.randn(9, 5, generator=torch.Generator().manual_seed(f), dtype=torch.float64)
        x[:f] += 10
        assert torch.allclose(caf(x, f=f).value, caf_reference(x, f), atol=1e-12)
    # 1-D: 0, 1, 2, 10 with f = 1 -> the outlier goes first; compare with the definition
    assert torch.allclose(caf(COL(0, 1, 2, 10), f=1).value, caf_reference(COL(0, 1, 2, 10), 1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rules_keep_dtype(dtype):
    from .helpers import RULE_NAMES

    x = torch.randn(11, 6, generator=torch.Generator().manual_seed(0)).to(dtype)
    for name in RULE_NAMES:
        out = aggregate(name, x, 2).value
        assert out.dtype == dtype and out.shape == (6,), name
        assert np.isfinite(out.numpy()).all(), name
