"""Uniform K-subsets (masks.random_subset): shape, exact uniformity on both constructions, stability."""

from __future__ import annotations

import numpy as np
import pytest

from byzmpi import rng
from byzmpi.compressors.masks import SEQUENTIAL_BELOW, random_subset

from .stats import chi2_upper, subset_chi2


@pytest.mark.parametrize("d,k", [(1, 1), (1, 0), (5, 5), (100, 1), (100, 6), (100, 7), (100, 50), (100, 51),
                                 (100, 99), (10**6, 10**5), (10**6, 9 * 10**5), (10**6, 10**3)])
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


@pytest.mark.parametrize("d,k,n", [
    (32, 2, 50_000),   # sequential draws (k·16 ≤ d): 496 subsets, ~100 per cell
    (8, 3, 20_000),    # random keys, smallest-k branch: 56 subsets
    (8, 6, 20_000),    # random keys, complement branch (k > d/2): 28 subsets
])
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
