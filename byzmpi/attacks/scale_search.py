"""Search over an attack's scale against the defender's actual aggregator.

Shared by FOE (IPM with a searched ε) and ALIE with a searched z: the attacker tries every scale of a
grid, asks the server's real pipeline what it would output (``AttackContext.defender``), and keeps
the scale whose aggregate lands farthest from the honest mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError


def scale_grid(low: float, high: float, steps: int, *, field: str = "attack") -> list[float]:
    """``steps`` evenly spaced scales from ``low`` to ``high`` inclusive (``[low]`` when steps = 1).

    The default FOE grid (0.1, 5.0, 50) is {0.1, 0.2, …, 5.0}, the RoSDHB code's η grid.
    """
    if steps < 1:
        raise ConfigError(f"{field}_steps", f"must be >= 1 (got {steps})")
    if low > high:
        raise ConfigError(f"{field}_max", f"must be >= {field}_min (got {high!r} < {low!r})")
    if steps == 1:
        return [float(low)]
    return [float(v) for v in np.linspace(low, high, steps)]


def deviation(aggregate: Tensor, centre: Tensor) -> float:
    """‖aggregate − centre‖₂ in float64; −inf when the aggregate is not finite.

    A non-finite aggregate scores lowest because the server skips such a step (no damage done).
    """
    value = float((aggregate.to(torch.float64) - centre.to(torch.float64)).norm())
    return value if math.isfinite(value) else -math.inf


def search_scale(
    defender: Callable[[Tensor], Tensor], centre: Tensor, candidate: Callable[[float], Tensor], grid: Sequence[float]
) -> tuple[float, Tensor]:
    """The scale s of ``grid`` maximising ‖defender(candidate(s)) − centre‖, and its block.

    ``candidate(s)`` is the (B, L) block of Byzantine messages for scale s. The grid is scanned in
    the given order and a later scale replaces the best only when strictly better, so ties go to the
    earliest (for an increasing grid: the smallest) scale, and the result is deterministic. When
    every scale gives a non-finite aggregate, the first scale is returned.
    """
    if len(grid) == 0:
        raise ValueError("empty scale grid")
    best_scale, best_block, best_dev = None, None, -math.inf
    for s in grid:
        block = candidate(s)
        dev = deviation(defender(block), centre)
        if best_block is None or dev > best_dev:
            best_scale, best_block, best_dev = s, block, dev
    return float(best_scale), best_block


def require_defender(ctx, name: str) -> Callable[[Tensor], Tensor]:
    """``ctx.defender``, or a clear error naming the attack when the server gave none."""
    if ctx.defender is None:
        raise ConfigError(
            "attack.name",
            f"{name!r} searches its scale against the server's aggregator, but "
            "this AttackContext has no defender (omniscient threat model only)",
        )
    return ctx.defender
