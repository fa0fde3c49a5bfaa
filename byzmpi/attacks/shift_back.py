"""Shift-back (SHB, Malinovsky et al., NeurIPS 2024: Byz-VR-MARINA-PP)."""

from __future__ import annotations

from torch import Tensor

from ..errors import ConfigError
from ..params import Param
from .registry import Attack, AttackContext, register_attack


def strict_majority(n_byzantine: int, m: int) -> bool:
    """The Byzantines are a strict majority of the m sampled clients: B > m − B, i.e. 2B > m."""
    return 2 * n_byzantine > m


def shift_back_vector(model: Tensor, x0: Tensor, lr: float, *, mult: float = 1.0) -> Tensor:
    """mult·(x^k − x⁰)/γ: the message that, aggregated alone, moves the model back to x⁰.

    Convention: the method steps x^{k+1} = x^k − γ·Agg (the contract of ``Method.trajectory``), so
    Agg = (x^k − x⁰)/γ gives x^{k+1} = x⁰; ``mult`` = 2 reflects x to 2x⁰ − x^k (the paper's MNIST
    scripts). The Byz-VR-MARINA-PP code writes it as (mult/γ)·(x^k − x⁰) with mult = γ on a9a,
    i.e. x^k − x⁰; byzmpi's mult is relative to 1/γ, so its mult = 1 is a full shift back.
    """
    return (model - x0) * (mult / lr)


def shift_back(ctx: AttackContext, *, mult: float = 1.0) -> Tensor:
    """Shift-back: when the sampled Byzantines are a strict majority of the round's m sampled
    clients (2B > m), every Byzantine sends mult·(x^k − x⁰)/γ; otherwise each behaves honestly and
    sends its own honest message.

    m counts every sampled client, before validation; x^k, x⁰ and γ come from the method's
    ``trajectory`` (``ctx.model``, ``ctx.x0``, ``ctx.lr``). Raises ConfigError when the method
    does not expose them.
    Reference: Malinovsky, Richtárik, Horváth, Gorbunov, "Byzantine robustness and partial
    participation can be achieved at once: just clip gradient differences", NeurIPS 2024
    (arXiv 2311.14127), the SHB attack; docs/algorithms.md §7 and §4.4.
    """
    if not strict_majority(ctx.n_byzantine, ctx.m):
        return ctx.own.clone()
    if ctx.model is None or ctx.x0 is None or ctx.lr is None:
        raise ConfigError(
            "attack.name",
            "'shift_back' needs the model trajectory (x^k, x^0, step size), "
            "which this method does not expose (Method.trajectory)",
        )
    vec = shift_back_vector(ctx.model, ctx.x0, float(ctx.lr), mult=mult)
    if vec.shape[-1] != ctx.own.shape[-1]:
        raise ConfigError(
            "attack.name",
            f"'shift_back' sends a model-sized vector ({vec.shape[-1]}), but this "
            f"method's messages have length {ctx.own.shape[-1]}",
        )
    return vec.to(ctx.own).expand(ctx.n_byzantine, -1).clone()


register_attack(
    Attack(
        "shift_back",
        shift_back,
        "When Byzantines are a strict majority of the sampled set, send mult*(x^k - x^0)/lr (moves "
        "the model back to x^0); otherwise behave honestly (omniscient only).",
        params={"mult": Param("mult", float, 1.0, "multiple of the full shift back (2 reflects x to 2x^0 - x^k)")},
        needs_trajectory=True,
    )
)
