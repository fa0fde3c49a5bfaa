"""Geometric median (GM, RFA) by smoothed Weiszfeld iterations."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..params import Param
from ..registry import Condition
from .combine import weighted_rows
from .distances import gram
from .median import coordinate_median
from .registry import Aggregate, rule

#: default smoothing ν, relative to the scale (median distance from the start to the inputs)
NU_FACTOR = 1e-6


def _finite_gram(x: Tensor, origin: Tensor) -> np.ndarray:
    g = gram(x, origin)
    if not torch.isfinite(g).all():
        g = gram(x, origin, dtype=torch.float64)
    return g.double().cpu().numpy()


def geometric_median_weights(
    x: Tensor, *, nu: float | None = None, max_iter: int = 100, tol: float = 1e-7
) -> tuple[Tensor, Tensor | None]:
    """The start z₀ (coordinate-wise median) and the convex weights λ of the Weiszfeld iterate
    z = Σ_i λ_i x_i after the iterations (None when no iteration ran: the result is z₀)."""
    z0, lam, _ = weiszfeld(x, nu=nu, max_iter=max_iter, tol=tol)
    return z0, lam


def weiszfeld(
    x: Tensor, *, nu: float | None = None, max_iter: int = 100, tol: float = 1e-7
) -> tuple[Tensor, Tensor | None, int]:
    """:func:`geometric_median_weights` plus the number of Weiszfeld iterations it ran."""
    z0 = coordinate_median(x)
    if max_iter <= 0:
        return z0, None, 0
    g = _finite_gram(x, z0)  # Gram of x_i − z₀: every distance below comes from it (m × m work)
    diag = np.clip(np.diag(g), 0.0, None)
    start_dist = np.sqrt(diag)
    scale = float(np.median(start_dist)) or float(start_dist.mean())
    if scale == 0.0:  # every input equals z₀
        return z0, None, 0
    nu = NU_FACTOR * scale if nu is None else float(nu)
    lam = None
    dist = start_dist
    done = 0
    for _ in range(max_iter):
        done += 1
        beta = 1.0 / np.maximum(dist, nu) if nu > 0 else 1.0 / np.where(dist > 0, dist, np.finfo(float).tiny)
        new = beta / beta.sum()
        if lam is None:
            step_sq = new @ g @ new  # ‖z₁ − z₀‖²
        else:
            delta = new - lam
            step_sq = delta @ g @ delta
        lam = new
        gl = g @ lam
        dist = np.sqrt(np.clip(diag - 2.0 * gl + lam @ gl, 0.0, None))  # ‖x_i − z‖
        if math.sqrt(max(step_sq, 0.0)) <= tol * scale:
            break
    return z0, torch.from_numpy(lam), done


@rule(
    "geometric_median",
    condition=Condition("m > 2f", lambda m, f, **_: m > 2 * f),
    doc="Geometric median by smoothed Weiszfeld, started from the coordinate-wise median.",
    params={
        "nu": Param(
            "nu",
            float,
            None,
            "smoothing ν (default 1e-6 x median distance of the inputs to the start)",
            minimum=0.0,
            nullable=True,
        ),
        "max_iter": Param(
            "max_iter", int, 100, "maximum Weiszfeld iterations T (0: the coordinate-wise median)", minimum=0
        ),
        "tol": Param("tol", float, 1e-7, "stop when a step moves z by <= tol x scale", minimum=0.0),
    },
)
def geometric_median(
    x: Tensor, *, f: int = 0, nu: float | None = None, max_iter: int = 100, tol: float = 1e-7
) -> Aggregate:
    """Approximate geometric median argmin_z Σ_i ‖z − x_i‖ by smoothed Weiszfeld iterations.

        β_i = 1 / max(‖z − x_i‖, ν),    z ← Σ_i β_i x_i / Σ_i β_i,

    for at most ``max_iter`` (T) iterations, stopping when a step moves z by ≤ tol·scale.
    Convention: starts from the **coordinate-wise median** z₀ (not from zero, not from the mean);
    scale = the median of ‖x_i − z₀‖; ν defaults to 1e-6·scale (given ν is used as is, in the
    inputs' units). Every iterate after the first is a convex combination of the inputs, so all
    distances ‖z − x_i‖ come from one Gram matrix of the x_i − z₀ (one GEMM), the iterations are
    m × m work, and the result is formed once (one pass over x). T = 0 returns z₀.
    Valid when m > 2f (breakdown point 1/2).
    References: Weiszfeld, Tohoku Math. J. 43, 1937; Pillutla, Kakade, Harchaoui, "Robust
    aggregation for federated learning", IEEE Trans. Signal Process. 70, 2022 (smoothed Weiszfeld, RFA).
    """
    z0, lam = geometric_median_weights(x, nu=nu, max_iter=max_iter, tol=tol)
    return Aggregate(z0) if lam is None else Aggregate(weighted_rows(x, lam), lam)
