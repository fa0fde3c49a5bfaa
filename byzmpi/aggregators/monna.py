"""MoNNA: mean of the nearest neighbours of a trusted (pivot) input."""

from __future__ import annotations

import torch
from torch import Tensor

from ..params import Param
from .combine import selection_weights, weighted_rows
from .distances import sq_distances_to
from .registry import Aggregate, Rule, register_rule


def monna_select(x: Tensor, *, f: int, pivot: int = 0) -> Tensor:
    """Indices of the m − f rows nearest to x_pivot (itself first; ties → lowest index)."""
    m = x.shape[0]
    if m <= 2 * f:
        raise ValueError(f"MoNNA needs m > 2f, got m={m}, f={f}")
    if not 0 <= pivot < m:
        raise ValueError(f"MoNNA pivot must be in [0, m), got pivot={pivot}, m={m}")
    dist = sq_distances_to(x, x[pivot]).cpu()
    dist[pivot] = -1.0
    return torch.sort(dist, stable=True).indices[: m - f]


def monna(x: Tensor, *, f: int, pivot: int = 0) -> Tensor:
    """MoNNA: the average of the m − f inputs nearest to x_pivot (x_pivot included).

        out = (1/(m−f)) Σ_{i ∈ N(pivot)} x_i,   N(p) = the m − f nearest x_i to x_p (‖·‖₂).

    Convention: ``pivot`` is the row of the input trusted to be correct (in the original
    peer-to-peer setting, the node's own vector; a server trusts none, and row 0 is simply the
    first accepted message); ties in distance go to the lowest index. The distances are the
    diagonal of the Gram matrix of x_i − x_pivot (exact differences, no cancellation).
    Valid when m > 2f and pivot < m.
    Reference: Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust collaborative
    learning with linear gradient overhead", ICML 2023.
    """
    chosen = monna_select(x, f=f, pivot=pivot)
    return weighted_rows(x, selection_weights(x.shape[0], chosen))


def _apply(x: Tensor, *, f: int, pivot: int) -> Aggregate:
    w = selection_weights(x.shape[0], monna_select(x, f=f, pivot=pivot))
    return Aggregate(weighted_rows(x, w), w)


register_rule(
    Rule(
        name="monna",
        apply=_apply,
        valid=lambda m, f, pivot=0: m > 2 * f and 0 <= pivot < m,
        condition="m > 2f and pivot < m",
        doc="MoNNA: average of the m-f inputs nearest to the pivot input (itself included).",
        params={"pivot": Param("pivot", int, 0, "row of the trusted input whose neighbourhood is averaged", minimum=0)},
    )
)
