"""Batcher's odd–even merge sorting network, applied elementwise to rows of column blocks.

A sorting network is a fixed list of compare-exchange pairs (i, j), i < j: after
``r_i, r_j = min(r_i, r_j), max(r_i, r_j)`` for every pair in order, the rows r_0 ≤ … ≤ r_{m−1}
are sorted in every column. The list depends only on m, so a compiler can fuse the whole network
(and whatever reduction follows) into one pass over the data: each column's m values stay in
registers. Batcher's construction for the next power of two p ≥ m, with every pair that touches
an index ≥ m dropped (those slots behave as +∞ and never move), sorts any m values: 191 pairs
for m = 32, 543 for m = 64.

Reference: K. E. Batcher, "Sorting networks and their applications", AFIPS 1968; Knuth, TAOCP
vol. 3, §5.3.4.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import torch
from torch import Tensor


@cache
def batcher_pairs(m: int) -> tuple[tuple[int, int], ...]:
    """Compare-exchange pairs (i, j), i < j, of Batcher's odd–even merge sort for m inputs."""
    if m < 0:
        raise ValueError(f"m must be >= 0, got {m}")
    p = 1
    while p < m:
        p *= 2
    pairs: list[tuple[int, int]] = []

    def merge(lo: int, hi: int, r: int) -> None:
        step = 2 * r
        if step < hi - lo:
            merge(lo, hi, step)
            merge(lo + r, hi, step)
            pairs.extend((i, i + r) for i in range(lo + r, hi - r, step))
        else:
            pairs.append((lo, lo + r))

    def sort(lo: int, hi: int) -> None:
        if hi - lo >= 1:
            mid = lo + (hi - lo) // 2
            sort(lo, mid)
            sort(mid + 1, hi)
            merge(lo, hi, 1)

    sort(0, p - 1)
    return tuple((i, j) for i, j in pairs if j < m)


def sort_rows(rows: Sequence[Tensor], pairs: Sequence[tuple[int, int]] | None = None) -> list[Tensor]:
    """The rows sorted elementwise (ascending down the list) by the network for len(rows)
    (``pairs``: :func:`batcher_pairs` of len(rows), passed in when tracing).

    Pure tensor code with no data-dependent control flow, so that ``torch.compile`` traces it into
    one fused kernel; outputs a later reduction does not use are removed by the compiler. NaN
    propagates through min/max (inputs are validated finite before aggregation).
    """
    out = list(rows)
    for i, j in batcher_pairs(len(out)) if pairs is None else pairs:
        a, b = out[i], out[j]
        out[i] = torch.minimum(a, b)
        out[j] = torch.maximum(a, b)
    return out
