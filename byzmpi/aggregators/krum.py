"""Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui, Stainer, NIPS 2017)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..params import Param
from .combine import selection_weights, weighted_rows
from .distances import pairwise_sq_distances
from .registry import Aggregate, Rule, register_rule


def krum_scores_from_distances(dist: Tensor, *, neighbours: int) -> Tensor:
    """s(i) = sum of the ``neighbours`` smallest ‖x_i − x_j‖², j ≠ i, from a squared-distance
    matrix (0 when ``neighbours`` is 0)."""
    m = dist.shape[0]
    if neighbours <= 0:
        return torch.zeros(m, dtype=dist.dtype, device=dist.device)
    off = dist.clone()
    off.fill_diagonal_(float("inf"))
    return torch.topk(off, neighbours, dim=1, largest=False).values.sum(1)


def krum_scores(x: Tensor, *, f: int) -> Tensor:
    """Krum score of every row of ``x`` (m, d).

    s(i) = Σ_{i→j} ‖x_i − x_j‖², the sum of squared distances from x_i to its m − f − 2 nearest
    *other* rows (Blanchard et al. 2017, §4). Distances come from one centred Gram matrix
    (:func:`~byzmpi.aggregators.distances.pairwise_sq_distances`). Requires m > 2f + 2.
    """
    m = x.shape[0]
    if m <= 2 * f + 2:
        raise ValueError(f"Krum needs m > 2f + 2, got m={m}, f={f}")
    return krum_scores_from_distances(pairwise_sq_distances(x), neighbours=m - f - 2)


def krum_select(x: Tensor, *, f: int, k: int = 1) -> Tensor:
    """Indices of the ``k`` rows with the lowest Krum scores, ties broken towards the lowest index."""
    order = torch.sort(krum_scores(x, f=f).cpu(), stable=True).indices
    return order[:k]


def krum(x: Tensor, *, f: int) -> Tensor:
    """Krum: the row with the lowest score, Kr = x_{i*}, i* = argmin_i s(i) (lowest index on ties).

    Convention: score over the m − f − 2 nearest other rows, squared distances. Valid when m > 2f + 2.
    Reference: Blanchard et al., "Machine learning with adversaries: Byzantine tolerant gradient
    descent", NIPS 2017.
    """
    return x[int(krum_select(x, f=f)[0])].clone()


def multi_krum(x: Tensor, *, f: int, k: int | None = None) -> Tensor:
    """Multi-Krum: the average of the ``k`` rows with the lowest Krum scores (default k = m − f).

    This is the "rank once" variant (scores computed once, as in most codes); k = 1 is Krum.
    Ties in score go to the lowest index. Valid when m > 2f + 2 and 1 ≤ k ≤ m.
    Reference: Blanchard et al. 2017, §6.
    """
    m = x.shape[0]
    k = m - f if k is None else k
    if not 1 <= k <= m:
        raise ValueError(f"Multi-Krum needs 1 <= k <= m, got k={k}, m={m}")
    chosen = krum_select(x, f=f, k=k)
    return weighted_rows(x, selection_weights(m, chosen))


def _apply_krum(x: Tensor, *, f: int) -> Aggregate:
    chosen = krum_select(x, f=f)
    return Aggregate(x[int(chosen[0])].clone(), selection_weights(x.shape[0], chosen))


def _apply_multi_krum(x: Tensor, *, f: int, k: int | None) -> Aggregate:
    m = x.shape[0]
    k = m - f if k is None else min(k, m)
    chosen = krum_select(x, f=f, k=k)
    w = selection_weights(m, chosen)
    return Aggregate(weighted_rows(x, w), w)


register_rule(
    Rule(
        name="krum",
        apply=_apply_krum,
        valid=lambda m, f, **_: m > 2 * f + 2,
        condition="m > 2f + 2",
        doc="Krum: the input with the least sum of squared distances to its m-f-2 nearest others.",
    )
)
register_rule(
    Rule(
        name="multi_krum",
        apply=_apply_multi_krum,
        valid=lambda m, f, k=None: m > 2 * f + 2 and (k is None or 1 <= k <= m),
        condition="m > 2f + 2 and 1 <= k <= m",
        doc="Multi-Krum: average of the k inputs with the lowest Krum scores (default k = m - f).",
        params={"k": Param("k", int, None, "inputs averaged (default m - f)", minimum=1, nullable=True)},
    )
)
