"""Pairwise squared Euclidean distances from one centred Gram matrix.

    D_ij = ‖c_i‖² + ‖c_j‖² − 2⟨c_i, c_j⟩,   c_i = x_i − x̄,

computed as a single GEMM ``C Cᵀ`` accumulated over column chunks (so the centred copy never
exists in full: one pass to get x̄, one pass for the Gram). Centring makes the result accurate in
float32 also when all vectors share a component far larger than their differences, where the
uncentred identity ‖x_i‖² + ‖x_j‖² − 2⟨x_i, x_j⟩ cancels catastrophically.

If float32 overflows (hostile finite inputs such as 1e38), the Gram is recomputed in float64.
The diagonal is exactly 0 and every entry is ≥ 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: columns per chunk: keeps the centred block around 8 MB for m = 32
CHUNK_BYTES = 8 << 20


def centred_gram(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``(x − x̄)(x − x̄)ᵀ`` for ``x`` of shape (m, d), accumulated over column chunks."""
    dtype = dtype or x.dtype
    m, d = x.shape
    mean = x.mean(0, dtype=torch.float64).to(dtype)
    gram = torch.zeros(m, m, dtype=dtype, device=x.device)
    step = max(1, CHUNK_BYTES // (max(m, 1) * torch.finfo(dtype).bits // 8))
    for start in range(0, d, step):
        block = x[:, start : start + step].to(dtype) - mean[start : start + step]
        gram.addmm_(block, block.T)
    return gram


def pairwise_sq_distances(x: Tensor) -> Tensor:
    """Matrix of squared distances ‖x_i − x_j‖² for the rows of ``x`` (m, d), in x's dtype
    (float64 where float32 would overflow)."""
    gram = centred_gram(x)
    if not torch.isfinite(gram).all():
        gram = centred_gram(x, torch.float64)
    sq = gram.diagonal()
    dist = (sq[:, None] + sq[None, :] - 2.0 * gram).clamp_(min=0.0)
    dist.fill_diagonal_(0.0)
    return dist
