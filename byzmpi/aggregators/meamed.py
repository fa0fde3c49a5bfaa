"""Mean around the median (Meamed), coordinate-wise."""

from __future__ import annotations

from torch import Tensor

from ..registry import Condition
from .registry import rule
from .sorted_reductions import MeanAroundMedian
from .sorting import reduce_sorted_columns


def mean_around_median(x: Tensor, *, keep: int) -> Tensor:
    """Per coordinate, the mean of the ``keep`` values closest to the coordinate's median.

    out_j = (1/k) Σ_{i ∈ N_j} x_ij, N_j the k = ``keep`` indices with the smallest |x_ij − med_j|,
    med_j the midpoint median of column j: N_j holds every value strictly closer than the k-th
    smallest distance D_j and only values at distance ≤ D_j (e.g. x = −2, −2, 0, 1, 3, k = 3:
    {0, 1, −2}, mean −1/3). Convention: among values at the same distance D_j (med − D_j and
    med + D_j) the smaller ones are kept (:class:`~.sorted_reductions.MeanAroundMedian`). Sums in
    float64. Valid for 1 ≤ keep ≤ m.
    """
    m = x.shape[0]
    if not 1 <= keep <= m:
        raise ValueError(f"mean_around_median needs 1 <= keep <= m, got keep={keep}, m={m}")
    return reduce_sorted_columns(x, MeanAroundMedian(keep))


MEAMED_VALID = Condition("m > 2f", lambda m, f, **_: m > 2 * f)


@rule(
    "meamed",
    condition=MEAMED_VALID,
    doc="Mean around median: per coordinate, the mean of the m-f values closest to the median.",
)
def meamed(x: Tensor, *, f: int) -> Tensor:
    """Meamed: per coordinate, the mean of the m − f values closest to the median.

    out_j = (1/(m−f)) Σ_{i ∈ N_j} x_ij with N_j the m − f indices closest to med_j (midpoint
    median): every value strictly closer than the (m − f)-th smallest distance, then equally
    distant values, the smaller first (a value is never dropped for a farther one, repeated values
    included). Valid when m > 2f.
    Reference: Xie, Koyejo, Gupta, "Generalized Byzantine-tolerant SGD", arXiv:1802.10116, 2018
    (the "mean around median" rule).
    """
    m = x.shape[0]
    MEAMED_VALID.require("meamed", m=m, f=f)
    return mean_around_median(x, keep=m - f)
