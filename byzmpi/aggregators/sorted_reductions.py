"""Reductions of sorted columns: the coordinate-wise statistics built on order statistics.

Each reduction receives ``rows``, the m rows of a column block sorted ascending in every column
(r_0 ≤ r_1 ≤ … ≤ r_{m−1} elementwise), and returns one value per column. They are frozen
dataclasses (hashable: a compiled kernel is cached per reduction and m) written with elementwise
tensor operations only, so the same code runs inside a compiled sorting network and, through
``on_sorted`` (the stacked (m, C) block), after ``torch.sort``; both give bitwise the same values
(same operations, same summation order). None overflows for finite inputs: midpoints are
a/2 + b/2 when a + b overflows and sums are accumulated in float64, row after row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def midpoint(a: Tensor, b: Tensor) -> Tensor:
    """(a + b)/2 as numpy computes it (rounded sum, halved); a/2 + b/2 where a + b overflows."""
    s = a + b
    return torch.where(torch.isfinite(s), s * 0.5, a * 0.5 + b * 0.5)


def sum_rows(rows: Sequence[Tensor]) -> Tensor:
    """Σ rows, accumulated in float64."""
    acc = rows[0].to(torch.float64)
    for r in rows[1:]:
        acc = acc + r.to(torch.float64)
    return acc


class SortedReduction:
    """Base: ``__call__(rows)`` on the list of sorted rows; ``on_sorted(s)`` on their stack."""

    def __call__(self, rows: Sequence[Tensor]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_sorted(self, s: Tensor) -> Tensor:
        return self(s.unbind(0))


@dataclass(frozen=True)
class Median(SortedReduction):
    """Midpoint median: r_{(m−1)/2} for odd m, midpoint(r_{m/2−1}, r_{m/2}) for even m."""

    def __call__(self, rows: Sequence[Tensor]) -> Tensor:
        m = len(rows)
        lo, hi = (m - 1) // 2, m // 2
        return rows[lo].clone() if lo == hi else midpoint(rows[lo], rows[hi])


@dataclass(frozen=True)
class TrimmedMean(SortedReduction):
    """mean(r_b, …, r_{m−1−b}): the m − 2b middle values, summed in float64."""

    trim: int

    def __call__(self, rows: Sequence[Tensor]) -> Tensor:
        m = len(rows)
        keep = m - 2 * self.trim
        return (sum_rows(rows[self.trim : m - self.trim]) / keep).to(rows[0].dtype)


@dataclass(frozen=True)
class MeanAroundMedian(SortedReduction):
    """Mean of the ``keep`` values closest to the (midpoint) median of the column.

    Definition (Xie et al. 2018, Meamed; El Mhamdi et al. 2018, Bulyan's last step): with
    d_i = |r_i − med|, the mean of a k-subset N with Σ_{i∈N} d_i minimal, i.e. N holds every value
    with d_i < D and only values with d_i ≤ D, D the k-th smallest distance. Tie rule (the
    definition leaves it open): among values at the same distance D, i.e. med − D and med + D,
    the **smaller** ones are kept (the k-subset is the first k of the column sorted by (d_i, r_i)).

    How: along the sorted column the valid k-subsets are windows r_a, …, r_{a+k−1}, a ∈ [0, m − k].
    Moving the window from a to a + 1 trades r_a for r_{a+k}; it is right iff r_a is strictly
    farther from the median than r_{a+k}, i.e. c_a: (med − r_a) > (r_{a+k} − med) (signed: a value
    on the far side of the median is never preferred; equal distances keep r_a, the smaller, which
    is the tie rule). med − r_a falls and r_{a+k} − med rises with a, so c_0, …, c_{m−k−1} is a
    run of trues followed by falses, and the best window starts at a* = the number of trues: the
    result is selected by m − k selections (``torch.where``) over the window sums, c_{a−1} choosing window a. This
    keeps every value strictly closer than the k-th smallest distance, repeated values included
    (x = −2, −2, 0, 1, 3, k = 3, med 0: c_0 = 2 > 1 true, c_1 = 2 > 3 false: a* = 1, {−2, 0, 1};
    a window of least maximal distance alone is not enough, {−2, −2, 0} has the same one but drops
    1). Differences are of halves (med/2 − r/2, in the input dtype) so that they cannot overflow;
    rounding is monotone, so c stays a run of trues then falses and can only merge distances into
    ties, which the tie rule then settles. The W = m − k + 1 window sums are formed in float64 by
    additions only (no running difference, which would cancel against huge values): directly
    when windows are short (k ≤ W), otherwise as left part + common core + right part, sharing the
    partial sums.
    """

    keep: int

    def window_sums(self, wide: Sequence[Tensor]) -> list[Tensor]:
        m, k = len(wide), self.keep
        w = m - k + 1
        if k <= w:
            sums = []
            for a in range(w):
                acc = wide[a]
                for r in wide[a + 1 : a + k]:
                    acc = acc + r
                sums.append(acc)
            return sums
        core = wide[w - 1]  # rows w−1 … k−1 belong to every window
        for r in wide[w:k]:
            core = core + r
        left: list[Tensor | None] = [None] * w  # left[a] = r_a + … + r_{w−2}
        for a in range(w - 2, -1, -1):
            nxt = left[a + 1]
            left[a] = wide[a] if nxt is None else nxt + wide[a]
        right: list[Tensor | None] = [None] * w  # right[a] = r_k + … + r_{a+k−1}
        for a in range(1, w):
            prv = right[a - 1]
            right[a] = wide[k] if prv is None else prv + wide[a + k - 1]
        sums = []
        for a in range(w):
            la, ra = left[a], right[a]
            acc = core if la is None else la + core
            sums.append(acc if ra is None else acc + ra)
        return sums

    def __call__(self, rows: Sequence[Tensor]) -> Tensor:
        m, k = len(rows), self.keep
        w = m - k + 1
        sums = self.window_sums([r.to(torch.float64) for r in rows])
        best_sum = sums[0]
        if w > 1:
            half_med = Median()(rows) * 0.5
            for a in range(1, w):  # c_{a-1} true: the best window starts at a or later
                left_farther = (half_med - rows[a - 1] * 0.5) > (rows[a - 1 + k] * 0.5 - half_med)
                best_sum = torch.where(left_farther, sums[a], best_sum)
        return (best_sum / k).to(rows[0].dtype)
