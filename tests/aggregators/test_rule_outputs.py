"""A plugin rule's output is validated on every call (issue 13 item 9): a wrong shape, a bare
list, a 0-d or int64 result, or an exception is one error line naming the rule; a non-finite
value is not an error here (the method skips the step and the round is counted)."""

from __future__ import annotations

import uuid

import pytest
import torch

from byzmpi.aggregators import RULES, Pipeline, rule
from byzmpi.aggregators.pipeline import RuleError
from byzmpi.registry import Condition

ANY = Condition("m >= 1", lambda m, f, **_: m >= 1)
OUTPUTS = {
    "wrong_shape": lambda x: x[:, :2].mean(0),
    "bare_list": lambda x: x.mean(0).tolist(),
    "zero_d": lambda x: x.mean(),
    "int64": lambda x: x.mean(0).long(),
    "raises": lambda x: 1 / 0,
}


@pytest.mark.parametrize("kind", list(OUTPUTS))
def test_bad_rule_output_is_one_error_naming_the_rule(kind):
    name = f"bad_{kind}_{uuid.uuid4().hex[:6]}"
    rule(name, condition=ANY, doc="test")(lambda x, *, f, _out=OUTPUTS[kind]: _out(x))
    try:
        pipe = Pipeline.build(name, {}, [], seed=0)
        with pytest.raises(RuleError) as info:
            pipe(torch.randn(4, 5), f=0, round_=0)
        assert name in str(info.value) and "\n" not in str(info.value)
    finally:
        RULES.pop(name, None)


def test_non_finite_output_passes_through_to_the_method():
    name = f"nan_{uuid.uuid4().hex[:6]}"
    rule(name, condition=ANY, doc="test")(lambda x, *, f: torch.full((x.shape[1],), float("nan")))
    try:
        out = Pipeline.build(name, {}, [], seed=0)(torch.randn(4, 5), f=0, round_=0)
        assert out.value.shape == (5,) and torch.isnan(out.value).all()
    finally:
        RULES.pop(name, None)
