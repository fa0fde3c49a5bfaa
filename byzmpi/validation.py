"""Server-side validation of received payloads: a Byzantine client can send anything.

Each received row gets a reject code (see :data:`byzmpi.trace.REJECT_REASONS`); rejected rows
are dropped from aggregation and counted, never silently zeroed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: CPU dtypes whose rows are checked through numpy (a few µs less per call than the torch ops at
#: small d, the same booleans)
_NUMPY_DTYPES = (torch.float32, torch.float64)

ACCEPTED = 0
NON_FINITE = 1
BAD_INDEX = 2
BAD_LENGTH = 3


def finite_rows(msgs: Tensor) -> Tensor:
    """Bool per row: every value is finite (not NaN, not ±Inf), as ``torch.isfinite(x).all(1)``.

    Computed from the row maximum and minimum (both propagate NaN, and ±Inf is an extreme): two
    vectorised reductions without a bool temporary, ~7x faster at d = 1e6."""
    if msgs.shape[1] == 0:
        return torch.ones(msgs.shape[0], dtype=torch.bool, device=msgs.device)
    if msgs.device.type == "cpu" and msgs.dtype in _NUMPY_DTYPES and msgs.dim() == 2:
        return torch.from_numpy(finite_rows_numpy(msgs.detach().numpy()))
    return torch.isfinite(msgs.amax(dim=1)) & torch.isfinite(msgs.amin(dim=1))


def finite_rows_numpy(a: np.ndarray) -> np.ndarray:
    """:func:`finite_rows` of a 2-D float numpy array (max and min propagate NaN as torch's do)."""
    finite: np.ndarray = np.isfinite(a.max(axis=1)) & np.isfinite(a.min(axis=1))
    return finite


def codes_from_finite(finite: Tensor) -> Tensor:
    """uint8 code per row from :func:`finite_rows`: ACCEPTED where finite, else NON_FINITE."""
    if finite.device.type == "cpu":
        return torch.from_numpy(np.where(finite.numpy(), ACCEPTED, NON_FINITE).astype(np.uint8))
    return torch.where(finite, ACCEPTED, NON_FINITE).to(torch.uint8)


def reject_codes(msgs: Tensor) -> Tensor:
    """uint8 code per row: ACCEPTED or NON_FINITE."""
    return codes_from_finite(finite_rows(msgs))


def finite_codes(rows: Tensor, codes: Tensor) -> Tensor:
    """``codes`` with NON_FINITE added for accepted rows that hold a NaN or ±Inf (decoded rows,
    or rows an attack produced)."""
    finite = finite_rows(rows)
    if codes.device.type == "cpu" and finite.device.type == "cpu":
        c = codes.numpy()
        return torch.from_numpy(np.where((c == ACCEPTED) & ~finite.numpy(), NON_FINITE, c).astype(np.uint8))
    return torch.where((codes == ACCEPTED) & ~finite, NON_FINITE, codes).to(torch.uint8)


def effective_f(f: int, n_rejected: int) -> int:
    """Byzantine inputs still to tolerate after rejections.

    Only a faulty client sends a payload that fails validation, so each rejection removes one
    faulty input: with m' = m − r inputs the rule tolerates f' = max(0, f − r). Any rule valid for
    (m, f) with a condition of the form m > a·f + b (a ≥ 1) stays valid for (m', f').
    """
    return max(0, f - n_rejected)
