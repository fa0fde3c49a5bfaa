"""Search over an attack's scale against the defender's actual aggregator.

Shared by FOE (IPM with a searched ε) and ALIE with a searched z: the attacker scores a scale s by
the harm ‖Agg(honest ∪ byz(s)) − μ‖ (μ the honest mean, Agg the server's real pipeline through
``AttackContext.defender``), scans a grid wide enough to contain the worst case (by default 0 and
log-spaced magnitudes 10⁻³ … 10³, both signs where the attack has two), scans the high-harm region
of that grid more finely, then refines the best points with an expansion/contraction line search,
the method of the literature's optimised FOE/ALIE (Allouah et al., "Fixing by mixing", AISTATS
2023; the byzfl library's LineMaximize: a line maximisation of the same harm).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError


def scale_grid(low: float, high: float, steps: int, *, field: str = "attack") -> list[float]:
    """``steps`` evenly spaced scales from ``low`` to ``high`` inclusive (``[low]`` when steps = 1).

    The RoSDHB code's η grid is scale_grid(0.1, 5.0, 50) = {0.1, 0.2, …, 5.0} (FOE with
    ``grid = "linear"``, zoom = refine = 0).
    """
    if steps < 1:
        raise ConfigError(f"{field}_steps", f"must be >= 1 (got {steps})")
    if low > high:
        raise ConfigError(f"{field}_max", f"must be >= {field}_min (got {high!r} < {low!r})")
    if steps == 1:
        return [float(low)]
    return [float(v) for v in np.linspace(low, high, steps)]


def log_scale_grid(
    smallest: float, largest: float, steps: int, *, signed: bool = False, field: str = "attack"
) -> list[float]:
    """0, then ``steps`` log-spaced magnitudes from ``smallest`` to ``largest`` (and, when
    ``signed``, each magnitude's negative right after it), in that scan order.

    Scan order matters for ties: :func:`maximise_harm` keeps the first best, i.e. the smallest
    |s| (positive before negative). The default search grid (1e-3, 1e3, 24) has ratio 10^(6/23)
    ≈ 1.82 between neighbours.
    """
    if steps < 1:
        raise ConfigError(f"{field}_steps", f"must be >= 1 (got {steps})")
    if not smallest > 0.0:
        raise ConfigError(f"{field}_min", f"must be > 0 for a log grid (got {smallest!r}; 0 is always tried)")
    if largest < smallest:
        raise ConfigError(f"{field}_max", f"must be >= {field}_min (got {largest!r} < {smallest!r})")
    grid = [0.0]
    mags = [float(smallest)] if steps == 1 else [float(v) for v in np.geomspace(smallest, largest, steps)]
    for v in mags:
        grid.extend((v, -v) if signed else (v,))
    return grid


#: kinds of grid: "log" (0 and log-spaced magnitudes, the default) or "linear" (evenly spaced)
GRIDS = ("log", "linear")


def search_grid(low: float, high: float, steps: int, kind: str, *, signed: bool = False, field: str) -> list[float]:
    """The scan grid of a search attack: :func:`log_scale_grid` (0, then ``steps`` magnitudes
    ``low`` … ``high``, both signs when ``signed``) or, for ``kind = "linear"``,
    :func:`scale_grid` (``steps`` values ``low`` … ``high``, with their negatives when ``signed``)."""
    if kind == "log":
        return log_scale_grid(low, high, steps, signed=signed, field=field)
    if kind != "linear":
        raise ConfigError(f"{field}_grid", f"must be one of {GRIDS} (got {kind!r})")
    grid = scale_grid(low, high, steps, field=field)
    return grid + [-v for v in grid if v != 0.0] if signed else grid


def deviation(aggregate: Tensor, centre: Tensor) -> float:
    """‖aggregate − centre‖₂ in float64; −inf when the aggregate is not finite.

    A non-finite aggregate scores lowest because the server skips such a step (no damage done).
    """
    value = float((aggregate.to(torch.float64) - centre.to(torch.float64)).norm())
    return value if math.isfinite(value) else -math.inf


@dataclass(frozen=True)
class ScaleSearch:
    """The outcome of :func:`maximise_harm`: the chosen scale, its (B, L) block, its harm
    ‖Agg − μ‖ (−inf when non-finite) and the number of defender calls it took."""

    scale: float
    block: Tensor
    harm: float
    calls: int


def _between(lo: float, hi: float, count: int) -> list[float]:
    """``count`` points strictly inside (lo, hi): geometrically spaced when lo and hi are non-zero
    and of one sign, evenly spaced otherwise."""
    if count <= 0 or not lo < hi:
        return []
    if lo * hi > 0:
        pts = np.geomspace(abs(lo), abs(hi), count + 2)[1:-1]
        return [float(v) if lo > 0 else -float(v) for v in pts]
    return [float(v) for v in np.linspace(lo, hi, count + 2)[1:-1]]


def maximise_harm(
    defender: Callable[[Tensor], Tensor],
    centre: Tensor,
    candidate: Callable[[float], Tensor],
    grid: Sequence[float],
    *,
    zoom: int = 0,
    refine: int = 0,
    starts: int = 3,
    region: float = 0.2,
) -> ScaleSearch:
    """The scale s maximising harm(s) = ‖defender(candidate(s)) − centre‖: a grid scan, a finer scan
    of its high-harm region, then line searches from the best points found.

    1. Scan: every s of ``grid`` in the given order; a later scale replaces the best only when
       strictly better (ties → the earliest scanned; non-finite aggregates score −inf).
    2. Zoom (``zoom`` > 0 calls): a finer scan of the high-harm region, the grid points whose
       harm is within a fraction ``region`` of the best (harm ≥ best − region·|best|): the gaps
       between neighbouring grid points next to such a point share the calls evenly (the most
       harmful gaps, by their better end, first when there are more gaps than calls), the points
       of a gap spaced geometrically (evenly when it holds 0).
    3. Refine (``refine`` > 0 calls): from ``starts`` seeds, the most harmful local maxima of all
       the points scanned (better than the left neighbour, at least as good as the right one),
       then the most harmful other points (ties → scan order; the first gets half the calls, the
       others share the rest), an
       expansion/contraction line search (as the literature's "line maximize"): from x = s*, with
       δ = (s⁺ − s⁻)/4 (s⁻, s⁺ its neighbours among the points scanned), try x + δ then x − δ
       (inside the grid's range); on a strict improvement move there and double δ (expansion),
       otherwise halve it (contraction); points already tried are not evaluated again; stop when
       the calls are spent or δ < 1e-12·max(1, |x|).

    The harm is piecewise smooth in s, often a sawtooth: it rises with s until the defender starts
    filtering the Byzantine vectors or selects differently (a downward jump), can have narrow
    windows where a selection rule (Krum, Bulyan, CAF, behind bucketing) briefly picks them, and
    several peaks (e.g. both signs of ALIE's z). The zoom looks for such windows and ramps
    everywhere the coarse grid sees high harm; the contraction converges to a jump from its
    harmful side.

    Deterministic; the result is never less harmful than the best grid point. Defender calls:
    len(grid) + at most ``zoom`` + at most ``refine``. ``candidate(s)`` is the
    (B, L) block of Byzantine messages for scale s.
    """
    if len(grid) == 0:
        raise ValueError("empty scale grid")
    calls = 0
    scanned: dict[float, float] = {}  # harm of every point tried (keys rounded to 12 digits)
    order: dict[float, int] = {}  # scan order, for ties
    best: list[Any] = [None, None, -math.inf]  # scale, block, harm

    def key(s: float) -> float:
        return float(f"{s:.12g}")

    def harm(s: float) -> float:
        nonlocal calls
        k = key(s)
        if k in scanned:
            return scanned[k]
        calls += 1
        block = candidate(s)
        dev = deviation(defender(block), centre)
        scanned[k], order[k] = dev, len(order)
        if best[1] is None or dev > best[2]:
            best[:] = [float(s), block, dev]
        return dev

    def top(n: int) -> list[float]:
        """The n most harmful local maxima of the points scanned so far (in sorted order: better
        than the left neighbour, at least as good as the right one), then the most harmful other
        points; ties → scan order."""
        pts = sorted(scanned)
        devs = [scanned[k] for k in pts]
        last = len(pts) - 1
        peak = [(i == 0 or devs[i] > devs[i - 1]) and (i == last or devs[i] >= devs[i + 1]) for i in range(len(pts))]
        ranked = sorted(range(len(pts)), key=lambda i: (not peak[i], -devs[i], order[pts[i]]))
        return [pts[i] for i in ranked[:n]]

    def bracket(k: float, points: list[float]) -> tuple[float, float]:
        i = points.index(k)
        return points[max(i - 1, 0)], points[min(i + 1, len(points) - 1)]

    for s in grid:
        harm(float(s))
    if len(scanned) < 2:
        return ScaleSearch(best[0], best[1], best[2], calls)
    n_starts = max(1, starts)
    if zoom > 0 and best[2] > -math.inf:
        coarse = sorted(scanned)
        devs = [scanned[k] for k in coarse]
        level = best[2] - (1.0 - region) * abs(best[2])
        in_region = [i for i, v in enumerate(devs) if v >= level]
        # the gaps (i, i + 1) of the coarse grid next to a point of the high-harm region, most
        # harmful first (by the better end, then the other end, then position)
        gaps = sorted(
            {g for i in in_region for g in (i - 1, i) if 0 <= g < len(coarse) - 1},
            key=lambda g: (-max(devs[g], devs[g + 1]), -min(devs[g], devs[g + 1]), g),
        )
        per_gap, extra = divmod(zoom, len(gaps)) if len(gaps) <= zoom else (0, zoom)
        for r, g in enumerate(gaps):
            for s in _between(coarse[g], coarse[g + 1], per_gap + (1 if r < extra else 0)):
                harm(s)
    if refine > 0:
        points = sorted(scanned)
        seeds = [k for k in top(n_starts) if scanned[k] > -math.inf] or top(1)
        others = (refine // 2) // (len(seeds) - 1) if len(seeds) > 1 else 0
        budgets = [refine - others * (len(seeds) - 1)] + [others] * (len(seeds) - 1)
        low, high = points[0], points[-1]
        for k, budget in zip(seeds, budgets):
            lo, hi = bracket(k, points)
            x, x_dev = k, scanned[k]
            delta = (hi - lo) / 4
            start_calls = calls
            while calls - start_calls < budget and delta > 1e-12 * max(1.0, abs(x)):
                moved = False
                for cand in (x + delta, x - delta):
                    if calls - start_calls >= budget or not low <= cand <= high:
                        continue
                    dev = harm(cand)
                    if dev > x_dev:
                        x, x_dev, moved = cand, dev, True
                        break
                delta = 2 * delta if moved else delta / 2
    return ScaleSearch(best[0], best[1], best[2], calls)


def search_scale(
    defender: Callable[[Tensor], Tensor],
    centre: Tensor,
    candidate: Callable[[float], Tensor],
    grid: Sequence[float],
    *,
    zoom: int = 0,
    refine: int = 0,
) -> tuple[float, Tensor]:
    """(scale, block) of :func:`maximise_harm`. With ``zoom`` = ``refine`` = 0: the scale of ``grid`` maximising
    ‖defender(candidate(s)) − centre‖, ties to the earliest scanned (for an increasing grid: the
    smallest); when every scale gives a non-finite aggregate, the first scale is returned."""
    found = maximise_harm(defender, centre, candidate, grid, zoom=zoom, refine=refine)
    return found.scale, found.block


def require_defender(ctx: Any, name: str) -> Callable[[Tensor], Tensor]:
    """``ctx.defender``, or a clear error naming the attack when the server gave none."""
    if ctx.defender is None:
        raise ConfigError(
            "attack.name",
            f"{name!r} searches its scale against the server's aggregator, but "
            "this AttackContext has no defender (omniscient threat model only)",
        )
    defender: Callable[[Tensor], Tensor] = ctx.defender
    return defender
