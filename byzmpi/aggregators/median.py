"""Coordinate-wise median (CM)."""

from __future__ import annotations

from torch import Tensor

from ..registry import Condition
from .registry import rule
from .sorted_reductions import Median
from .sorting import reduce_sorted_columns

MEDIAN_VALID = Condition("m > 2f", lambda m, f, **_: m > 2 * f)


@rule("median", condition=MEDIAN_VALID, doc="Coordinate-wise median, midpoint of the two middle values for even m.")
def coordinate_median(x: Tensor, *, f: int = 0) -> Tensor:
    """Coordinate-wise median of the rows of ``x`` (m, d).

    out_j = median(x_1j, ..., x_mj). Convention: for even m, the midpoint of the two middle values
    (numpy's convention, not torch's lower median): (a + b)/2 exactly as numpy rounds it, and
    a/2 + b/2 where a + b would overflow, so that finite inputs give a finite median. Computed by
    selection on dim 0 (a compiled sorting network for large d, ``torch.sort`` otherwise; see
    :mod:`byzmpi.aggregators.sorting`). Valid for any m ≥ 1; with f Byzantine inputs it stays
    inside the range of the honest values per coordinate when m > 2f.
    Reference: Yin, Chen, Ramchandran, Bartlett, "Byzantine-robust distributed learning: towards
    optimal statistical rates", ICML 2018.
    """
    return reduce_sorted_columns(x, Median())
