"""Mimic (Karimireddy, He, Jaggi, ICLR 2022)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..params import Param
from .registry import Attack, AttackContext, LocalContext, register_attack

MIMIC_RULES = ("first", "max_variance")

#: relative tolerance under which two projections count as tied (→ lowest index)
_TIE = 1e-9


def mimic_target(honest: Tensor, *, rule: str = "first") -> int:
    """The row of ``honest`` (G, L) that every Byzantine copies.

    * ``"first"``: row 0, the honest client with the lowest id among those received (rows follow
      the sorted sample). Under full participation this is one fixed client every round, as in the
      original code's ``MimicAttacker(target_rank)``.
    * ``"max_variance"``: the honest message farthest from μ along the direction of largest
      variance of the round's honest messages, i* = argmax_i |⟨z, h_i − μ⟩| with z the top
      principal direction, computed from the centred Gram matrix C·Cᵀ (one GEMM and a G×G
      eigendecomposition in float64; |u_i| of its top eigenvector is proportional to the
      projection). This is the per-round, stateless form of the paper's "mimic variant", which
      estimates z over warm-up rounds. Ties (relative 1e-9) and a zero spread → the lowest index.
    """
    if honest.shape[0] == 0:
        raise ValueError("mimic needs at least one honest vector")
    if rule == "first" or honest.shape[0] == 1:
        return 0
    if rule != "max_variance":
        raise ValueError(f"unknown mimic rule {rule!r}; one of {', '.join(MIMIC_RULES)}")
    c = honest.to(torch.float64)
    c = c - c.mean(0)
    values, vectors = torch.linalg.eigh(c @ c.T)
    if not float(values[-1]) > 0.0:
        return 0
    score = vectors[:, -1].abs()
    return int(torch.nonzero(score >= score.max() * (1.0 - _TIE))[0, 0])


def mimic(honest: Tensor, *, rule: str = "first") -> Tensor:
    """The honest message every Byzantine copies (see :func:`mimic_target` for the rule).

    Convention: all Byzantines send the same copy of one honest client's message, which
    over-weights that client's data under heterogeneity without ever looking like an outlier.
    Reference: Karimireddy, He, Jaggi, "Byzantine-robust learning on heterogeneous datasets via
    bucketing", ICLR 2022 (the "mimic" attack).
    """
    return honest[mimic_target(honest, rule=rule)]


def _build(ctx: AttackContext, *, rule: str) -> Tensor:
    """Omniscient: copy an honest message of the round (the Byzantines' own if none arrived)."""
    return mimic(ctx.reference(), rule=rule).expand(ctx.n_byzantine, -1).clone()


def _local(ctx: LocalContext, *, rule: str) -> Tensor:
    """Local: the coalition cannot see honest clients' messages, so every sampled Byzantine sends
    the same vector, the coalition mean of their own honest messages (``rule`` is not used)."""
    assert ctx.coalition is not None  # the attack declares needs_coalition
    return ctx.coalition.mean.to(ctx.own).expand(ctx.own.shape[0], -1).clone()


register_attack(
    Attack(
        "mimic",
        _build,
        "Every Byzantine copies one honest client's message (Karimireddy et al. 2022); locally: the "
        "coalition mean of the Byzantines' own honest messages.",
        params={
            "rule": Param(
                "rule",
                str,
                "first",
                "which honest message to copy: the lowest-id one "
                "received, or the extreme one along the top principal direction",
                choices=MIMIC_RULES,
            )
        },
        local=_local,
        needs_coalition=True,
    )
)
