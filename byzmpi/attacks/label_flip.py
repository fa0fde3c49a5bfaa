"""Label flip (LF)."""

from __future__ import annotations

from torch import Tensor

from .registry import Attack, AttackContext, LocalContext, register_attack


def label_flip(ctx: AttackContext | LocalContext) -> Tensor:
    """The Byzantine's message, unchanged: it was already computed on flipped labels.

    Convention: the Byzantine runs the honest protocol on its own shard with labels
    y → C − 1 − y (C classes) or y → −y (±1 labels). The flip happens client-side, in the task's
    gradient (``Attack.flips_labels``), in both threat models; this function only passes the
    resulting message through, so ``own`` is returned as a copy.
    Reference: Allen-Zhu et al. 2020; Gorbunov et al. (Byz-VR-MARINA), ICLR 2023, [C-VR].
    """
    return ctx.own.clone()


register_attack(
    Attack(
        "label_flip",
        label_flip,
        "Honest protocol on flipped labels (y -> C-1-y, or -y for +-1 labels), computed by the client.",
        local=label_flip,
        flips_labels=True,
    )
)
