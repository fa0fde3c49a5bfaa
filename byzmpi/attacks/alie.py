"""A Little Is Enough (ALIE, Baruch et al., NeurIPS 2019)."""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import Tensor

from ..params import Param
from .registry import Attack, AttackContext, LocalContext, register_attack


def alie_z(n: int, f: int) -> float:
    """The default ALIE factor z = Φ⁻¹((G − s)/G) with G = n − f and s = ⌊n/2 + 1⌋ − f.

    (Baruch et al. 2019; as in the Byz-VR-MARINA code.) Examples: z(20, 5) ≈ 0.2533, z(5, 1) = 0.
    Where the formula degenerates (no honest input, or a probability outside (0, 1)), z = 0.
    """
    g = n - f
    if g <= 0:
        return 0.0
    s = math.floor(n / 2 + 1) - f
    prob = (g - s) / g
    if not 0.0 < prob < 1.0:
        return 0.0
    return NormalDist().inv_cdf(prob)


def coordinate_std(x: Tensor) -> Tensor:
    """σ: the per-coordinate standard deviation of the rows of ``x`` (ddof = 1); 0 for one row."""
    return x.std(0, correction=1) if x.shape[0] > 1 else torch.zeros_like(x[0])


def alie(honest: Tensor, *, z: float) -> Tensor:
    """μ − z·σ coordinate-wise, with μ the mean and σ the standard deviation (ddof = 1) of the
    honest vectors; σ = 0 when there is a single honest vector.

    Convention: every Byzantine sends this same vector; z defaults to :func:`alie_z`.
    Reference: Baruch, Baruch, Goldberg, "A little is enough", NeurIPS 2019.
    """
    return honest.mean(0) - z * coordinate_std(honest)


def _build(ctx: AttackContext, *, z: float | None) -> Tensor:
    if z is None:
        z = alie_z(ctx.m, ctx.n_byzantine)
    return alie(ctx.reference(), z=z).expand(ctx.n_byzantine, -1).clone()


def _local(ctx: LocalContext, *, z: float | None) -> Tensor:
    """ALIE estimated from the coalition's own honest messages (μ_c − z·σ_c)."""
    if z is None:
        z = alie_z(ctx.m, ctx.n_byzantine)
    stats = ctx.coalition
    return (stats.mean - z * stats.std).to(ctx.own).expand(ctx.own.shape[0], -1).clone()


register_attack(
    Attack(
        "alie",
        _build,
        "A little is enough: mu - z*sigma of the honest messages (Baruch et al. 2019).",
        params={
            "z": Param(
                "z",
                float,
                None,
                "fixed z; default Phi^-1((G-s)/G), s = floor(m/2+1) - b for the round's m messages and b Byzantine",
                nullable=True,
            ),
        },
        local=_local,
        needs_coalition=True,
    )
)
