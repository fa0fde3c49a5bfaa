"""Gaussian noise attack (Blanchard et al., NIPS 2017)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..params import Param
from .registry import Attack, AttackContext, LocalContext, register_attack


def gaussian(like: Tensor, *, std: float, generator: torch.Generator) -> Tensor:
    """A vector of N(0, std²·I) with the shape, dtype and device of ``like``."""
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device).mul_(std)


def _build(ctx: AttackContext | LocalContext, *, std: float) -> Tensor:
    out = torch.empty_like(ctx.own)
    for row, client in enumerate(ctx.clients):
        out[row] = gaussian(out[row], std=std, generator=ctx.generator(int(client)))
    return out


register_attack(
    Attack(
        "gaussian",
        _build,
        "Each Byzantine sends an independent draw of N(0, std^2 I) (Krum paper: std = 200).",
        params={"std": Param("std", float, 200.0, "standard deviation", minimum=0.0)},
        local=_build,
    )
)
