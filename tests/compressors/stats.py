"""Statistics helpers for the compressor tests (no scipy)."""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations

import numpy as np

#: z-score for the tests' tolerances: a correct implementation fails a 5σ check with
#: probability < 6e-7 per statistic (the draws are seeded, so a pass is reproducible)
Z = 5.0


def chi2_upper(df: int, z: float = Z) -> float:
    """Upper quantile of χ²(df) at the normal z-score z (Wilson–Hilferty approximation)."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


def subset_chi2(subsets: list[tuple[int, ...]], d: int, k: int) -> tuple[float, int]:
    """Pearson χ² of the observed K-subsets against the uniform law on all C(d, k); returns (stat, df)."""
    cells = list(combinations(range(d), k))
    counts = Counter(subsets)
    assert set(counts) <= set(cells), "a subset that is not an increasing k-tuple of [0, d)"
    n = len(subsets)
    expected = n / len(cells)
    obs = np.array([counts.get(c, 0) for c in cells], dtype=np.float64)
    return float(((obs - expected) ** 2 / expected).sum()), len(cells) - 1
