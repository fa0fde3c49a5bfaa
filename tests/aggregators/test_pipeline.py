"""Pre-aggregators composed with rules, weights mapped back to clients, stateful rules."""

from __future__ import annotations

import torch

from byzmpi.aggregators import Pipeline, krum_select, nnm

from .helpers import honest_cluster, pipeline


def test_weights_map_back_through_nnm():
    x = honest_cluster(9, 5)
    x[0] += 50
    agg = pipeline("krum", ["nnm"])(x, f=2, round_=0)
    mixed, _, mix = nnm(x, f=2)
    chosen = int(krum_select(mixed, f=2)[0])
    assert torch.allclose(agg.weights, mix[chosen])  # mixᵀ · onehot(chosen)
    assert agg.weights[0] == 0  # the outlier is in nobody's neighbourhood but its own
    assert torch.allclose(agg.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(agg.value, agg.weights @ x)


def test_bucketing_then_krum_weights_sum_to_one_and_reproduce_the_value():
    x = honest_cluster(12, 4)
    pipe = pipeline("multi_krum", ["bucketing"])
    agg = pipe(x, f=1, round_=3)
    assert torch.allclose(agg.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(agg.value, agg.weights @ x)
    # the same round gives the same permutation; another round (almost surely) another
    assert torch.equal(pipe(x, f=1, round_=3).value, agg.value)
    assert any(not torch.equal(pipe(x, f=1, round_=r).value, agg.value) for r in range(4, 8))


def test_coordinatewise_rules_give_no_weights_and_chains_compose():
    x = honest_cluster(12, 4)
    assert pipeline("median", ["bucketing"])(x, f=1, round_=0).weights is None
    agg = pipeline("mean", ["arc", "nnm", "clipping"])(x, f=2, round_=0)
    assert torch.allclose(agg.value, agg.weights @ x)


def test_shape_and_validity_see_what_the_rule_sees():
    pipe = pipeline("krum", ["bucketing"])
    assert pipe.shape(12, 2) == (6, 2)
    assert pipe.valid(12, 1) and not pipe.valid(12, 2)  # krum on 6 inputs needs f < 2
    assert not pipeline("mean", ["nnm"]).valid(3, 3)


def test_build_fills_declared_defaults():
    pipe = Pipeline.build("centered_clipping", {"tau": 1.0}, [("bucketing", {})], seed=0)
    assert pipe.rule_params == {"tau": 1.0, "iterations": 3}
    assert pipe.pre[0][1] == {"s": 2}


def test_stateful_rule_state_and_peek():
    x = honest_cluster(7, 3) + 5.0
    pipe = pipeline("centered_clipping", tau=0.5, iterations=1)
    first = pipe(x, f=1, round_=0).value
    assert torch.equal(pipe.state["centre"], first)
    peeked = pipe.peek(x, f=1, round_=1).value
    assert torch.equal(pipe.state["centre"], first)  # peek leaves the state alone
    second = pipe(x, f=1, round_=1).value
    assert torch.equal(second, peeked) and torch.equal(pipe.state["centre"], second)
    # a centre of the wrong shape (d changed) is ignored: restart from the median
    pipe.state["centre"] = torch.zeros(99, dtype=x.dtype)
    assert torch.equal(
        pipe(x, f=1, round_=2).value, pipeline("centered_clipping", tau=0.5, iterations=1)(x, f=1, round_=0).value
    )
