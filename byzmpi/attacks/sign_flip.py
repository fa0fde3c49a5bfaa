"""Sign flip (bit flip, BF)."""

from __future__ import annotations

from torch import Tensor

from .registry import Attack, register_attack


def sign_flip(own: Tensor) -> Tensor:
    """Each Byzantine computes its honest message v_i and sends −v_i.

    Reference: Allen-Zhu et al. 2020; used in Gorbunov et al. (Byz-VR-MARINA), ICLR 2023.
    """
    return -own


register_attack(
    Attack(
        "sign_flip",
        lambda ctx: sign_flip(ctx.own),
        "Send the negation of the honest message.",
        local=lambda ctx: sign_flip(ctx.own),
    )
)
