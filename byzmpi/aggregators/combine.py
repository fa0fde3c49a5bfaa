"""Weighted combinations of rows, the last step of every rule that averages selected inputs."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def weighted_rows(x: Tensor, w: Tensor) -> Tensor:
    """Σ_i w_i x_i for x (m, d) and weights w (m,) with w ≥ 0 and Σ w ≤ 1, in x's dtype.

    One matrix–vector product (a single pass over x). Such a combination lies in the convex hull
    of the rows and 0, so |out_j| ≤ max_i |x_ij|: it cannot overflow for finite inputs (each
    partial sum is bounded the same way), and float32 accumulation over m terms loses at most
    about m·ε relative. On CPU (contiguous float32/float64 x, no autograd) the product is numpy's
    gemv ``w @ x`` on zero-copy views (OpenBLAS: measured 1.3–2× faster than ``torch.mv`` here,
    and steadier when the cores are shared); elsewhere ``torch.mv``. Both accumulate in x's dtype.
    """
    w = w.to(device=x.device, dtype=x.dtype)
    if _numpy_ok(x):
        with np.errstate(all="ignore"):  # as torch.mv: inf/nan propagate without warnings
            return torch.from_numpy(w.contiguous().numpy() @ x.numpy())
    return torch.mv(x.T, w)


def all_finite(t: Tensor) -> bool:
    """Whether every entry of ``t`` is finite. On CPU by numpy (one single-threaded pass): torch's
    ``isfinite(t).all()`` runs two parallel regions, which on the shared 2-core machines wait for a
    descheduled thread (measured at d = 1e6 under load: 63 ms against numpy's 0.5 ms)."""
    if t.device.type == "cpu" and not t.requires_grad and t.dtype in (torch.float32, torch.float64):
        return bool(np.isfinite(t.contiguous().numpy()).all())
    return bool(torch.isfinite(t).all())


def _numpy_ok(x: Tensor) -> bool:
    """Whether ``x`` can be handed to numpy as a zero-copy view (CPU, contiguous, float, no grad)."""
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and x.dim() == 2
        and x.is_contiguous()
        and not x.requires_grad
        and x.shape[1] > 0
    )


def mean_of_rows(x: Tensor, index: Tensor) -> Tensor:
    """Mean of the rows ``x[index]`` (as :func:`weighted_rows` with weight 1/k on each)."""
    w = torch.zeros(x.shape[0], dtype=torch.float64)
    w[index.cpu()] = 1.0 / index.numel()
    return weighted_rows(x, w)


def selection_weights(m: int, index: Tensor) -> Tensor:
    """float64 weights on CPU: 1/k on the k selected rows, 0 elsewhere (``Aggregate.weights``)."""
    w = torch.zeros(m, dtype=torch.float64)
    w[index.cpu()] = 1.0 / index.numel()
    return w


def mix_rows(x: Tensor, mix: Tensor) -> Tensor:
    """y = mix·x for a (m', m) mixing matrix whose rows are nonnegative weights summing to ≤ 1
    (bucketing, NNM): one GEMM in x's dtype. Each output row is a convex combination of input
    rows, so it cannot overflow. (One large operation rather than m' row operations: on these
    shared 2-core machines every parallel operation can wait milliseconds for a core.)"""
    return mix.to(device=x.device, dtype=x.dtype) @ x
