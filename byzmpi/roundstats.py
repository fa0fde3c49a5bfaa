"""Per-round statistics for the trace, computed on the server from the round's rows.

The honest-mean metrics use the Byzantine flags, knowledge that only a simulation has; the trace
lists them in ``oracle_fields``. Every reduction runs over column chunks with float64
accumulation, so it never materialises a float64 copy of the (m, d) rows (at d = 1e6 that copy
cost more than the aggregation itself) and 1e38 entries give finite-or-inf, never NaN, norms.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

NAN = float("nan")
CHUNK = 1 << 16  # columns per chunk


def _chunks(d: int) -> Iterator[slice]:
    for start in range(0, d, CHUNK):
        yield slice(start, min(start + CHUNK, d))


def row_norms(msgs: Tensor) -> Tensor:
    """‖x_i‖ per row (float64)."""
    acc = torch.zeros(msgs.shape[0], dtype=torch.float64, device=msgs.device)
    for cols in _chunks(msgs.shape[1]):
        acc += msgs[:, cols].double().square().sum(1)
    return acc.sqrt_()


def honest_mean(rows: Tensor, honest: Tensor) -> Tensor | None:
    """Mean of the honest rows (float64), or None when there is none."""
    if not bool(honest.any()):
        return None
    chosen = rows[honest] if not bool(honest.all()) else rows
    out = torch.empty(rows.shape[1], dtype=torch.float64, device=rows.device)
    for cols in _chunks(rows.shape[1]):
        out[cols] = chosen[:, cols].double().mean(0)
    return out


def distances_to(rows: Tensor, centre: Tensor | None) -> Tensor:
    """‖x_i − c‖ per row (float64); NaN when there is no centre."""
    if centre is None:
        return torch.full((rows.shape[0],), NAN, dtype=torch.float64)
    acc = torch.zeros(rows.shape[0], dtype=torch.float64, device=rows.device)
    for cols in _chunks(rows.shape[1]):
        acc += (rows[:, cols].double() - centre[cols]).square_().sum(1)
    return acc.sqrt_()


def distance(a: Tensor, centre: Tensor | None) -> float:
    if centre is None:
        return NAN
    value = float(distances_to(a.reshape(1, -1), centre)[0])
    return value if math.isfinite(value) else float("inf")
