"""Fall of Empires (FOE): IPM with its scale searched against the defender's aggregator."""

from __future__ import annotations

from torch import Tensor

from ..params import Param
from .ipm import ipm
from .registry import Attack, AttackContext, register_attack
from .scale_search import GRIDS, ScaleSearch, maximise_harm, require_defender, search_grid


def foe_search(ctx: AttackContext, grid: list[float], *, zoom: int = 0, refine: int = 0) -> ScaleSearch:
    """The η maximising harm(η) = ‖Agg(honest ∪ byz(η)) − μ‖, byz(η) = −η·μ for every Byzantine:
    a scan of ``grid``, ``zoom`` finer points in its high-harm region, then ``refine``
    line-search calls (:func:`maximise_harm`).

    μ is the mean of the round's honest messages (the Byzantines' own when none arrived). Agg is the
    server's actual pipeline (``ctx.defender``: what the server aggregates, pre-aggregators, rule,
    validation and the effective f included). Ties → the first scanned η; non-finite aggregates
    score lowest. Deterministic.
    Reference: Xie, Koyejo, Gupta, UAI 2020; the η search as in the RoSDHB code (Gupta et al.,
    AISTATS 2026: trimmed mean, 50 values 0.1…5.0) and the line maximisation of Allouah et al.
    2023 ("optimal" FOE).
    """
    defender = require_defender(ctx, "foe")
    mu = ctx.honest_mean()
    b = ctx.n_byzantine
    return maximise_harm(
        defender, mu, lambda eta: ipm(mu, eps=eta).expand(b, -1).clone(), grid, zoom=zoom, refine=refine
    )


def foe(ctx: AttackContext, grid: list[float], *, zoom: int = 0, refine: int = 0) -> tuple[float, Tensor]:
    """(η, block) of :func:`foe_search`; with ``zoom`` = ``refine`` = 0 the best η of ``grid`` itself."""
    found = foe_search(ctx, grid, zoom=zoom, refine=refine)
    return found.scale, found.block


def _build(
    ctx: AttackContext,
    *,
    eta_min: float,
    eta_max: float,
    eta_steps: int,
    grid: str = "log",
    zoom: int = 32,
    refine: int = 24,
) -> Tensor:
    return foe_search(
        ctx, search_grid(eta_min, eta_max, eta_steps, grid, field="attack.eta"), zoom=zoom, refine=refine
    ).block


register_attack(
    Attack(
        "foe",
        _build,
        "Fall of empires: -eta*mu with eta searched (grid 0 and log-spaced 1e-3..1e3, a finer scan of its "
        "high-harm region, then a line search) to "
        "maximise the deviation of the server's actual aggregate from mu (omniscient only).",
        params={
            "eta_min": Param(
                "eta_min", float, 1e-3, "smallest positive eta of the grid (0 is always tried)", minimum=0.0
            ),
            "eta_max": Param("eta_max", float, 1e3, "largest eta of the grid", minimum=0.0),
            "eta_steps": Param("eta_steps", int, 24, "number of positive eta values of the grid", minimum=1),
            "grid": Param(
                "grid",
                str,
                "log",
                "log: 0 and eta_steps log-spaced values; linear: eta_steps evenly spaced values (the RoSDHB "
                "code: 0.1..5.0, 50 steps, refine 0)",
                choices=GRIDS,
            ),
            "zoom": Param("zoom", int, 32, "defender calls of a finer scan where the grid sees high harm", minimum=0),
            "refine": Param("refine", int, 24, "defender calls of the line search after the scans", minimum=0),
        },
        needs_defender=True,
    )
)
