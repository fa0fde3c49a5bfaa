"""Minimum-diameter averaging (MDA)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..params import Param
from ..registry import Condition
from .combine import selection_weights, weighted_rows
from .distances import pairwise_sq_distances
from .min_diameter import min_diameter_subset
from .registry import Aggregate, rule

#: default cap on C(m, f), the number of candidate subsets
MAX_SUBSETS = 10**15


MDA_VALID = Condition(
    "m > 2f and C(m, f) <= max_subsets",
    lambda m, f, max_subsets=MAX_SUBSETS: m > 2 * f and math.comb(m, f) <= max_subsets,
)


def mda_valid(m: int, f: int, max_subsets: int = MAX_SUBSETS) -> bool:
    return MDA_VALID.holds(m=m, f=f, max_subsets=max_subsets)


def mda_select(x: Tensor, *, f: int, max_subsets: int = MAX_SUBSETS) -> Tensor:
    """Indices of the minimum-diameter subset of m − f rows (first in combinations order on ties)."""
    m = x.shape[0]
    if m <= 2 * f:
        raise ValueError(f"MDA needs m > 2f, got m={m}, f={f}")
    n_subsets = math.comb(m, f)
    if n_subsets > max_subsets:
        raise ValueError(
            f"MDA with m={m}, f={f} has C(m, f) = {n_subsets:.3g} candidate subsets, more than "
            f"max_subsets = {max_subsets:.3g}; lower f, sample fewer clients, or raise max_subsets"
        )
    dist = pairwise_sq_distances(x).double().cpu().numpy()
    return torch.tensor(min_diameter_subset(dist, m - f), dtype=torch.long)


@rule(
    "mda",
    condition=MDA_VALID,
    doc="Minimum-diameter averaging: mean of the m-f inputs of smallest diameter (exact search).",
    params={
        "max_subsets": Param(
            "max_subsets",
            int,
            MAX_SUBSETS,
            "refuse when C(m, f), the number of candidate subsets, exceeds this",
            minimum=1,
        )
    },
)
def mda(x: Tensor, *, f: int, max_subsets: int = MAX_SUBSETS) -> Aggregate:
    """Minimum-diameter averaging: the mean of the m − f inputs of smallest diameter.

        S* = argmin_{S ⊂ [m], |S| = m − f} max_{i, j ∈ S} ‖x_i − x_j‖,   out = (1/(m−f)) Σ_{i∈S*} x_i.

    Exact: distances from one Gram matrix, then a threshold bisection with a bounded vertex-cover
    search (:mod:`.min_diameter`), which is much cheaper than enumerating the C(m, f) subsets
    (m = 64, f = 20 in milliseconds) but exponential in f in the worst case; the rule refuses,
    with a ValueError and in its validity condition, when C(m, f) > ``max_subsets``.
    Convention: among subsets of equal minimal diameter, the first in
    ``itertools.combinations(range(m), m − f)`` order. Valid when m > 2f and C(m, f) ≤ max_subsets.
    References: El Mhamdi, Guerraoui, Rouault, "The hidden vulnerability of distributed learning
    in Byzantium", ICML 2018 (MDA); El Mhamdi, Guerraoui, Guirguis, Hoang, Rouault, "Genuinely
    distributed Byzantine machine learning", PODC 2020.
    """
    w = selection_weights(x.shape[0], mda_select(x, f=f, max_subsets=max_subsets))
    return Aggregate(weighted_rows(x, w), w)
