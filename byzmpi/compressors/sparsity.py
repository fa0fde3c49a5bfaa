"""How many coordinates a sparsifier keeps: K from ``k`` or ``ratio`` (exactly one)."""

from __future__ import annotations

import math
from typing import Any

from ..params import Param

#: indices travel as int32 and must never be a NaN/Inf float32 bit pattern (≥ 0x7F800000)
MAX_D = 0x7F800000 - 1

SPARSITY_PARAMS: dict[str, Param] = {
    "k": Param("k", int, None, "coordinates kept per message (give k or ratio)", minimum=1, nullable=True),
    "ratio": Param(
        "ratio", float, None, "K = max(1, floor(ratio·d)) (give k or ratio)", minimum=0.0, maximum=1.0, nullable=True
    ),
}


def sparsity_problem(params: dict[str, Any], d: int | None = None) -> str | None:
    """Why (k, ratio) is unusable for dimension d (None: usable); d=None checks what needs no d."""
    k, ratio = params.get("k"), params.get("ratio")
    if (k is None) == (ratio is None):
        return "give exactly one of k and ratio"
    if ratio is not None and not 0.0 < ratio <= 1.0:
        return f"ratio must be in (0, 1], got {ratio!r}"
    if k is not None and k < 1:
        return f"k must be >= 1, got {k!r}"
    if d is not None:
        if not 1 <= d <= MAX_D:
            return f"d must be in [1, {MAX_D}] (indices travel as int32 bit patterns), got {d}"
        if k is not None and k > d:
            return f"k={k} exceeds the model dimension d={d}"
    return None


def keep_count(d: int, *, k: int | None = None, ratio: float | None = None) -> int:
    """K = k, or K = max(1, floor(ratio·d)); raises ValueError unless exactly one is given and 1 ≤ K ≤ d."""
    problem = sparsity_problem({"k": k, "ratio": ratio}, d)
    if problem:
        raise ValueError(problem)
    if k is not None:
        return int(k)
    assert ratio is not None and d is not None  # sparsity_problem refused anything else
    return max(1, math.floor(ratio * d))
