"""Uniform K-subsets (masks.random_subset): shape, exact uniformity on both constructions, stability."""

from __future__ import annotations

import numpy as np
import pytest

from byzmpi import rng
from byzmpi.compressors.masks import SEQUENTIAL_BELOW, _smallest_keys, random_subset

from .stats import chi2_upper, subset_chi2


@pytest.mark.parametrize(
    "d,k",
    [
        (1, 1),
        (1, 0),
        (5, 5),
        (100, 1),
        (100, 6),
        (100, 7),
        (100, 50),
        (100, 51),
        (100, 99),
        (10**6, 10**5),
        (10**6, 9 * 10**5),
        (10**6, 10**3),
    ],
)
def test_subset_is_sorted_distinct_in_range(d, k):
    idx = random_subset(rng.generator(3, 1, "mask", 2), d, k)
    assert idx.dtype == np.int64 and idx.shape == (k,)
    assert np.all(np.diff(idx) > 0)
    if k:
        assert 0 <= idx[0] and idx[-1] < d


@pytest.mark.parametrize("d,k", [(0, 1), (5, 6), (5, -1)])
def test_subset_rejects_impossible_sizes(d, k):
    with pytest.raises(ValueError):
        random_subset(rng.generator(0, 0, "mask"), d, k)


@pytest.mark.parametrize(
    "d,k,n",
    [
        (32, 2, 30_000),  # sequential draws (k·16 ≤ d): 496 subsets, ~60 per cell
        (8, 3, 20_000),  # random keys, smallest-k branch: 56 subsets
        (8, 6, 20_000),  # random keys, complement branch (k > d/2): 28 subsets
    ],
)
def test_subset_law_is_uniform_over_all_k_subsets(d, k, n):
    """Pearson χ² against the uniform law on the C(d, k) subsets, rejected beyond the 5σ quantile."""
    assert (k * SEQUENTIAL_BELOW <= d) == (d == 32)  # the cases cover both constructions
    gen = rng.generator(11, 0, "test-uniform")
    subsets = [tuple(random_subset(gen, d, k).tolist()) for _ in range(n)]
    stat, df = subset_chi2(subsets, d, k)
    assert stat < chi2_upper(df), (stat, df)


def test_subset_is_a_function_of_the_stream_only():
    a = random_subset(rng.generator(5, 9, "mask", 1), 10**5, 300)
    b = random_subset(rng.generator(5, 9, "mask", 1), 10**5, 300)
    c = random_subset(rng.generator(5, 9, "mask", 2), 10**5, 300)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_ties_at_the_kth_key_are_broken_uniformly():
    """32-bit keys tie (rarely at real d, so force it): keys [0,0,1,1,1,1,2,2] with k = 3 must keep
    {0, 1} and one of {2, 3, 4, 5} uniformly; all-equal keys must give a uniform 3-subset of 8."""
    gen = rng.generator(4, 0, "test-ties")
    keys = np.array([0, 0, 1, 1, 1, 1, 2, 2], dtype=np.uint32)
    n = 8000
    picks = []
    for _ in range(n):
        s = _smallest_keys(gen, keys, 3)
        assert s[0] == 0 and s[1] == 1 and 2 <= s[2] <= 5
        picks.append(int(s[2]))
    obs = np.bincount(picks, minlength=6)[2:]
    stat = float(((obs - n / 4) ** 2 / (n / 4)).sum())
    assert stat < chi2_upper(3), obs
    flat = np.zeros(8, dtype=np.uint32)
    subsets = [tuple(_smallest_keys(gen, flat, 3).tolist()) for _ in range(10_000)]
    stat, df = subset_chi2(subsets, 8, 3)
    assert stat < chi2_upper(df), (stat, df)
