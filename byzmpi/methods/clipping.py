"""Clipping for Byzantine robustness with partial participation (Malinovsky et al., NeurIPS 2024).

* ``clip_rows``: clip_λ(x) = min(1, λ/‖x‖)·x per row, with clip_λ(0) = 0.
* The radius: the paper's λ_{k+1} = α·‖x^{k+1} − x^k‖ (Alg. 1, line 4), or the official code's
  ``clip_mult``·‖g^k‖ (the two agree when α = clip_mult/γ, since x^{k+1} − x^k = −γ g^k).
* ``clipped_difference_aggregate``: the recipe for any robust method, eq. (10):
      g^k = g^{k−1} + Agg({clip_λ(g_i^k − g^{k−1})}_{i∈S_k}).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..aggregators import Aggregate
from ..params import Param
from .step_info import Aggregator, RoundInfo, finite_vector, refused_step

CLIP_PARAMS = {
    "clip": Param("clip", bool, False, "clip differences on the server (eq. 10 / Alg. 1)"),
    "clip_alpha": Param("clip_alpha", float, 1.0, "paper radius lambda_{k+1} = alpha*|x^{k+1} - x^k|", minimum=0.0),
    "clip_mult": Param(
        "clip_mult", float, None, "code radius clip_mult*|g^k| (overrides clip_alpha)", minimum=0.0, nullable=True
    ),
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


def clipped_difference_aggregate(
    aggregate: Callable[[Tensor], Aggregate], rows: Tensor, reference: Tensor, radius: float
) -> tuple[Tensor, Tensor]:
    """g = reference + Agg(clip_λ(rows − reference)) (eq. 10); returns (g, clipped-per-row).
    ``aggregate`` takes the rows only (bind the client ids before)."""
    diffs, clipped = clip_rows(rows - reference, radius)
    return reference + aggregate(diffs).value.to(reference.dtype), clipped


def _norm(t: Tensor) -> float:
    return float(torch.linalg.vector_norm(t.double()))


@dataclass
class StepState:
    """Server state shared by the methods that step x ← x − γ g with an optionally clipped g."""

    x: Tensor
    x0: Tensor
    g: Tensor  # the previous aggregate g^{k−1}: the clipping reference
    step_norm: float  # ‖x^k − x^{k−1}‖
    started: bool  # a first (unclipped) step has been taken


@dataclass(frozen=True)
class DifferenceClipping:
    """The recipe (eq. 10) as configured by a method's ``clip``, ``clip_alpha``, ``clip_mult``."""

    enabled: bool
    alpha: float
    mult: float | None

    def aggregate(
        self,
        aggregate: Aggregator,
        rows: Tensor,
        state: StepState,
        *,
        clients: np.ndarray,
        dropped: int = 0,
    ) -> tuple[Tensor, float, np.ndarray | None]:
        """(g, radius, clipped-per-row): eq. (10) once a step exists, else the plain aggregate.
        ``clients``: the client id of each row; ``dropped``: inputs the caller excluded as invalid."""
        if not (self.enabled and state.started):
            return aggregate(rows, clients, dropped).value.to(state.x.dtype), float("nan"), None
        radius = clip_radius(alpha=self.alpha, clip_mult=self.mult, step_norm=state.step_norm, g_norm=_norm(state.g))
        g, clipped = clipped_difference_aggregate(lambda x: aggregate(x, clients, dropped), rows, state.g, radius)
        return g.to(state.x.dtype), radius, clipped.numpy()


def take_step(state: StepState, g: Tensor, lr: float, radius: float, clipped: np.ndarray | None) -> RoundInfo:
    """x ← x − γ g unless g is not finite (then no step); the RoundInfo of the step."""

    norm = _norm(g)
    x_next = state.x - lr * g
    if not math.isfinite(norm) or not finite_vector(x_next):  # never step to a non-finite model
        return refused_step(norm, radius, clipped)
    state.x.copy_(x_next)
    # a copy: a rule may return a view of its input, and the round's rows live in a reused buffer
    state.g, state.step_norm, state.started = g.clone(), lr * norm, True
    return RoundInfo(aggregate_norm=norm, update_norm=lr * norm, clip_radius=radius, clipped=clipped)
