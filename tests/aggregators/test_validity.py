"""Every rule's validity condition at its boundary, its declared parameters, and its refusals."""

from __future__ import annotations

import math

import pytest
import torch

from byzmpi.aggregators import PRE_AGGREGATORS, RULES, bulyan, caf, krum, mda, meamed, monna, multi_krum, trimmed_mean
from byzmpi.params import Param, check_param

# rule -> (m at the boundary that must be refused, m that must be accepted), as functions of f
BOUNDARY = {
    "median": (lambda f: 2 * f, lambda f: 2 * f + 1),
    "trimmed_mean": (lambda f: 2 * f, lambda f: 2 * f + 1),
    "meamed": (lambda f: 2 * f, lambda f: 2 * f + 1),
    "geometric_median": (lambda f: 2 * f, lambda f: 2 * f + 1),
    "centered_clipping": (lambda f: 2 * f, lambda f: 2 * f + 1),
    "monna": (lambda f: 2 * f, lambda f: 2 * f + 1),
    "mda": (lambda f: 2 * f, lambda f: 2 * f + 1),
    "caf": (lambda f: 2 * f, lambda f: 2 * f + 1),
    "krum": (lambda f: 2 * f + 2, lambda f: 2 * f + 3),
    "multi_krum": (lambda f: 2 * f + 2, lambda f: 2 * f + 3),
    "bulyan": (lambda f: 4 * f + 2, lambda f: 4 * f + 3),
}


def test_every_rule_has_a_boundary_case_and_a_description():
    assert set(BOUNDARY) | {"mean"} == set(RULES)
    for rule in RULES.values():
        assert rule.condition and rule.doc
        for name, p in rule.params.items():
            assert isinstance(p, Param) and p.name == name
            if p.default is not None:
                check_param(p, p.default, f"aggregator.{name}")
    for pre in PRE_AGGREGATORS.values():
        assert pre.doc
        for name, p in pre.params.items():
            check_param(p, p.default, f"aggregator.{pre.name}.{name}")


@pytest.mark.parametrize("name", sorted(BOUNDARY))
@pytest.mark.parametrize("f", [0, 1, 3])
def test_boundary(name, f):
    refused, accepted = BOUNDARY[name]
    rule = RULES[name]
    if refused(f) >= 1:
        assert not rule.valid(refused(f), f), (name, refused(f), f)
    assert rule.valid(accepted(f), f), (name, accepted(f), f)


def test_mean_needs_one_input():
    assert RULES["mean"].valid(1, 0) and not RULES["mean"].valid(0, 0)


def test_parameter_dependent_conditions():
    tm = RULES["trimmed_mean"].valid
    assert tm(5, 0, trim=2) and not tm(4, 0, trim=2) and not tm(6, 3)
    mk = RULES["multi_krum"].valid
    assert mk(7, 2, k=7) and not mk(7, 2, k=8)
    mo = RULES["monna"].valid
    assert mo(5, 2, pivot=4) and not mo(5, 2, pivot=5)
    md = RULES["mda"].valid
    assert md(10, 3, max_subsets=math.comb(10, 3)) and not md(10, 3, max_subsets=math.comb(10, 3) - 1)
    assert not md(64, 20)  # C(64, 20) ~ 2e16 exceeds the default cap


def test_pre_aggregator_shapes_feed_the_rule_condition():
    assert PRE_AGGREGATORS["bucketing"].shape(10, 2, s=2) == (5, 2)
    assert not RULES["krum"].valid(*PRE_AGGREGATORS["bucketing"].shape(10, 2, s=2))
    assert RULES["krum"].valid(*PRE_AGGREGATORS["bucketing"].shape(14, 2, s=2))
    assert PRE_AGGREGATORS["nnm"].shape(3, 3) == (0, 3)
    assert PRE_AGGREGATORS["clipping"].shape(4, 1, tau=1.0) == (4, 1)
    assert PRE_AGGREGATORS["arc"].shape(4, 1) == (4, 1)


def test_functions_refuse_invalid_inputs():
    x = torch.randn(6, 3)
    cases = [
        lambda: trimmed_mean(x, trim=3),
        lambda: meamed(x, f=3),
        lambda: krum(x, f=2),
        lambda: multi_krum(x, f=1, k=7),
        lambda: monna(x, f=3),
        lambda: monna(x, f=1, pivot=6),
        lambda: mda(x, f=3),
        lambda: mda(x, f=2, max_subsets=14),
        lambda: bulyan(x, f=1),
        lambda: caf(x, f=3),
    ]
    for case in cases:
        with pytest.raises(ValueError):
            case()
    with pytest.raises(ValueError, match="max_subsets"):
        mda(x, f=2, max_subsets=14)  # C(6, 2) = 15 candidate subsets
