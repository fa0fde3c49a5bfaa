"""Attacks as strong as the literature's (issue 11): ALIE's global z, wide scale searches with a
line-search refinement, shift-back as the Byz-VR-MARINA-PP code.

The searches are checked against a dense grid over the same range for every rule of the catalogue,
alone and behind bucketing and NNM: the chosen attack must be at least as harmful as the dense
grid's best point, up to ``DENSE_TOLERANCE``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from byzmpi.aggregators import RULES, Pipeline
from byzmpi.attacks import (
    ATTACKS,
    alie_harm_search,
    alie_z,
    coordinate_std,
    default_z,
    deviation,
    foe_search,
    ipm,
    log_scale_grid,
    maximise_harm,
    search_grid,
    shift_back_vector,
)
from byzmpi.errors import ConfigError
from byzmpi.params import resolve_params

from .contexts import local, mean_defender, omniscient, t

#: the search's harm must reach (1 − DENSE_TOLERANCE) × the dense grid's best harm (the case below:
#: seed 0, worst 0.995). Measured over 4 seeds × 12 rules × {none, bucketing, nnm} × {FOE, ALIE}
#: (288 cases): 278 at least as harmful as the dense grid, 284 within 2 %, median ratio 1.001; the
#: two exceptions are ALIE against Bulyan and CAF behind bucketing (0.934, 0.936), whose harm is
#: jagged in z (selection windows a few % wide between the search's points).
DENSE_TOLERANCE = 0.02
#: defender calls per round of the default searches: grid (0 and 24 magnitudes, ×2 signs for
#: ALIE) + zoom 32 + refine 24
FOE_CALLS, ALIE_CALLS = 25 + 32 + 24, 49 + 32 + 24


def params_of(name: str, **given):
    return resolve_params(ATTACKS[name].params, given, "attack", name)


def build(name: str, ctx, **given):
    return ATTACKS[name].build(ctx, **params_of(name, **given))


def build_local(name: str, ctx, **given):
    return ATTACKS[name].local(ctx, **params_of(name, **given))


def counting(defender):
    calls = [0]

    def wrapped(byz):
        calls[0] += 1
        return defender(byz)

    return wrapped, calls


# -- ALIE's z from the global (n, f) ----------------------------------------------------------------
HONEST = t([[0.0, 1.0], [3.0, 1.0], [6.0, 1.0]])  # μ = [3, 1], σ = [3, 0]


def test_alie_z_of_the_t4_setting():
    assert alie_z(20, 5) == pytest.approx(0.2533, abs=5e-5)  # s = 6, Φ⁻¹(9/15)
    # the per-round values the issue reports under partial participation with C = 4
    assert alie_z(4, 1) == pytest.approx(-0.4307, abs=5e-5)
    assert alie_z(4, 2) == 0.0 and alie_z(4, 3) == 0.0


@pytest.mark.parametrize("b", [1, 2, 3])
def test_alie_default_z_comes_from_the_global_n_and_f(b):
    # a partial-participation round: m = 4 sampled, b of them Byzantine; the run has n = 20, f = 5
    honest = HONEST[: 4 - b] if 4 - b <= 3 else HONEST
    ctx = omniscient(honest, torch.zeros(b, 2, dtype=torch.float64), m=4, n_clients=20, f_global=5)
    z = 0.2533471031357997  # Φ⁻¹(0.6)
    ref = honest.mean(0) - z * coordinate_std(honest)
    assert default_z(ctx) == pytest.approx(z, abs=1e-12)
    assert torch.allclose(build("alie", ctx), ref.expand(b, -1))
    # the round's (m, b) stays available
    assert default_z(ctx, "round") == alie_z(4, b)
    zr = alie_z(4, b)
    assert torch.allclose(
        build("alie", ctx, z_from="round"), (honest.mean(0) - zr * coordinate_std(honest)).expand(b, -1)
    )
    # a fixed z wins over both
    assert torch.allclose(build("alie", ctx, z=1.0), (honest.mean(0) - coordinate_std(honest)).expand(b, -1))


def test_alie_local_default_z_is_global_too():
    own = t([[1.0, 1.0], [3.0, 3.0]])  # coalition μ = [2, 2], σ = [√2, √2]
    ctx = local(own, m=4, n_clients=20, f_global=5)
    out = build_local("alie", ctx)
    assert torch.allclose(out, (t([2.0, 2.0]) - alie_z(20, 5) * math.sqrt(2)).expand(2, -1))
    out = build_local("alie", ctx, z_from="round")  # z(4, 2) = 0
    assert torch.allclose(out, t([[2.0, 2.0]] * 2))


def test_alie_global_without_n_and_f_warns_and_uses_the_round():
    ctx = omniscient(HONEST, torch.zeros(2, 2, dtype=torch.float64))  # m = 5, b = 2
    with pytest.warns(RuntimeWarning, match="n_clients"):
        out = build("alie", ctx)
    assert torch.allclose(out, (HONEST.mean(0) - alie_z(5, 2) * coordinate_std(HONEST)).expand(2, -1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build("alie", ctx, z_from="round")  # asked for: no warning
    with pytest.raises(ConfigError, match="z_from"):
        params_of("alie", z_from="sample")
    assert ATTACKS["alie"].params["z_from"].default == "global"


# -- shift-back, [C-PP] -----------------------------------------------------------------------------
P, X0, LR = t([3.0, 5.0]), t([1.0, 1.0]), 0.5
OWN = t([[1.0, 1.0], [3.0, 3.0]])


@pytest.mark.parametrize("mult", [1.0, 2.0, 0.5, LR])
def test_shift_back_majority_outcome_is_mult_times_the_way_back(mult):
    ctx = omniscient(t([[7.0, 7.0]]), OWN, model=P, x0=X0, lr=LR)  # m = 3, B = 2: a majority
    out = build("shift_back", ctx, mult=mult)
    assert torch.allclose(out, (mult * (P - X0) / LR).expand(2, -1))  # the code's mult / lr * (x − x⁰)
    # the step from p with this vector as the aggregate moves the model by mult·(x⁰ − p)
    assert torch.allclose(P - LR * out.mean(0), P - mult * (P - X0))
    assert torch.allclose(shift_back_vector(P, X0, LR, mult=mult), mult * (P - X0) / LR)
    if mult == LR:  # the a9a scripts' multiplier='lr': x − x⁰
        assert torch.allclose(out[0], P - X0)


def test_shift_back_minority_sends_the_honest_mean():
    honest = t([[7.0, 7.0], [8.0, 9.0], [0.0, 2.0]])
    ctx = omniscient(honest, OWN, model=P, x0=X0, lr=LR)  # m = 5, B = 2
    assert torch.equal(build("shift_back", ctx), t([[5.0, 6.0]] * 2))
    assert torch.equal(build("shift_back", ctx, honest="own"), OWN)
    # with the mean aggregator the honest-mean Byzantines leave the aggregate unchanged
    agg = mean_defender(honest)(build("shift_back", ctx))
    assert torch.allclose(agg, honest.mean(0))


def test_shift_back_declares_mult_and_its_variant():
    attack = ATTACKS["shift_back"]
    assert attack.params["mult"].default == 1.0 and attack.params["honest"].default == "mean"
    assert "code" in attack.doc and "mean of the honest" in attack.doc
    with pytest.raises(ConfigError, match="honest"):
        params_of("shift_back", honest="paper")


# -- the searches -----------------------------------------------------------------------------------
def test_default_search_range_is_zero_to_a_thousand_both_signs_for_alie():
    foe_grid = search_grid(**{k: v for k, v in _grid_args("foe").items()})
    alie_grid = search_grid(**{k: v for k, v in _grid_args("alie_search").items()})
    assert foe_grid[0] == 0.0 and min(foe_grid) == 0.0 and max(foe_grid) == pytest.approx(1e3)
    assert min(v for v in foe_grid if v > 0) == pytest.approx(1e-3)
    assert max(alie_grid) == pytest.approx(1e3) and min(alie_grid) == pytest.approx(-1e3) and 0.0 in alie_grid
    ratios = np.diff(np.log10([v for v in foe_grid if v > 0]))
    assert np.allclose(ratios, ratios[0])  # log-spaced
    assert len(foe_grid) == 25 and len(alie_grid) == 49


def _grid_args(name):
    p = params_of(name)
    if name == "foe":
        return dict(low=p["eta_min"], high=p["eta_max"], steps=p["eta_steps"], kind=p["grid"], field="attack.eta")
    return dict(low=p["z_min"], high=p["z_max"], steps=p["z_steps"], kind=p["grid"], signed=p["signed"], field="z")


def test_log_grid_scan_order_and_errors():
    assert log_scale_grid(0.1, 10.0, 3) == pytest.approx([0.0, 0.1, 1.0, 10.0])
    assert log_scale_grid(0.1, 10.0, 3, signed=True) == pytest.approx([0.0, 0.1, -0.1, 1.0, -1.0, 10.0, -10.0])
    with pytest.raises(ConfigError, match="attack.eta_min"):
        log_scale_grid(0.0, 1.0, 3, field="attack.eta")
    with pytest.raises(ConfigError, match="attack.eta_max"):
        log_scale_grid(2.0, 1.0, 3, field="attack.eta")
    assert search_grid(1.0, 3.0, 3, "linear", signed=True, field="z") == [1.0, 2.0, 3.0, -1.0, -2.0, -3.0]


def test_defender_calls_per_round():
    honest = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 1.0
    defender, calls = counting(mean_defender(honest))
    ctx = omniscient(honest, torch.zeros(2, 3, dtype=torch.float64), defender=defender)
    build("foe", ctx)
    assert calls[0] <= FOE_CALLS
    calls[0] = 0
    build("alie_search", ctx)
    assert calls[0] <= ALIE_CALLS


def test_refinement_reaches_the_filter_threshold():
    # toy defender: mean of the rows with norm <= 2.05; μ = [1, 0]; −ημ passes iff η <= 2.05 and
    # then moves the mean by (1 + η)/3: the supremum is at η = 2.05, between two grid points
    honest = t([[1.0, 1.0], [1.0, -1.0]])

    def defender(byz):
        x = torch.cat([honest, byz])
        return x[x.norm(dim=1) <= 2.05].mean(0)

    ctx = omniscient(honest, torch.zeros(1, 2, dtype=torch.float64), defender=defender)
    grid = log_scale_grid(1e-3, 1e3, 24)
    plain = foe_search(ctx, grid)
    refined = foe_search(ctx, grid, refine=30)
    assert plain.scale < 1.8 and plain.calls == len(grid)
    assert 2.04 <= refined.scale <= 2.05 and refined.harm >= plain.harm
    assert refined.harm == pytest.approx((1 + 2.05) / 3, rel=3e-3)
    default = build("foe", ctx)  # the registered attack: grid, zoom and refinement
    assert 2.04 <= -float(default[0, 0]) <= 2.05
    assert deviation(defender(default), t([1.0, 0.0])) >= refined.harm - 3e-3


def test_second_seed_finds_the_other_sign():
    # a harm with two peaks: at z = −3 (height 1, the best grid point z ≈ −2.46 scores 0.82) and at
    # z = 3.3 (height 1.5, but its nearest grid point z ≈ 2.46 scores only 0.66): the second seed,
    # the other local maximum of the grid, refines it
    def defender(byz):
        z = -float(byz[0, 0]) / math.sqrt(2.0)  # candidate μ − zσ with μ = 0, σ = √2
        return t([max(0.0, 1.0 - abs(z + 3.0) / 3.0) + max(0.0, 1.5 - abs(z - 3.3))])

    ctx = omniscient(t([[1.0], [-1.0]]), torch.zeros(1, 1, dtype=torch.float64), defender=defender)
    grid = log_scale_grid(1e-3, 1e3, 24, signed=True)
    assert alie_harm_search(ctx, grid).harm < 0.85  # the grid alone
    found = alie_harm_search(ctx, grid, refine=30)
    assert found.harm >= 1.4 and found.scale == pytest.approx(3.3, abs=0.1)


def test_search_is_never_worse_than_its_grid_and_deterministic():
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        honest = torch.randn(7, 4, generator=g, dtype=torch.float64) + 1.0
        pipe = Pipeline.build("meamed", {}, [], seed=0)

        def defender(byz, honest=honest, pipe=pipe):
            return pipe.peek(torch.cat([honest, byz]), f=3, round_=0).value

        mu = honest.mean(0)
        grid = log_scale_grid(1e-3, 1e3, 24)
        best_grid = max(deviation(defender(ipm(mu, eps=s).expand(3, -1)), mu) for s in grid)
        ctx = omniscient(honest, torch.zeros(3, 4, dtype=torch.float64), defender=defender)
        a, b = foe_search(ctx, grid, refine=30), foe_search(ctx, grid, refine=30)
        assert a.harm >= best_grid and a.scale == b.scale and torch.equal(a.block, b.block)
        assert deviation(defender(a.block), mu) == a.harm


def test_maximise_harm_with_every_aggregate_non_finite_returns_the_first_scale():
    found = maximise_harm(
        lambda byz: torch.full((2,), math.nan),
        t([0.0, 0.0]),
        lambda s: torch.full((1, 2), s, dtype=torch.float64),
        [0.0, 0.5, 1.0],
        refine=8,
    )
    assert found.scale == 0.0 and found.harm == -math.inf


def dense_grid(signed: bool) -> list[float]:
    """400 points over the same range as the default search, denser than it: log-spaced 1e-3 … 1e3
    and evenly spaced 5 … 1000 (for ALIE half of each, with both signs), plus 0."""
    if signed:
        pos = np.unique(np.concatenate([np.geomspace(1e-3, 1e3, 100), np.linspace(5.0, 1e3, 100)]))
        return [0.0] + sorted(pos.tolist() + (-pos).tolist())
    pos = np.unique(np.concatenate([np.geomspace(1e-3, 1e3, 200), np.linspace(5.0, 1e3, 199)]))
    return [0.0] + pos.tolist()


PRES = {"none": [], "bucketing": [("bucketing", {"s": 2})], "nnm": [("nnm", {})]}


def strength_case(rule: str, pre: str, seed: int):
    """(pipeline, honest rows, f): m = 15 clients with the largest f in 4..1 the pipeline accepts."""
    for f in (4, 3, 2, 1):
        pipe = Pipeline.build(rule, {}, PRES[pre], seed=seed)
        if pipe.valid(15, f):
            break
    else:  # pragma: no cover - every catalogue rule is valid for m = 15, f = 1
        raise AssertionError(f"{rule} with {pre}: no valid f for m = 15")
    g = torch.Generator().manual_seed(seed)
    honest = torch.randn(15 - f, 4, generator=g, dtype=torch.float64) + torch.linspace(
        -1.0, 2.0, 4, dtype=torch.float64
    )
    return pipe, honest, f


@pytest.mark.parametrize("pre", list(PRES))
@pytest.mark.parametrize("rule", list(RULES))
def test_search_is_as_harmful_as_a_dense_grid(rule, pre):
    pipe, honest, f = strength_case(rule, pre, seed=0)

    def defender(byz):
        return pipe.peek(torch.cat([honest, byz.to(honest.dtype)]), f=f, round_=0).value

    mu = honest.mean(0)
    sigma = coordinate_std(honest)
    counted, calls = counting(defender)
    ctx = omniscient(honest, torch.zeros(f, 4, dtype=torch.float64), defender=counted)
    for name, make, signed in (("foe", lambda s: -s * mu, False), ("alie_search", lambda s: mu - s * sigma, True)):
        calls[0] = 0
        block = build(name, ctx)
        spent = calls[0]
        harm = deviation(defender(block), mu)
        dense = max(deviation(defender(make(s).expand(f, -1).clone()), mu) for s in dense_grid(signed))
        assert harm >= (1 - DENSE_TOLERANCE) * dense, f"{name}: {harm} < {dense} (dense grid)"
        assert spent <= (FOE_CALLS if name == "foe" else ALIE_CALLS)
