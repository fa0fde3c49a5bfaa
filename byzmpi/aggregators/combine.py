"""Weighted combinations of rows, the last step of every rule that averages selected inputs."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .buffers import OutputBuffer, output


def weighted_rows(x: Tensor, w: Tensor) -> Tensor:
    """Σ_i w_i x_i for x (m, d) and weights w (m,) with w ≥ 0 and Σ w ≤ 1, in x's dtype.

    One matrix–vector product ``torch.mv(xᵀ, w)`` (a single pass over x). Such a combination lies
    in the convex hull of the rows and 0, so |out_j| ≤ max_i |x_ij|: it cannot overflow for finite
    inputs (each partial sum is bounded the same way), and float32 accumulation over m terms loses
    at most about m·ε relative. torch (MKL), not numpy's OpenBLAS gemv: on the 2-core machines
    OpenBLAS's worker threads keep spinning after a call, and a torch GEMM started next (the Gram
    of the distance-based rules) then runs 2–4× slower (measured at m = 16, d = 1e6: numpy gemv
    then X·Xᵀ 17 ms, torch.mv then X·Xᵀ 5.6 ms, X·Xᵀ alone 3.9 ms).
    """
    w = w.to(device=x.device, dtype=x.dtype)
    return torch.mv(x.T, w)


def all_finite(t: Tensor) -> bool:
    """Whether every entry of ``t`` is finite. On CPU by numpy (one single-threaded pass): torch's
    ``isfinite(t).all()`` runs two parallel regions, which on the shared 2-core machines wait for a
    descheduled thread (measured at d = 1e6 under load: 63 ms against numpy's 0.5 ms)."""
    if t.device.type == "cpu" and not t.requires_grad and t.dtype in (torch.float32, torch.float64):
        return bool(np.isfinite(t.contiguous().numpy()).all())
    return bool(torch.isfinite(t).all())


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


def mix_rows(x: Tensor, mix: Tensor, out: OutputBuffer | None = None) -> Tensor:
    """y = mix·x for a (m', m) mixing matrix whose rows are nonnegative weights summing to ≤ 1
    (bucketing, NNM): one GEMM in x's dtype. Each output row is a convex combination of input
    rows, so it cannot overflow. (One large operation rather than m' row operations: on these
    shared 2-core machines every parallel operation can wait milliseconds for a core.) Into
    ``out`` when given."""
    y = output(out, (mix.shape[0], *x.shape[1:]), x)
    return torch.matmul(mix.to(device=x.device, dtype=x.dtype), x, out=y)
