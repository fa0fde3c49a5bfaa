"""Adaptive robust clipping (ARC), a pre-aggregator."""

from __future__ import annotations

import torch
from torch import Tensor

from .buffers import OutputBuffer
from .clipping import clip_scales, row_norms, scale_rows
from .registry import PreAggregated, pre_aggregator


def arc_count(m: int, f: int) -> int:
    """k = ⌊2(f/m)(m − f)⌋, computed exactly in integers (0 when f ≤ 0 or f ≥ m)."""
    if m <= 0 or f <= 0 or f >= m:
        return 0
    return (2 * f * (m - f)) // m


def arc_scales(x: Tensor, *, f: int) -> Tensor:
    """min(1, C/‖x_i‖) per row (float64), C the (k+1)-th largest norm, k = :func:`arc_count`."""
    norms = row_norms(x)
    k = arc_count(x.shape[0], f)
    if k == 0:
        return torch.ones_like(norms)
    radius = torch.sort(norms, descending=True).values[k]
    return clip_scales(norms, radius)


@pre_aggregator(
    "arc",
    shape=lambda m, f, **_: (m, f),
    doc="Adaptive robust clipping: the floor(2(f/m)(m-f)) largest-norm inputs clipped to the next largest norm.",
)
def arc(
    x: Tensor, *, f: int, generator: torch.Generator | None = None, out: OutputBuffer | None = None
) -> PreAggregated:
    """ARC: clip the k = ⌊2(f/m)(m − f)⌋ largest-norm inputs to the norm of the (k+1)-th largest.

        C = ‖x_{π(k+1)}‖ with ‖x_{π(1)}‖ ≥ … ≥ ‖x_{π(m)}‖,   y_i = min(1, C/‖x_i‖)·x_i.

    Convention: k as in the paper (Algorithm 1), computed exactly in integers; norms in float64;
    inputs whose norm ties with C are unchanged. Linear per input: mix = diag(scales); the rule
    sees the same (m, f).
    Reference: Allouah, Guerraoui, Gupta, Jellouli, Rizk, Stephan, "The vital role of gradient
    clipping in Byzantine-resilient distributed learning", arXiv:2405.14432, 2024.
    """
    scales = arc_scales(x, f=f)
    return PreAggregated(scale_rows(x, scales, out), f, torch.diag(scales.cpu()))
