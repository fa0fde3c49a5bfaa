"""Coordinate-wise trimmed mean (TM)."""

from __future__ import annotations

from torch import Tensor

from ..params import Param
from ..registry import Condition
from .registry import rule
from .sorted_reductions import TrimmedMean
from .sorting import reduce_sorted_columns

TRIMMED_MEAN_VALID = Condition(
    "m > 2b (b = trim, default f)", lambda m, f, trim=None: m > 2 * (f if trim is None else trim)
)


@rule(
    "trimmed_mean",
    condition=TRIMMED_MEAN_VALID,
    doc="Coordinate-wise trimmed mean: drop b largest and b smallest per coordinate.",
    params={"trim": Param("trim", int, None, "values dropped per side (default: f)", minimum=0, nullable=True)},
)
def trimmed_mean(x: Tensor, *, f: int = 0, trim: int | None = None) -> Tensor:
    """Coordinate-wise trimmed mean.

    For each coordinate j, drop the `trim` largest and `trim` smallest of x[:, j] and average
    the remaining m − 2·trim values:  out_j = mean(sort(x[:, j])[trim : m − trim]).
    The sum is accumulated in float64. Computed by selection on dim 0 (compiled sorting network
    for large d, ``torch.sort`` otherwise).

    Convention: `trim` is a count per side (not a fraction), default f. Valid when m > 2·trim.
    Reference: Yin, Chen, Ramchandran, Bartlett, "Byzantine-robust distributed learning: towards
    optimal statistical rates", ICML 2018.
    """
    trim = f if trim is None else trim
    if trim < 0:
        raise ValueError(f"trimmed_mean needs trim >= 0, got trim={trim}")
    TRIMMED_MEAN_VALID.require("trimmed_mean", m=x.shape[0], f=f, trim=trim)
    return reduce_sorted_columns(x, TrimmedMean(trim))
