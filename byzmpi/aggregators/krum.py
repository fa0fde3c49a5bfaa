"""Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui, Stainer, NIPS 2017)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..params import Param
from ..registry import Condition
from .combine import selection_weights, weighted_rows
from .distances import pairwise_sq_distances
from .registry import Aggregate, rule


def krum_scores_from_distances(dist: Tensor, *, neighbours: int) -> Tensor:
    """s(i) = sum of the ``neighbours`` smallest ‖x_i − x_j‖², j ≠ i, from a squared-distance
    matrix (0 when ``neighbours`` is 0)."""
    m = dist.shape[0]
    if neighbours <= 0:
        return torch.zeros(m, dtype=dist.dtype, device=dist.device)
    off = dist.clone()
    off.fill_diagonal_(float("inf"))
    return torch.topk(off, neighbours, dim=1, largest=False).values.sum(1)


KRUM_VALID = Condition("m > 2f + 2", lambda m, f, **_: m > 2 * f + 2)
MULTI_KRUM_VALID = Condition(
    "m > 2f + 2 and 1 <= k <= m", lambda m, f, k=None: m > 2 * f + 2 and (k is None or 1 <= k <= m)
)


def krum_scores(x: Tensor, *, f: int) -> Tensor:
    """Krum score of every row of ``x`` (m, d).

    s(i) = Σ_{i→j} ‖x_i − x_j‖², the sum of squared distances from x_i to its m − f − 2 nearest
    *other* rows (Blanchard et al. 2017, §4). Distances come from one centred Gram matrix
    (:func:`~byzmpi.aggregators.distances.pairwise_sq_distances`). Requires m > 2f + 2.
    """
    m = x.shape[0]
    KRUM_VALID.require("krum", m=m, f=f)
    return krum_scores_from_distances(pairwise_sq_distances(x), neighbours=m - f - 2)


def krum_select(x: Tensor, *, f: int, k: int = 1) -> Tensor:
    """Indices of the ``k`` rows with the lowest Krum scores, ties broken towards the lowest index."""
    order = torch.sort(krum_scores(x, f=f).cpu(), stable=True).indices
    return order[:k]


@rule(
    "krum",
    condition=KRUM_VALID,
    doc="Krum: the input with the least sum of squared distances to its m-f-2 nearest others.",
)
def krum(x: Tensor, *, f: int) -> Aggregate:
    """Krum: the row with the lowest score, Kr = x_{i*}, i* = argmin_i s(i) (lowest index on ties).

    Returns the chosen row and one-hot weights on it.
    Convention: score over the m − f − 2 nearest other rows, squared distances. Valid when m > 2f + 2.
    Reference: Blanchard et al., "Machine learning with adversaries: Byzantine tolerant gradient
    descent", NIPS 2017.
    """
    chosen = krum_select(x, f=f)
    return Aggregate(x[int(chosen[0])].clone(), selection_weights(x.shape[0], chosen))


@rule(
    "multi_krum",
    condition=MULTI_KRUM_VALID,
    doc="Multi-Krum: average of the k inputs with the lowest Krum scores (default k = m - f).",
    params={"k": Param("k", int, None, "inputs averaged (default m - f)", minimum=1, nullable=True)},
)
def multi_krum(x: Tensor, *, f: int, k: int | None = None) -> Aggregate:
    """Multi-Krum: the average of the ``k`` rows with the lowest Krum scores (default k = m − f).

    This is the "rank once" variant (scores computed once, as in most codes); k = 1 is Krum.
    Ties in score go to the lowest index. Returns the average and weights 1/k on the chosen rows.
    Valid when m > 2f + 2 and 1 ≤ k ≤ m (the same condition config validation checks).
    Reference: Blanchard et al. 2017, §6.
    """
    m = x.shape[0]
    MULTI_KRUM_VALID.require("multi_krum", m=m, f=f, k=k)
    w = selection_weights(m, krum_select(x, f=f, k=m - f if k is None else k))
    return Aggregate(weighted_rows(x, w), w)
