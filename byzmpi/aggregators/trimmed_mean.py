"""Coordinate-wise trimmed mean (TM)."""

from __future__ import annotations

from torch import Tensor

from ..params import Param
from .registry import Aggregate, Rule, register_rule
from .sorted_reductions import TrimmedMean
from .sorting import reduce_sorted_columns


def trimmed_mean(x: Tensor, *, trim: int) -> Tensor:
    """Coordinate-wise trimmed mean.

    For each coordinate j, drop the `trim` largest and `trim` smallest of x[:, j] and average
    the remaining m − 2·trim values:  out_j = mean(sort(x[:, j])[trim : m − trim]).
    The sum is accumulated in float64. Computed by selection on dim 0 (compiled sorting network
    for large d, ``torch.sort`` otherwise).

    Convention: `trim` is a count per side (not a fraction), default f. Valid when m > 2·trim.
    Reference: Yin, Chen, Ramchandran, Bartlett, "Byzantine-robust distributed learning: towards
    optimal statistical rates", ICML 2018.
    """
    m = x.shape[0]
    if not 0 <= 2 * trim < m:
        raise ValueError(f"trimmed_mean needs m > 2*trim, got m={m}, trim={trim}")
    return reduce_sorted_columns(x, TrimmedMean(trim))


def _apply(x: Tensor, *, f: int, trim: int | None) -> Aggregate:
    return Aggregate(trimmed_mean(x, trim=f if trim is None else trim))


register_rule(
    Rule(
        name="trimmed_mean",
        apply=_apply,
        valid=lambda m, f, trim=None: m > 2 * (f if trim is None else trim),
        condition="m > 2b (b = trim, default f)",
        doc="Coordinate-wise trimmed mean: drop b largest and b smallest per coordinate.",
        params={"trim": Param("trim", int, None, "values dropped per side (default: f)", minimum=0, nullable=True)},
    )
)
