"""ALIE with its z searched against the defender's aggregator."""

from __future__ import annotations

from torch import Tensor

from ..params import Param
from .alie import coordinate_std
from .registry import Attack, AttackContext, register_attack
from .scale_search import GRIDS, ScaleSearch, maximise_harm, require_defender, search_grid


def alie_harm_search(ctx: AttackContext, grid: list[float], *, zoom: int = 0, refine: int = 0) -> ScaleSearch:
    """The z maximising harm(z) = ‖Agg(honest ∪ byz(z)) − μ‖, byz(z) = μ − z·σ for every
    Byzantine: a scan of ``grid``, ``zoom`` finer points in its high-harm region, then ``refine``
    line-search calls (:func:`maximise_harm`).

    μ and σ (per coordinate, ddof = 1; 0 for a single vector) come from the round's honest
    messages (the Byzantines' own when none arrived). Agg is the server's actual pipeline
    (``ctx.defender``). z may be negative (μ + |z|σ): the grid should hold both signs. Ties → the
    first scanned z; non-finite aggregates score lowest. Deterministic.
    Reference: Baruch, Baruch, Goldberg, "A little is enough", NeurIPS 2019 (fixed z); the search
    replaces the fixed z, as the "optimal ALIE" of Allouah et al. 2023 (a line maximisation of
    the same harm) and as FOE does for IPM.
    """
    defender = require_defender(ctx, "alie_search")
    ref = ctx.reference()
    mu = ref.mean(0)
    sigma = coordinate_std(ref)
    b = ctx.n_byzantine
    return maximise_harm(defender, mu, lambda z: (mu - z * sigma).expand(b, -1).clone(), grid, zoom=zoom, refine=refine)


def alie_search(ctx: AttackContext, grid: list[float], *, zoom: int = 0, refine: int = 0) -> tuple[float, Tensor]:
    """(z, block) of :func:`alie_harm_search`; with ``zoom`` = ``refine`` = 0 the best z of ``grid`` itself."""
    found = alie_harm_search(ctx, grid, zoom=zoom, refine=refine)
    return found.scale, found.block


def _build(
    ctx: AttackContext,
    *,
    z_min: float,
    z_max: float,
    z_steps: int,
    signed: bool = True,
    grid: str = "log",
    zoom: int = 32,
    refine: int = 24,
) -> Tensor:
    scan = search_grid(z_min, z_max, z_steps, grid, signed=signed, field="attack.z")
    return alie_harm_search(ctx, scan, zoom=zoom, refine=refine).block


register_attack(
    Attack(
        "alie_search",
        _build,
        "ALIE mu - z*sigma with z searched (grid 0 and +-log-spaced 1e-3..1e3, a finer scan of its high-harm "
        "region, then a line search) to maximise "
        "the deviation of the server's actual aggregate from mu (omniscient only).",
        params={
            "z_min": Param("z_min", float, 1e-3, "smallest positive |z| of the grid (0 is always tried)", minimum=0.0),
            "z_max": Param("z_max", float, 1e3, "largest |z| of the grid", minimum=0.0),
            "z_steps": Param("z_steps", int, 24, "number of |z| values of the grid (per sign)", minimum=1),
            "signed": Param("signed", bool, True, "try both signs of z (mu + |z| sigma as well as mu - |z| sigma)"),
            "grid": Param(
                "grid", str, "log", "log: 0 and z_steps log-spaced |z|; linear: z_steps evenly spaced", choices=GRIDS
            ),
            "zoom": Param("zoom", int, 32, "defender calls of a finer scan where the grid sees high harm", minimum=0),
            "refine": Param("refine", int, 24, "defender calls of the line search after the scans", minimum=0),
        },
        needs_defender=True,
    )
)
