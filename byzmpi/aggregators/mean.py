"""Arithmetic mean: the non-robust baseline."""

from __future__ import annotations

import torch
from torch import Tensor

from ..registry import Condition
from .registry import Aggregate, rule


@rule(
    "mean", condition=Condition("m >= 1", lambda m, f, **_: m >= 1), doc="Arithmetic mean (not robust; the baseline)."
)
def mean(x: Tensor, *, f: int = 0) -> Aggregate:
    """Average of the rows: out = (1/m) Σ_i x_i.

    Formed as Σ_i (1/m)·x_i in x's dtype, one matrix–vector product (one pass,
    :func:`~byzmpi.aggregators.combine.weighted_rows`); where that overflows (finite inputs near
    float32's maximum), those columns are summed again in float64, so finite inputs give a finite mean.
    Not robust: one input can move it anywhere (Blanchard et al. 2017, Lemma 1).
    Weights 1/m on every input. ``f`` is accepted (and ignored) like every rule's. Valid for any m ≥ 1.
    """
    from .combine import all_finite, weighted_rows

    out = weighted_rows(x, torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=torch.float64))
    if not all_finite(out):
        bad = ~torch.isfinite(out)
        out[bad] = x[:, bad].sum(0, dtype=torch.float64).div_(x.shape[0]).to(x.dtype)
    return Aggregate(out, torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=torch.float64))
