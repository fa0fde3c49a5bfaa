"""Static norm clipping of every input, a pre-aggregator: clip_τ(x) = min(1, τ/‖x‖)·x."""

from __future__ import annotations

import torch
from torch import Tensor

from ..params import Param
from .buffers import OutputBuffer, output
from .registry import PreAggregated, pre_aggregator


def row_norms(x: Tensor) -> Tensor:
    """‖x_i‖₂ per row as float64: one pass in x's dtype, rows whose norm overflows it (finite
    inputs near float32's maximum) recomputed in float64."""
    norms: Tensor = torch.linalg.vector_norm(x, dim=1).double()
    bad = ~torch.isfinite(norms)
    if bool(bad.any()):
        norms[bad] = torch.linalg.vector_norm(x[bad].double(), dim=1)
    return norms


def clip_scales(norms: Tensor, radius: float | Tensor) -> Tensor:
    """min(1, τ/‖x_i‖) per row (float64), with 1 for a zero row (clip_τ(0) = 0)."""
    radius = torch.as_tensor(radius, dtype=torch.float64, device=norms.device)
    return torch.where(norms > radius, radius / torch.where(norms > 0, norms, 1.0), torch.ones_like(norms))


def scale_rows(x: Tensor, scales: Tensor, out: OutputBuffer | None = None) -> Tensor:
    """x_i · s_i in x's dtype (x itself, not a copy, when every s_i is 1): one multiplication over
    the rows (by 1 exactly for the rows not clipped), into ``out`` when given."""
    if bool((scales == 1).all()):
        return x
    y = output(out, tuple(x.shape), x)
    return torch.mul(x, scales.to(device=x.device, dtype=x.dtype)[:, None], out=y)


def clip_to_radius(x: Tensor, radius: float, out: OutputBuffer | None = None) -> tuple[Tensor, Tensor]:
    """Each row clipped to norm ≤ τ: clip_τ(x_i) = min(1, τ/‖x_i‖)·x_i, clip_τ(0) = 0.
    Returns (clipped rows, scales) with scales float64 (m,)."""
    scales = clip_scales(row_norms(x), radius)
    return scale_rows(x, scales, out), scales


@pre_aggregator(
    "clipping",
    shape=lambda m, f, **_: (m, f),
    doc="Static clipping: every input scaled to norm <= tau.",
    params={"tau": Param("tau", float, 2.0, "clipping radius τ", minimum=0.0)},
)
def static_clipping(
    x: Tensor, *, f: int = 0, tau: float, generator: torch.Generator | None = None, out: OutputBuffer | None = None
) -> PreAggregated:
    """Static clipping: y_i = min(1, τ/‖x_i‖₂)·x_i (docs/conventions.md: clip_τ(0) = 0), norms in float64.

    Linear per input: mix = diag(min(1, τ/‖x_i‖)); the rule sees the same (m, f).
    Reference: e.g. Allouah et al., "The vital role of gradient clipping in Byzantine-resilient
    distributed learning", arXiv:2405.14432, 2024 (static clipping as the baseline of ARC).
    """
    y, scales = clip_to_radius(x, tau, out)
    return PreAggregated(y, f, torch.diag(scales.cpu()))
