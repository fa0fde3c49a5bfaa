"""MoNNA: mean of the nearest neighbours of a trusted (pivot) input."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..params import Param
from ..registry import Condition
from .combine import selection_weights, weighted_rows
from .distances import sq_distances_to
from .registry import Aggregate, RuleRefused, rule

MONNA_VALID = Condition("m > 2f and pivot < m", lambda m, f, pivot=0, **_: m > 2 * f and 0 <= pivot < m)


def monna_select(x: Tensor, *, f: int, pivot: int = 0) -> Tensor:
    """Indices of the m − f rows nearest to x_pivot (itself first; ties → lowest index)."""
    m = x.shape[0]
    MONNA_VALID.require("monna", m=m, f=f, pivot=pivot)
    dist = sq_distances_to(x, x[pivot]).cpu()
    dist[pivot] = -1.0
    return torch.sort(dist, stable=True).indices[: m - f]


@rule(
    "monna",
    condition=MONNA_VALID,
    doc="MoNNA: average of the m-f inputs nearest to the input of the trusted client (itself included); "
    "needs aggregator.trusted, the id of an honest client sampled in every round.",
    params={
        "trusted": Param(
            "trusted",
            int,
            None,
            "client id of the trusted input (required; must be honest and always sampled)",
            minimum=0,
            nullable=True,
        )
    },
    takes_clients=True,
)
def monna(
    x: Tensor, *, f: int, pivot: int = 0, trusted: int | None = None, clients: np.ndarray | None = None
) -> Aggregate:
    """MoNNA: the average of the m − f inputs nearest to x_pivot (x_pivot included).

        out = (1/(m−f)) Σ_{i ∈ N(pivot)} x_i,   N(p) = the m − f nearest x_i to x_p (‖·‖₂).

    Convention: the pivot is the input trusted to be correct (in the original peer-to-peer
    setting, the node's own vector). A server trusts no row by position, so the registered rule
    takes ``trusted``, a client id the user names, and finds that client's row from ``clients``
    (the round's client ids of the rows); a round without an accepted message from it is refused
    (:class:`RuleRefused`: the server skips the step and counts it). ``pivot`` (a row index) is
    for direct calls. Ties in distance go to the lowest index. The distances are the
    diagonal of the Gram matrix of x_i − x_pivot (exact differences, no cancellation).
    Valid when m > 2f and pivot < m.
    Reference: Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust collaborative
    learning with linear gradient overhead", ICML 2023.
    """
    if trusted is not None:
        if clients is None or trusted not in clients:
            raise RuleRefused(f"monna: the trusted client {trusted} sent no accepted message this round")
        pivot = int(np.flatnonzero(np.asarray(clients) == trusted)[0])
    w = selection_weights(x.shape[0], monna_select(x, f=f, pivot=pivot))
    return Aggregate(weighted_rows(x, w), w)
