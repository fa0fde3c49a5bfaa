"""Arithmetic mean: the non-robust baseline."""

from __future__ import annotations

import torch
from torch import Tensor

from .registry import Aggregate, Rule, register_rule


def mean(x: Tensor) -> Tensor:
    """Average of the rows: out = (1/m) Σ_i x_i.

    Summed in x's dtype (one pass); where that sum overflows (finite inputs near float32's
    maximum), those columns are summed again in float64, so finite inputs give a finite mean.
    Not robust: one input can move it anywhere (Blanchard et al. 2017, Lemma 1).
    Valid for any m ≥ 1.
    """
    out = x.sum(0).div_(x.shape[0])
    bad = ~torch.isfinite(out)
    if bool(bad.any()):
        out[bad] = x[:, bad].sum(0, dtype=torch.float64).div_(x.shape[0]).to(x.dtype)
    return out


def _apply(x: Tensor, *, f: int) -> Aggregate:
    m = x.shape[0]
    return Aggregate(mean(x), torch.full((m,), 1.0 / m, dtype=torch.float64))


register_rule(
    Rule(
        name="mean",
        apply=_apply,
        valid=lambda m, f, **_: m >= 1,
        condition="m >= 1",
        doc="Arithmetic mean (not robust; the baseline).",
    )
)
