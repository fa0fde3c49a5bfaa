"""Inner-product manipulation (IPM, Xie et al., UAI 2020)."""

from __future__ import annotations

from torch import Tensor

from ..params import Param
from .registry import Attack, AttackContext, LocalContext, register_attack


def ipm(mean: Tensor, *, eps: float) -> Tensor:
    """−ε·μ, with μ the mean of the honest messages.

    Convention: every Byzantine sends the same vector; default ε = 0.1 (as in the Byz-VR-MARINA
    code). With a mean aggregator the inner product ⟨aggregate, μ⟩ turns negative once
    B·ε > G (B Byzantine, G honest messages).
    Reference: Xie, Koyejo, Gupta, "Fall of empires: breaking Byzantine-tolerant SGD by inner
    product manipulation", UAI 2020.
    """
    return -eps * mean


def _build(ctx: AttackContext, *, eps: float) -> Tensor:
    """Omniscient: μ over the round's honest messages (the Byzantines' own if none arrived)."""
    return ipm(ctx.honest_mean(), eps=eps).expand(ctx.n_byzantine, -1).clone()


def _local(ctx: LocalContext, *, eps: float) -> Tensor:
    """Local: μ estimated by the coalition mean of the sampled Byzantines' honest messages."""
    assert ctx.coalition is not None  # the attack declares needs_coalition
    return ipm(ctx.coalition.mean, eps=eps).to(ctx.own).expand(ctx.own.shape[0], -1).clone()


register_attack(
    Attack(
        "ipm",
        _build,
        "Inner-product manipulation: every Byzantine sends -eps * mean(honest) (Xie et al. 2020).",
        params={"eps": Param("eps", float, 0.1, "scale epsilon of -eps*mu", minimum=0.0)},
        local=_local,
        needs_coalition=True,
    )
)
