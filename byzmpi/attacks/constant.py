"""Constant payloads: NaN, +Inf, huge values, zeros.

NaN and +Inf exercise the server's validation (``byzmpi.validation.reject_codes``): such rows are
dropped from aggregation and counted, never silently zeroed. Huge finite values (1e38 by default,
still finite in float32) and zeros pass validation and test the robust rule itself.

The names carry a ``_payload`` suffix because a bare ``nan`` or ``inf`` is a TOML float, not a
string (``--set attack.name=nan`` would not name an attack).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..params import Param
from .registry import Attack, AttackContext, LocalContext, register_attack

#: the largest finite float32 (the wire dtype), the ceiling of the ``huge`` attack's value
FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def constant_payload(like: Tensor, value: float) -> Tensor:
    """A tensor with the shape, dtype and device of ``like``, every entry ``value``.

    Convention: every Byzantine sends it, in both threat models (it needs no knowledge).
    """
    return torch.full_like(like, value)


def _nan(ctx: AttackContext | LocalContext) -> Tensor:
    return constant_payload(ctx.own, math.nan)


def _inf(ctx: AttackContext | LocalContext) -> Tensor:
    return constant_payload(ctx.own, math.inf)


def _huge(ctx: AttackContext | LocalContext, *, value: float) -> Tensor:
    return constant_payload(ctx.own, value)


def _zeros(ctx: AttackContext | LocalContext) -> Tensor:
    return constant_payload(ctx.own, 0.0)


register_attack(
    Attack("nan_payload", _nan, "Send NaN everywhere: rejected by the server's validation and counted.", local=_nan)
)
register_attack(
    Attack("inf_payload", _inf, "Send +Inf everywhere: rejected by the server's validation and counted.", local=_inf)
)
register_attack(
    Attack(
        "huge_payload",
        _huge,
        "Send a huge finite value everywhere (1e38 by default): accepted, tests the rule.",
        params={
            "value": Param(
                "value",
                float,
                1e38,
                "the value of every coordinate; |value| <= float32 max keeps it finite on the wire",
                minimum=-FLOAT32_MAX,
                maximum=FLOAT32_MAX,
            )
        },
        local=_huge,
    )
)
register_attack(Attack("zero_payload", _zeros, "Send the zero vector: accepted, tests the rule.", local=_zeros))
