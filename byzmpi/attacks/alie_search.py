"""ALIE with its z searched against the defender's aggregator."""

from __future__ import annotations

from torch import Tensor

from ..params import Param
from .alie import coordinate_std
from .registry import Attack, AttackContext, register_attack
from .scale_search import require_defender, scale_grid, search_scale


def alie_search(ctx: AttackContext, grid: list[float]) -> tuple[float, Tensor]:
    """The (z, block) maximising ‖Agg(honest ∪ byz(z)) − μ‖ over ``grid``, byz(z) = μ − z·σ for
    every Byzantine.

    μ and σ (per coordinate, ddof = 1; 0 for a single vector) come from the round's honest
    messages (the Byzantines' own when none arrived). Agg is the server's actual pipeline
    (``ctx.defender``). Ties → the smallest z (first in the increasing grid); non-finite aggregates
    score lowest. Deterministic.
    Reference: Baruch, Baruch, Goldberg, "A little is enough", NeurIPS 2019 (fixed z); the search
    replaces the fixed z, as FOE does for IPM.
    """
    defender = require_defender(ctx, "alie_search")
    ref = ctx.reference()
    mu = ref.mean(0)
    sigma = coordinate_std(ref)
    b = ctx.n_byzantine
    return search_scale(defender, mu, lambda z: (mu - z * sigma).expand(b, -1).clone(), grid)


def _build(ctx: AttackContext, *, z_min: float, z_max: float, z_steps: int) -> Tensor:
    return alie_search(ctx, scale_grid(z_min, z_max, z_steps, field="attack.z"))[1]


register_attack(
    Attack(
        "alie_search",
        _build,
        "ALIE mu - z*sigma with z searched on a grid to maximise the deviation of the server's actual "
        "aggregate from mu (omniscient only).",
        params={
            "z_min": Param("z_min", float, 0.1, "smallest z of the grid", minimum=0.0),
            "z_max": Param("z_max", float, 5.0, "largest z of the grid", minimum=0.0),
            "z_steps": Param("z_steps", int, 50, "number of evenly spaced z values", minimum=1),
        },
        needs_defender=True,
    )
)
