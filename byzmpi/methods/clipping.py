"""Clipping for Byzantine robustness with partial participation (Malinovsky et al., NeurIPS 2024).

* ``clip_rows``: clip_λ(x) = min(1, λ/‖x‖)·x per row, with clip_λ(0) = 0.
* The radius: the paper's λ_{k+1} = α·‖x^{k+1} − x^k‖ (Alg. 1, line 4), or the official code's
  ``clip_mult``·‖g^k‖ (the two agree when α = clip_mult/γ, since x^{k+1} − x^k = −γ g^k).
* ``clipped_difference_aggregate``: the recipe for any robust method, eq. (10):
      g^k = g^{k−1} + Agg({clip_λ(g_i^k − g^{k−1})}_{i∈S_k}).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..aggregators import Aggregate
from ..params import Param

CLIP_PARAMS = {
    "clip": Param("clip", bool, False, "clip differences on the server (eq. 10 / Alg. 1)"),
    "clip_alpha": Param("clip_alpha", float, 1.0, "paper radius lambda_{k+1} = alpha*|x^{k+1} - x^k|",
                        minimum=0.0),
    "clip_mult": Param("clip_mult", float, None, "code radius clip_mult*|g^k| (overrides clip_alpha)",
                       minimum=0.0, nullable=True),
}


def clip_rows(x: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    """Rows of ``x`` clipped to norm ≤ radius: min(1, λ/‖x_i‖)·x_i (0 stays 0). Also returns a bool
    per row: whether it was shrunk. Norms are accumulated in float64."""
    norms = torch.linalg.vector_norm(x.double(), dim=1)
    clipped = norms > radius
    scale = torch.where(clipped, radius / norms.clamp(min=torch.finfo(torch.float64).tiny), 1.0)
    return x * scale.to(x.dtype)[:, None], clipped


def clip_radius(*, alpha: float, clip_mult: float | None, step_norm: float, g_norm: float) -> float:
    """λ = clip_mult·‖g^k‖ when clip_mult is given, else α·‖x^{k+1} − x^k‖."""
    value = clip_mult * g_norm if clip_mult is not None else alpha * step_norm
    return value if math.isfinite(value) else 0.0


def clipped_difference_aggregate(aggregate: Callable[[Tensor], Aggregate], rows: Tensor, reference: Tensor,
                                 radius: float) -> tuple[Tensor, Tensor]:
    """g = reference + Agg(clip_λ(rows − reference)) (eq. 10); returns (g, clipped-per-row)."""
    diffs, clipped = clip_rows(rows - reference, radius)
    return reference + aggregate(diffs).value.to(reference.dtype), clipped
