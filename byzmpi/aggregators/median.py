"""Coordinate-wise median (CM)."""

from __future__ import annotations

import torch
from torch import Tensor

from .registry import Aggregate, Rule, register_rule
from .sorting import map_sorted_columns


def coordinate_median(x: Tensor) -> Tensor:
    """Coordinate-wise median of the rows of ``x`` (m, d).

    out_j = median(x_1j, ..., x_mj). Convention: for even m, the midpoint of the two middle values
    (numpy's convention, not torch's lower median), computed as a/2 + b/2 so that it cannot
    overflow for finite inputs. Valid for any m ≥ 1; with f Byzantine inputs it stays inside the
    range of the honest values when m > 2f.
    Reference: Yin et al., "Byzantine-robust distributed learning", ICML 2018.
    """
    m = x.shape[0]
    lo, hi = (m - 1) // 2, m // 2
    if lo == hi:
        return map_sorted_columns(x, lambda s: s[lo])
    return map_sorted_columns(x, lambda s: s[lo] * 0.5 + s[hi] * 0.5)


def _apply(x: Tensor, *, f: int) -> Aggregate:
    return Aggregate(coordinate_median(x))


register_rule(
    Rule(
        name="median",
        apply=_apply,
        valid=lambda m, f, **_: m > 2 * f,
        condition="m > 2f",
        doc="Coordinate-wise median, midpoint of the two middle values for even m.",
    )
)
