"""Per-round statistics for the trace, computed on the server from the round's rows.

The honest-mean metrics use the Byzantine flags, knowledge that only a simulation has; the trace
lists them in ``oracle_fields``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NAN = float("nan")


def row_norms(msgs: Tensor) -> Tensor:
    """‖x_i‖ per row, accumulated in float64 (so 1e38 entries give a finite-or-inf, not NaN, norm)."""
    return torch.linalg.vector_norm(msgs.double(), dim=1)


def honest_mean(rows: Tensor, honest: Tensor) -> Tensor | None:
    """Mean of the honest rows (float64), or None when there is none."""
    if not bool(honest.any()):
        return None
    return rows[honest].double().mean(0)


def distances_to(rows: Tensor, centre: Tensor | None) -> Tensor:
    """‖x_i − c‖ per row (float64); NaN when there is no centre."""
    if centre is None:
        return torch.full((rows.shape[0],), NAN, dtype=torch.float64)
    return torch.linalg.vector_norm(rows.double() - centre, dim=1)


def distance(a: Tensor, centre: Tensor | None) -> float:
    if centre is None:
        return NAN
    value = float(torch.linalg.vector_norm(a.double() - centre))
    return value if math.isfinite(value) else float("inf")
