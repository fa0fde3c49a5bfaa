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
    """mult·(p − x⁰)/γ: the vector that, as the aggregate, moves the model to p − mult·(p − x⁰).

    p is the point the aggregate's step is taken from (the next model is p − γ·Agg: the contract
    of ``Method.trajectory``; in the estimator space of Byz-VR-MARINA(-PP), p = x^{k+1} and the
    attack vector replaces g^{k+1}). This is the official code's semantics ([C-PP]
    ``ShiftBackAttacker``: ``mult / lr * (x − x⁰)``): mult = 1 moves the model back to x⁰, mult = 2
    reflects it to 2x⁰ − p (the MNIST scripts), mult = γ sends x − x⁰ (the a9a scripts'
    ``multiplier='lr'``).
    """
    return (model - x0) * (mult / lr)


HONEST_CASES = ("mean", "own")


def shift_back(ctx: AttackContext, *, mult: float = 1.0, honest: str = "mean") -> Tensor:
    """Shift-back, the variant of the official code [C-PP] by default.

    * Majority round (the sampled Byzantines are a strict majority of the round's m sampled
      clients, 2B > m, i.e. byz > good as in [C-PP]): every Byzantine sends
      mult·(p − x⁰)/γ (:func:`shift_back_vector`), so a full-weight aggregate of it gives the
      outcome p − mult·(p − x⁰) (x⁰ for mult = 1).
    * Otherwise, ``honest = "mean"`` ([C-PP], default): every Byzantine sends the mean of the
      round's honest messages (which leaves the mean aggregate unchanged); ``honest = "own"`` (the
      paper's wording "behaves honestly"): each sends its own honest message.

    m counts every sampled client, before validation; p, x⁰ and γ come from the method's
    ``trajectory`` (``ctx.model``, ``ctx.x0``, ``ctx.lr``). Raises ConfigError when the method
    does not expose them.
    Reference: Malinovsky, Richtárik, Horváth, Gorbunov, "Byzantine robustness and partial
    participation can be achieved at once: just clip gradient differences", NeurIPS 2024
    (arXiv 2311.14127), the SHB attack; code SamuelHorvath/VR_Byzantine, branch
    partial_participation, attacks/shiftback.py; docs/algorithms.md §7 and §4.4.
    """
    if honest not in HONEST_CASES:
        raise ConfigError("attack.honest", f"must be one of {HONEST_CASES} (got {honest!r})")
    if not strict_majority(ctx.n_byzantine, ctx.m):
        if honest == "own":
            return ctx.own.clone()
        return ctx.honest_mean().to(ctx.own).expand(ctx.n_byzantine, -1).clone()
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
        "Shift-back as the Byz-VR-MARINA-PP code: when Byzantines are a strict majority of the sampled set, "
        "send mult*(x - x^0)/lr (mult = 1: back to x^0); otherwise send the mean of the honest messages "
        "(omniscient only).",
        params={
            "mult": Param(
                "mult",
                float,
                1.0,
                "the code's multiplier: send mult*(x - x^0)/lr (1: back to x^0; 2: reflect to 2x^0 - x, the MNIST "
                "scripts; lr: x - x^0, the a9a scripts)",
            ),
            "honest": Param(
                "honest",
                str,
                "mean",
                "non-majority rounds: mean of the honest messages (the code) or own honest message (the paper's "
                "wording)",
                choices=HONEST_CASES,
            ),
        },
        needs_trajectory=True,
    )
)
