"""Bulyan (El Mhamdi, Guerraoui, Rouault, ICML 2018) over Krum."""

from __future__ import annotations

import torch
from torch import Tensor

from ..registry import Condition
from .distances import pairwise_sq_distances
from .krum import krum_scores_from_distances
from .registry import rule
from .sorted_reductions import MeanAroundMedian
from .sorting import reduce_sorted_rows

BULYAN_VALID = Condition("m >= 4f + 3", lambda m, f, **_: m >= 4 * f + 3)


def bulyan_select(x: Tensor, *, f: int) -> Tensor:
    """The θ = m − 2f rows chosen by repeated Krum, in the order chosen.

    Each step applies Krum to the rows not chosen yet, R (score over the |R| − f − 2 nearest
    others in R, or 0 when that is ≤ 0), takes the lowest score (lowest index on ties) and removes
    it from R. All distances come from one Gram matrix computed once.
    """
    m = x.shape[0]
    BULYAN_VALID.require("bulyan", m=m, f=f)
    dist = pairwise_sq_distances(x).cpu()
    remaining = list(range(m))
    chosen: list[int] = []
    for _ in range(m - 2 * f):
        idx = torch.tensor(remaining)
        scores = krum_scores_from_distances(dist[idx][:, idx], neighbours=len(remaining) - f - 2)
        best = int(torch.sort(scores, stable=True).indices[0])
        chosen.append(remaining.pop(best))
    return torch.tensor(chosen, dtype=torch.long)


@rule(
    "bulyan",
    condition=BULYAN_VALID,
    doc="Bulyan: m-2f inputs chosen by repeated Krum, then per coordinate the mean of the m-4f values "
    "closest to their median.",
)
def bulyan(x: Tensor, *, f: int) -> Tensor:
    """Bulyan over Krum.

    1. Selection: θ = m − 2f inputs chosen one at a time by Krum on those not chosen yet.
    2. Coordinate-wise: β = θ − 2f; per coordinate, the mean of the β selected values closest to
       the median of the θ selected values (midpoint median; exactly the β smallest distances,
       equally distant values the smaller first: :func:`~.meamed.mean_around_median`).

    Convention: the paper's "β closest to the median" (not a trimmed mean of the θ values); the
    inner Krum scores over |R| − f − 2 neighbours of the remaining set R. Valid when m ≥ 4f + 3.
    Reference: El Mhamdi, Guerraoui, Rouault, "The hidden vulnerability of distributed learning
    in Byzantium", ICML 2018.

    Cost: one Gram matrix (the selection), then one read of the θ selected rows, gathered in
    cache-sized column blocks (:func:`~.sorting.reduce_sorted_rows`).
    """
    m = x.shape[0]
    beta = m - 4 * f
    return reduce_sorted_rows(x, bulyan_select(x, f=f), MeanAroundMedian(beta))
