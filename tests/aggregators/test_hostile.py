"""Hostile payloads (NaN, ±Inf, ±1e38, float32 extremes, denormals) through validation, then every
rule and every pre-aggregator + rule pair: no crash, finite output."""

from __future__ import annotations

import itertools

import pytest
import torch

from byzmpi.validation import ACCEPTED, effective_f, reject_codes

from .helpers import PRE_NAMES, RULE_NAMES, pipeline

F32_MAX = torch.finfo(torch.float32).max
DENORMAL = 1e-40  # below float32's smallest normal (1.2e-38)


def hostile_round(seed: int = 0) -> torch.Tensor:
    """13 float32 messages: 3 non-finite, 4 finite but extreme, 6 honest."""
    g = torch.Generator().manual_seed(seed)
    d = 24
    honest = torch.randn(6, d, generator=g)
    nan = honest[0].clone()
    nan[3] = float("nan")
    pinf = torch.full((d,), float("inf"))
    ninf = honest[1].clone()
    ninf[-1] = float("-inf")
    huge = torch.full((d,), 1e38)
    mixed = torch.where(torch.arange(d) % 2 == 0, torch.tensor(F32_MAX), torch.tensor(-F32_MAX))
    neg = torch.full((d,), -1e38)
    denormal = torch.full((d,), DENORMAL) * torch.sign(torch.randn(d, generator=g))
    return torch.stack([nan, huge, pinf, mixed, denormal, ninf, neg, *honest])


def accepted(msgs: torch.Tensor, f: int) -> tuple[torch.Tensor, int]:
    ok = reject_codes(msgs) == ACCEPTED
    return msgs[ok], effective_f(f, int((~ok).sum()))


def test_validation_drops_exactly_the_non_finite_rows():
    x, f = accepted(hostile_round(), 6)
    assert x.shape[0] == 10 and f == 3
    assert bool(torch.isfinite(x).all())


CASES = [(rule, ()) for rule in RULE_NAMES] + [(rule, (pre,)) for rule, pre in itertools.product(RULE_NAMES, PRE_NAMES)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rule,pre", CASES, ids=[f"{'+'.join(p)}{'+' if p else ''}{r}" for r, p in CASES])
def test_hostile_payloads_give_finite_aggregates(rule, pre, dtype):
    x, f = accepted(hostile_round(), 6)  # 10 rows, f = 3 left to tolerate
    x = x.to(dtype)
    ran = False
    for f_used in (f, 1):  # the nominal f, and an f too small for the 4 extreme rows
        pipe = pipeline(rule, pre)
        if not pipe.valid(x.shape[0], f_used):
            continue
        ran = True
        for round_ in range(2):  # stateful rules: the second call warm-starts
            agg = pipe(x, f=f_used, round_=round_)
            assert agg.value.shape == (x.shape[1],) and agg.value.dtype == dtype
            assert bool(torch.isfinite(agg.value).all()), (rule, pre, f_used)
            if agg.weights is not None:
                assert agg.weights.shape == (x.shape[0],) and bool(torch.isfinite(agg.weights).all())
    if not ran:
        pytest.skip(f"{rule} after {pre} is invalid for m = {x.shape[0]} with f = {f} and f = 1")


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_all_denormal_and_all_zero_inputs(rule):
    for fill in (0.0, DENORMAL):
        x = torch.full((9, 5), fill)
        agg = pipeline(rule)(x, f=1, round_=0)
        assert bool(torch.isfinite(agg.value).all()) and float(agg.value.abs().max()) <= abs(fill)


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_identical_inputs_return_that_input(rule):
    x = torch.tensor([1.5, -2.0, 1e30]).repeat(11, 1)
    assert torch.allclose(pipeline(rule)(x, f=2, round_=0).value, x[0])
