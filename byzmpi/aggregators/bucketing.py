"""Bucketing(s): average random buckets of s inputs before the rule (a pre-aggregator)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..params import Param
from .buffers import OutputBuffer, output
from .combine import mix_rows
from .registry import PreAggregated, pre_aggregator


def bucketing_shape(m: int, f: int, s: int = 2) -> tuple[int, int]:
    """(m', f') the rule sees: ⌈m/s⌉ buckets, of which at most min(f, ⌈m/s⌉) contain a Byzantine
    input (each Byzantine input contaminates one bucket; the worst case puts them in distinct
    buckets, which a random permutation allows whenever f ≤ ⌈m/s⌉)."""
    buckets = math.ceil(m / s)
    return buckets, min(f, buckets)


#: below this many input floats the buckets are one GEMM (one call), above it row operations
#: (one pass over x instead of a GEMM's m'·m·d multiply-adds)
ROWS_MIN_NUMEL = 1 << 18


def bucket_mix(m: int, s: int, generator: torch.Generator | None = None) -> Tensor:
    """The (⌈m/s⌉, m) float64 averaging matrix of a fresh random permutation π: row b has
    1/|B_b| on the inputs π(bs), …, π(min(bs + s, m) − 1) (the last bucket over its real size)."""
    return _mix(_permutation(m, generator), s)


def _permutation(m: int, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else "cpu"
    return torch.randperm(m, generator=generator, device=device).cpu()


def _mix(perm: Tensor, s: int) -> Tensor:
    m = perm.numel()
    buckets = math.ceil(m / s)
    mix = torch.zeros(buckets, m, dtype=torch.float64)
    for b in range(buckets):
        members = perm[b * s : min(b * s + s, m)]
        mix[b, members] = 1.0 / members.numel()
    return mix


def bucket_means(x: Tensor, perm: Tensor, s: int, mix: Tensor, out: OutputBuffer | None = None) -> Tensor:
    """y_b = Σ_{i ∈ B_b} w_b·x_i, w_b = 1/|B_b| in x's dtype, B_b = π(bs), …, π(min(bs + s, m) − 1).

    Each term is scaled before it is added (a convex combination: no overflow for finite inputs).
    Small inputs: one GEMM ``mix·x``; large ones: per bucket one scaled copy and |B_b| − 1 scaled
    adds, which read x once, where the GEMM does m'·m·d multiply-adds (measured at d = 10⁶:
    m = 16 4.1 against 6.7 ms, m = 64 17 against 55 ms; docs/performance.md). For s = 2, w_b = ½
    is exact and both give the same values; otherwise they may differ in the last bit.
    """
    if x.numel() < ROWS_MIN_NUMEL:
        return mix_rows(x, mix, out)
    m = x.shape[0]
    y = output(out, (mix.shape[0], *x.shape[1:]), x)
    order = perm.to(x.device).tolist()
    for b in range(mix.shape[0]):
        members = order[b * s : min(b * s + s, m)]
        w = 1.0 / len(members)
        torch.mul(x[members[0]], w, out=y[b])
        for i in members[1:]:
            y[b].add_(x[i], alpha=w)
    return y


@pre_aggregator(
    "bucketing",
    shape=lambda m, f, s=2: bucketing_shape(m, f, s),
    doc="Bucketing(s): means of ceil(m/s) random buckets of s inputs (fresh permutation each call); "
    "the rule sees (ceil(m/s), min(f, ceil(m/s))).",
    params={"s": Param("s", int, 2, "bucket size", minimum=1)},
)
def bucketing(
    x: Tensor, *, f: int = 0, s: int = 2, generator: torch.Generator | None = None, out: OutputBuffer | None = None
) -> PreAggregated:
    """Bucketing: y_b = (1/|B_b|) Σ_{i ∈ B_b} x_{π(i)}, b = 1..⌈m/s⌉, for a fresh random permutation π.

    Convention: a new permutation on every call, drawn from ``generator`` (the pipeline passes the
    round's (seed, round, "pre-aggregate") stream, so a round is reproducible); ⌈m/s⌉ buckets,
    the last partial bucket averaged over its real size (the paper's formula divides by s); the
    rule then sees (⌈m/s⌉, min(f, ⌈m/s⌉)), see :func:`bucketing_shape`. Returns (y, f', mix) with
    y = mix·x (:func:`bucket_means`: scaled row adds, one pass over x).
    Reference: Karimireddy, He, Jaggi, "Byzantine-robust learning on heterogeneous datasets via
    bucketing", ICLR 2022 (Algorithm 2).
    """
    if s < 1:
        raise ValueError(f"bucket size s must be >= 1, got {s}")
    perm = _permutation(x.shape[0], generator)
    mix = _mix(perm, s)
    return PreAggregated(bucket_means(x, perm, s, mix, out), bucketing_shape(x.shape[0], f, s)[1], mix)
