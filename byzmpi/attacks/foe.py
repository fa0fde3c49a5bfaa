"""Fall of Empires (FOE): IPM with its scale searched against the defender's aggregator."""

from __future__ import annotations

from torch import Tensor

from ..params import Param
from .ipm import ipm
from .registry import Attack, AttackContext, register_attack
from .scale_search import require_defender, scale_grid, search_scale


def foe(ctx: AttackContext, grid: list[float]) -> tuple[float, Tensor]:
    """The (η, block) maximising ‖Agg(honest ∪ byz(η)) − μ‖ over ``grid``, byz(η) = −η·μ for
    every Byzantine.

    μ is the mean of the round's honest messages (the Byzantines' own when none arrived). Agg is the
    server's actual pipeline (``ctx.defender``: pre-aggregators, rule, validation and the
    effective f included). Ties → the smallest η (first in the increasing grid); non-finite
    aggregates score lowest. Deterministic.
    Reference: Xie, Koyejo, Gupta, UAI 2020; the search over η as in the RoSDHB code
    (Gupta et al., AISTATS 2026), which uses the trimmed mean and 50 values 0.1…5.0.
    """
    defender = require_defender(ctx, "foe")
    mu = ctx.honest_mean()
    b = ctx.n_byzantine
    return search_scale(defender, mu, lambda eta: ipm(mu, eps=eta).expand(b, -1).clone(), grid)


def _build(ctx: AttackContext, *, eta_min: float, eta_max: float, eta_steps: int) -> Tensor:
    return foe(ctx, scale_grid(eta_min, eta_max, eta_steps, field="attack.eta"))[1]


register_attack(
    Attack(
        "foe",
        _build,
        "Fall of empires: -eta*mu with eta searched on a grid to maximise the deviation of the "
        "server's actual aggregate from mu (omniscient only).",
        params={
            "eta_min": Param("eta_min", float, 0.1, "smallest eta of the grid", minimum=0.0),
            "eta_max": Param("eta_max", float, 5.0, "largest eta of the grid", minimum=0.0),
            "eta_steps": Param("eta_steps", int, 50, "number of evenly spaced eta values", minimum=1),
        },
        needs_defender=True,
    )
)
