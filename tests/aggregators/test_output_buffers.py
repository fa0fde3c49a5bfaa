"""Pre-aggregators write into the pipeline's reused output tensors (byzmpi.aggregators.buffers):
the same values as a fresh output, no new storage from round to round, and an aggregate that is a
view of a stage's output survives the next round."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from byzmpi import rng
from byzmpi.aggregators import PRE_AGGREGATORS, Pipeline
from byzmpi.aggregators.buffers import OutputBuffer
from byzmpi.aggregators.registry import RULES, Aggregate

PRES = ("clipping", "arc", "bucketing", "nnm")


def _data(m: int = 12, d: int = 300, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, d, generator=g)
    x[: m // 3] *= 40.0  # rows that clipping and ARC do clip
    return x


@pytest.mark.parametrize("name", PRES)
def test_into_a_buffer_equals_a_fresh_output_and_reuses_its_storage(name: str) -> None:
    pre = PRE_AGGREGATORS[name]
    assert pre.takes_out
    params = {k: p.default for k, p in pre.params.items()}
    buffer = OutputBuffer()
    pointers = set()
    for seed in range(3):
        x = _data(seed=seed)
        gen_a = rng.torch_generator(1, seed, "pre-aggregate", device=x.device)
        gen_b = rng.torch_generator(1, seed, "pre-aggregate", device=x.device)
        fresh = pre.apply(x, f=3, generator=gen_a, **params)
        into = pre.apply(x, f=3, generator=gen_b, out=buffer, **params)
        assert torch.equal(fresh.x, into.x) and into.f == fresh.f and torch.equal(fresh.mix, into.mix)
        assert buffer.holds(into.x) and not buffer.holds(x)
        pointers.add(into.x.data_ptr())
    assert len(pointers) == 1  # the same storage every call


def test_clipping_that_clips_nothing_returns_the_inputs_without_a_copy() -> None:
    x = _data() * 1e-3
    buffer = OutputBuffer()
    out = PRE_AGGREGATORS["clipping"].apply(x, f=3, generator=None, out=buffer, tau=2.0)
    assert out.x is x


def test_an_aggregate_that_views_a_stage_output_is_copied_out() -> None:
    first_row = dataclasses.replace(RULES["mean"], name="first_row", apply=lambda x, **_: Aggregate(x[0]))
    pipe = Pipeline(first_row, {}, [(PRE_AGGREGATORS["clipping"], {"tau": 1.0})], seed=0)
    x1, x2 = _data(seed=1), _data(seed=2)
    a1 = pipe(x1, f=3, round_=0).value
    kept = a1.clone()
    pipe(x2, f=3, round_=1)  # overwrites the stage's buffer
    assert torch.equal(a1, kept) and not any(b.holds(a1) for b in pipe.buffers)


def test_a_buffer_follows_the_largest_shape_and_the_dtype() -> None:
    buffer = OutputBuffer()
    a = buffer((4, 10), torch.float32, torch.device("cpu"))
    b = buffer((2, 10), torch.float32, torch.device("cpu"))
    assert a.data_ptr() == b.data_ptr() and b.shape == (2, 10)
    c = buffer((8, 10), torch.float32, torch.device("cpu"))
    assert c.shape == (8, 10) and c.is_contiguous()
    e = buffer((2, 10), torch.float64, torch.device("cpu"))
    assert e.dtype == torch.float64 and buffer.holds(e) and not buffer.holds(c)
