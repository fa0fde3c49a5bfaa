"""A Little Is Enough (ALIE, Baruch et al., NeurIPS 2019)."""

from __future__ import annotations

import math
import warnings
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
    """σ: the per-coordinate standard deviation of the rows of ``x`` (ddof = 1); 0 for one row.

    σ_j = sqrt(Σ_i (x_ij − μ_j)² / (m − 1)), μ = the row mean: the two-pass formula, accumulated
    one row at a time into one buffer (m − 1 ≥ 1). ``Tensor.std(0)`` computes the same but its
    reduction across a short leading dimension is about 10× slower on the CPU (1.4 s against 0.14 s
    for m = 4 rows of ResNet-18's d = 1.1e7: it dominated a ResNet-18 round's aggregation,
    benchmarks/results/round_split.json).
    """
    m = x.shape[0]
    if m <= 1:
        return torch.zeros_like(x[0])
    mu = x.mean(0)
    acc, dev = torch.zeros_like(mu), torch.empty_like(mu)
    for i in range(m):
        torch.sub(x[i], mu, out=dev)
        acc.addcmul_(dev, dev)
    return acc.div_(m - 1).sqrt_()


def alie(honest: Tensor, *, z: float) -> Tensor:
    """μ − z·σ coordinate-wise, with μ the mean and σ the standard deviation (ddof = 1) of the
    honest vectors; σ = 0 when there is a single honest vector.

    Convention: every Byzantine sends this same vector; z defaults to :func:`alie_z` of the global
    (n, f) (:func:`default_z`).
    Reference: Baruch, Baruch, Goldberg, "A little is enough", NeurIPS 2019.
    """
    return honest.mean(0) - z * coordinate_std(honest)


Z_FROM = ("global", "round")


def default_z(ctx: AttackContext | LocalContext, z_from: str = "global") -> float:
    """ALIE's default z for this round: :func:`alie_z` of the global (n, f) or of the round's (m, b).

    ``z_from = "global"`` (default): z = alie_z(n, f) with n the population's clients and f its
    Byzantine clients (``ctx.n_clients``, ``ctx.f_global``), as the official codes compute it once
    for the run (Byz-VR-MARINA(-PP) code: z(20, 5) = 0.2533 under partial participation too).
    ``z_from = "round"``: z = alie_z(m, b) from the round's m messages and b sampled Byzantines
    (under partial participation with C = 4 this gives z(4, 1) = −0.431, z(4, 2) = z(4, 3) = 0).
    When the context does not carry (n, f), "global" falls back to the round's (m, b) with a
    RuntimeWarning.
    """
    if z_from not in Z_FROM:
        raise ValueError(f"z_from must be one of {Z_FROM}, got {z_from!r}")
    if z_from == "global":
        if ctx.n_clients is not None and ctx.f_global is not None:
            return alie_z(int(ctx.n_clients), int(ctx.f_global))
        warnings.warn(
            "byzmpi: ALIE z_from='global' but the attack context has no (n_clients, f_global); "
            "using the round's (m, b)",
            RuntimeWarning,
            stacklevel=3,
        )
    return alie_z(ctx.m, ctx.n_byzantine)


def _build(ctx: AttackContext, *, z: float | None, z_from: str = "global") -> Tensor:
    if z is None:
        z = default_z(ctx, z_from)
    return alie(ctx.reference(), z=z).expand(ctx.n_byzantine, -1).clone()


def _local(ctx: LocalContext, *, z: float | None, z_from: str = "global") -> Tensor:
    """ALIE estimated from the coalition's own honest messages (μ_c − z·σ_c)."""
    if z is None:
        z = default_z(ctx, z_from)
    stats = ctx.coalition
    assert stats is not None  # the attack declares needs_coalition
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
                "fixed z; default Phi^-1((G-s)/G), G = N - F, s = floor(N/2+1) - F, (N, F) as z_from says",
                nullable=True,
            ),
            "z_from": Param(
                "z_from",
                str,
                "global",
                "(N, F) of the default z: the population's clients and Byzantine clients (global, as the "
                "official codes) or the round's m messages and b Byzantine (round)",
                choices=Z_FROM,
            ),
        },
        local=_local,
        needs_coalition=True,
    )
)
