"""Bucketing(s): average random buckets of s inputs before the rule (a pre-aggregator)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..params import Param
from .combine import mix_rows
from .registry import PreAggregated, pre_aggregator


def bucketing_shape(m: int, f: int, s: int = 2) -> tuple[int, int]:
    """(m', f') the rule sees: ⌈m/s⌉ buckets, of which at most min(f, ⌈m/s⌉) contain a Byzantine
    input (each Byzantine input contaminates one bucket; the worst case puts them in distinct
    buckets, which a random permutation allows whenever f ≤ ⌈m/s⌉)."""
    buckets = math.ceil(m / s)
    return buckets, min(f, buckets)


def bucket_mix(m: int, s: int, generator: torch.Generator | None = None) -> Tensor:
    """The (⌈m/s⌉, m) float64 averaging matrix of a fresh random permutation π: row b has
    1/|B_b| on the inputs π(bs), …, π(min(bs + s, m) − 1) (the last bucket over its real size)."""
    device = generator.device if generator is not None else "cpu"
    perm = torch.randperm(m, generator=generator, device=device).cpu()
    buckets = math.ceil(m / s)
    mix = torch.zeros(buckets, m, dtype=torch.float64)
    for b in range(buckets):
        members = perm[b * s : min(b * s + s, m)]
        mix[b, members] = 1.0 / members.numel()
    return mix


@pre_aggregator(
    "bucketing",
    shape=lambda m, f, s=2: bucketing_shape(m, f, s),
    doc="Bucketing(s): means of ceil(m/s) random buckets of s inputs (fresh permutation each call); "
    "the rule sees (ceil(m/s), min(f, ceil(m/s))).",
    params={"s": Param("s", int, 2, "bucket size", minimum=1)},
)
def bucketing(x: Tensor, *, f: int = 0, s: int = 2, generator: torch.Generator | None = None) -> PreAggregated:
    """Bucketing: y_b = (1/|B_b|) Σ_{i ∈ B_b} x_{π(i)}, b = 1..⌈m/s⌉, for a fresh random permutation π.

    Convention: a new permutation on every call, drawn from ``generator`` (the pipeline passes the
    round's (seed, round, "pre-aggregate") stream, so a round is reproducible); ⌈m/s⌉ buckets,
    the last partial bucket averaged over its real size (the paper's formula divides by s); the
    rule then sees (⌈m/s⌉, min(f, ⌈m/s⌉)), see :func:`bucketing_shape`. Returns (y, f', mix) with
    y = mix·x (scaled row adds: one pass over x).
    Reference: Karimireddy, He, Jaggi, "Byzantine-robust learning on heterogeneous datasets via
    bucketing", ICLR 2022 (Algorithm 2).
    """
    if s < 1:
        raise ValueError(f"bucket size s must be >= 1, got {s}")
    mix = bucket_mix(x.shape[0], s, generator)
    return PreAggregated(mix_rows(x, mix), bucketing_shape(x.shape[0], f, s)[1], mix)
