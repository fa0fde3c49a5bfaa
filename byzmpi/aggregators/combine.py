"""Weighted combinations of rows, the last step of every rule that averages selected inputs."""

from __future__ import annotations

import torch
from torch import Tensor


def weighted_rows(x: Tensor, w: Tensor) -> Tensor:
    """Σ_i w_i x_i for x (m, d) and weights w (m,) with w ≥ 0 and Σ w ≤ 1, in x's dtype.

    One matrix–vector product (a single pass over x). Such a combination lies in the convex hull
    of the rows and 0, so |out_j| ≤ max_i |x_ij|: it cannot overflow for finite inputs (each
    partial sum is bounded the same way), and float32 accumulation over m terms loses at most
    about m·ε relative.
    """
    return torch.mv(x.T, w.to(device=x.device, dtype=x.dtype))


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
    """y = mix·x for a (m', m) mixing matrix with rows of nonnegative weights summing to ≤ 1.

    A sparse mix (at most 2 nonzeros per output row on average, as bucketing's) is applied row by
    row (y_b = Σ_j mix_bj x_j as scaled adds: a memory pass, not a GEMM); a dense one (NNM's) by
    one GEMM. Either way each output row is a convex combination of input rows: no overflow.
    """
    mix = mix.to(device=x.device)
    nonzero = mix != 0
    if int(nonzero.sum()) > 2 * mix.shape[0]:
        return mix.to(x.dtype) @ x
    out = torch.zeros(mix.shape[0], x.shape[1], dtype=x.dtype, device=x.device)
    for b in range(mix.shape[0]):
        members = torch.nonzero(nonzero[b]).flatten().tolist()
        if not members:
            continue
        torch.mul(x[members[0]], float(mix[b, members[0]]), out=out[b])
        for j in members[1:]:
            out[b].add_(x[j], alpha=float(mix[b, j]))
    return out
