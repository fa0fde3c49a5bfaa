"""No attack: Byzantine clients send their honest message."""

from __future__ import annotations

from torch import Tensor

from .registry import Attack, AttackContext, register_attack


def _build(ctx: AttackContext) -> Tensor:
    return ctx.own.clone()


register_attack(
    Attack("none", _build, "No attack: Byzantine clients behave honestly.", local=lambda ctx: ctx.own.clone())
)
