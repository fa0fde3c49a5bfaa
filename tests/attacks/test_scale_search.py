"""FOE and ALIE scale searches against toy defenders with hand-computed optima."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from byzmpi.aggregators import trimmed_mean
from byzmpi.attacks import ATTACKS, alie_search, deviation, foe, ipm, scale_grid, search_scale
from byzmpi.errors import ConfigError
from byzmpi.params import resolve_params

from .contexts import mean_defender, omniscient, t

DEFAULT_GRID = scale_grid(0.1, 5.0, 50)


def tm_defender(honest, trim):
    return lambda byz: trimmed_mean(torch.cat([honest, byz.to(honest.dtype)]), trim=trim)


def build(name, ctx, **params):
    attack = ATTACKS[name]
    return attack.build(ctx, **resolve_params(attack.params, params, "attack", name))


def test_default_grid_is_point_one_to_five():
    assert len(DEFAULT_GRID) == 50
    assert DEFAULT_GRID == pytest.approx([0.1 * i for i in range(1, 51)])
    assert scale_grid(2.0, 2.0, 1) == [2.0]
    with pytest.raises(ConfigError, match="attack.eta_max"):
        scale_grid(3.0, 1.0, 5, field="attack.eta")


def test_deviation_scores_non_finite_aggregates_lowest():
    assert deviation(t([3.0, 4.0]), t([0.0, 0.0])) == 5.0
    assert deviation(t([math.nan, 0.0]), t([0.0, 0.0])) == -math.inf
    assert deviation(t([math.inf, 0.0]), t([0.0, 0.0])) == -math.inf


def test_foe_against_the_mean_takes_the_largest_eta():
    # deviation of the mean = (B/m)(1 + η)‖μ‖: increasing in η
    honest = t([[1.0, 1.0], [1.0, -1.0]])
    ctx = omniscient(honest, torch.zeros(1, 2), defender=mean_defender(honest))
    eta, block = foe(ctx, DEFAULT_GRID)
    assert eta == pytest.approx(5.0)
    assert torch.allclose(block, t([[-5.0, 0.0]]))


def test_foe_against_a_norm_filter_takes_the_largest_eta_that_passes():
    # toy defender: the mean of the rows with norm <= 2.05. μ = [1, 0]; −ημ passes iff η <= 2.05,
    # and then moves the mean by (1 + η)/3; a filtered vector moves nothing. Best: η = 2.0.
    honest = t([[1.0, 1.0], [1.0, -1.0]])

    def defender(byz):
        x = torch.cat([honest, byz])
        return x[x.norm(dim=1) <= 2.05].mean(0)

    ctx = omniscient(honest, torch.zeros(1, 2), defender=defender)
    eta, block = foe(ctx, DEFAULT_GRID)
    assert eta == pytest.approx(2.0)
    assert torch.allclose(block, ipm(t([1.0, 0.0]), eps=eta).unsqueeze(0))
    # the registered attack with the RoSDHB code's grid (linear 0.1..5.0, 50 values, no refinement)
    assert torch.equal(
        build("foe", ctx, grid="linear", eta_min=0.1, eta_max=5.0, eta_steps=50, zoom=0, refine=0), block
    )


def test_foe_ties_go_to_the_smallest_eta():
    # honest 1..5 (μ = 3), two Byzantines at −3η < 1 are always the two smallest and trimmed:
    # TM = mean(1, 2, 3) = 2 for every η, deviation 1 → the first grid value
    honest = t([[1.0], [2.0], [3.0], [4.0], [5.0]])
    ctx = omniscient(honest, torch.zeros(2, 1), defender=tm_defender(honest, 2))
    eta, block = foe(ctx, DEFAULT_GRID)
    assert eta == pytest.approx(0.1)
    assert torch.allclose(block, t([[-0.3], [-0.3]]))


def test_alie_search_against_trimmed_mean():
    # honest 0..4: μ = 2, σ = √2.5. Two Byzantines at v = 2 − z√2.5, trimmed mean with trim 2 of 7
    # averages the middle three values:
    #   v in [1, 2]: (2v + 2)/3, deviation 2(2 − v)/3;   v in [0, 1]: (v + 3)/3, deviation (3 − v)/3;
    #   v <= 0: mean(0, 1, 2) = 1, deviation 1 (the maximum).
    # v <= 0 iff z >= 2/√2.5 = 1.2649..., so the smallest grid z reaching it is 1.3.
    honest = t([[0.0], [1.0], [2.0], [3.0], [4.0]])
    ctx = omniscient(honest, torch.zeros(2, 1), defender=tm_defender(honest, 2))
    z, block = alie_search(ctx, DEFAULT_GRID)
    assert z == pytest.approx(1.3)
    assert torch.allclose(block, t([[2.0 - 1.3 * math.sqrt(2.5)]] * 2))
    assert float(trimmed_mean(torch.cat([honest, block]), trim=2)) == 1.0
    linear = dict(grid="linear", z_min=0.1, z_max=5.0, z_steps=50, signed=False, zoom=0, refine=0)
    assert torch.equal(build("alie_search", ctx, **linear), block)


def test_search_returns_first_scale_when_every_aggregate_is_non_finite():
    scale, block = search_scale(
        lambda byz: torch.full((2,), math.nan),
        t([0.0, 0.0]),
        lambda s: torch.full((1, 2), s, dtype=torch.float64),
        [0.5, 1.0, 2.0],
    )
    assert scale == 0.5 and torch.equal(block, t([[0.5, 0.5]]))


def test_search_skips_scales_whose_aggregate_is_non_finite():
    # the mean "explodes" (NaN) beyond s = 1: the best finite scale wins
    def defender(byz):
        return torch.full((2,), math.nan) if float(byz.abs().max()) > 1.0 else byz.mean(0)

    scale, _ = search_scale(
        defender, t([0.0, 0.0]), lambda s: torch.full((1, 2), s, dtype=torch.float64), [0.5, 1.0, 2.0]
    )
    assert scale == 1.0


def test_search_attacks_need_a_defender():
    honest = t([[1.0], [2.0]])
    for name in ("foe", "alie_search"):
        assert ATTACKS[name].needs_defender and ATTACKS[name].local is None
        with pytest.raises(ConfigError, match="defender"):
            build(name, omniscient(honest, torch.zeros(1, 1)))


def test_search_is_deterministic_and_reads_only_what_it_is_given():
    honest = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ctx = omniscient(honest, torch.zeros(2, 5), defender=tm_defender(honest, 2))
    assert torch.equal(build("foe", ctx), build("foe", ctx))
    assert torch.equal(build("alie_search", ctx), build("alie_search", ctx))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), g=st.integers(3, 7), b=st.integers(1, 3), d=st.integers(1, 4))
def test_search_picks_a_maximiser_of_the_grid(seed, g, b, d):
    gen = torch.Generator().manual_seed(seed)
    honest = torch.randn(g, d, generator=gen, dtype=torch.float64) + 1.0
    trim = b if g + b > 2 * b else 0
    defender = tm_defender(honest, trim)
    ctx = omniscient(honest, torch.zeros(b, d), defender=defender)
    grid = scale_grid(0.1, 5.0, 12)
    mu = honest.mean(0)
    for search, make in (
        (foe, lambda s: ipm(mu, eps=s)),
        (alie_search, lambda s: mu - s * honest.std(0, correction=1)),
    ):
        chosen, block = search(ctx, grid)
        devs = [deviation(defender(make(s).expand(b, -1)), mu) for s in grid]
        best = max(devs)
        assert deviation(defender(block), mu) == pytest.approx(best, rel=1e-12, abs=1e-12)
        # ties → the smallest scale reaching the maximum
        assert chosen == grid[devs.index(best)]
