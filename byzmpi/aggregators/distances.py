"""Pairwise squared Euclidean distances from one centred Gram matrix.

    G = (P − 1oᵀ)(P − 1oᵀ)ᵀ,    D_ij = G_ii + G_jj − 2 G_ij = ‖p_i − p_j‖²,

for the rows p_i of P and an origin o, computed as one GEMM accumulated over column chunks (the
shifted copy never exists in full). Shifting the origin into the cloud of points keeps the result
accurate in float32 when all vectors share a component far larger than their differences, where
the unshifted identity ‖x_i‖² + ‖x_j‖² − 2⟨x_i, x_j⟩ cancels catastrophically.

The origin matters: the rounding error of D_ij is about ε·(G_ii + G_jj), so it must lie near the
points whose mutual distances matter (the honest cluster). :func:`accurate_gram` starts from the
first row (no extra pass over the data, unlike the mean) and, when that origin is far from the
tightest part of the cloud compared to the cloud's own spread (a Byzantine first row, or any
row-0 outlier), recomputes once around the row whose median distance to the others is smallest.
If float32 overflows (hostile finite inputs such as 1e38), the Gram is recomputed in float64.

The shifted Gram is formed the cheap way when that is accurate: one GEMM G = P·Pᵀ and one
matrix–vector product p = P·o (for a row origin o = p_k, p is column k of G: no pass besides the
GEMM), then (P − 1oᵀ)(P − 1oᵀ)ᵀ = G − p1ᵀ − 1pᵀ + ‖o‖² in float64 (m × m
work). Its rounding error is about ε·(‖p_i‖² + ‖o‖²) instead of ε·‖p_i − o‖², so it is kept only
when the median squared norm of the rows plus ‖o‖² is at most ``PLAIN_FACTOR`` times the median
shifted squared norm (the shared component no larger than a few spreads, as for gradients of one
model); otherwise the shifted rows are formed block by block as before (one extra pass over the
data), which is the case whenever a shared component dominates the differences.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: bytes of the shifted column block (m rows). Few large blocks: on the shared 2-core machines
#: every parallel operation can wait for a core (measured at m = 32, d = 1e6: 2–8 MB blocks took
#: 3–15× the plain GEMM, 32 MB blocks 1.7–2×)
CHUNK_BYTES = 32 << 20
#: recentre when G_kk > RECENTRE_FACTOR / ε · s  (s: the tightest row's median distance)
RECENTRE_FACTOR = 1e-4
#: the one-GEMM form is kept when median ‖p_i‖² + ‖o‖² ≤ PLAIN_FACTOR · median ‖p_i − o‖²: its rounding
#: error is then at most about this many times the blockwise shifted form's
PLAIN_FACTOR = 16.0


_workspaces: dict[tuple[torch.dtype, torch.device], Tensor] = {}


def _workspace(numel: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A scratch buffer kept between calls (at most CHUNK_BYTES per dtype and device): a fresh
    32 MB block costs about 10% of a Gram in page faults. Never returned to a caller."""
    buf = _workspaces.get((dtype, device))
    if buf is None or buf.numel() < numel:
        buf = _workspaces[(dtype, device)] = torch.empty(numel, dtype=dtype, device=device)
    return buf[:numel]


def _columns_per_chunk(rows: int, dtype: torch.dtype) -> int:
    return max(1, CHUNK_BYTES // (max(rows, 1) * (torch.finfo(dtype).bits // 8)))


def gram(
    x: Tensor,
    origin: Tensor,
    *,
    extra: Tensor | None = None,
    dtype: torch.dtype | None = None,
    row: int | None = None,
    raw: Tensor | None = None,
) -> Tensor:
    """``(P − o)(P − o)ᵀ`` for the rows of P = [x; extra] (extra: optional (k, d) rows appended)
    and the origin ``o`` (d,), in ``dtype`` (default x's): one GEMM corrected for the origin when
    that is accurate (see the module doc), otherwise accumulated over shifted column chunks.

    ``row``: the origin is ``x[row]``, so that p = X·o is column ``row`` of X·Xᵀ (no extra pass);
    ``raw``: X·Xᵀ already computed (:func:`raw_gram`), reused instead of a second GEMM."""
    dtype = dtype or x.dtype
    if extra is None and dtype == x.dtype and x.dtype in (torch.float32, torch.float64) and x.shape[1] > 0:
        g = _plain_gram(x, origin, row=row, raw=raw)
        if g is not None:
            return g
    m, d = x.shape
    k = 0 if extra is None else extra.shape[0]
    out = torch.zeros(m + k, m + k, dtype=dtype, device=x.device)
    step = min(d, _columns_per_chunk(m + k, dtype))
    buf = _workspace((m + k) * step, dtype, x.device).view(m + k, step)
    for start in range(0, d, step):
        end = min(start + step, d)
        block = buf[:, : end - start]
        o = origin[start:end].to(dtype)
        torch.sub(x[:, start:end].to(dtype), o, out=block[:m])
        if extra is not None:
            torch.sub(extra[:, start:end].to(dtype), o, out=block[m:])
        out.addmm_(block, block.T)
    return out


def raw_gram(x: Tensor) -> Tensor | None:
    """X·Xᵀ (one GEMM in x's dtype) as float64, or None when it overflows or x is not float32/64."""
    if x.dtype not in (torch.float32, torch.float64) or x.shape[1] == 0:
        return None
    raw = (x @ x.T).double()
    return raw if bool(torch.isfinite(raw).all()) else None


def _plain_gram(x: Tensor, origin: Tensor, *, row: int | None = None, raw: Tensor | None = None) -> Tensor | None:
    """(X − 1oᵀ)(X − 1oᵀ)ᵀ from one GEMM X·Xᵀ and p = X·o, or None when that form is not accurate
    enough (or overflows); the m × m correction in float64, the result in x's dtype. With o = x_row,
    p and ‖o‖² are read from X·Xᵀ itself (no pass over the data besides the GEMM)."""
    if raw is None:
        raw = raw_gram(x)
        if raw is None:
            return None
    if row is not None:
        p = raw[:, row].clone()
        oo = float(raw[row, row])
    else:
        o = origin.to(device=x.device, dtype=x.dtype)
        p = torch.mv(x, o).double()
        oo = float(torch.dot(o, o))
        if not (bool(torch.isfinite(p).all()) and math.isfinite(oo)):
            return None
    g = raw - p[:, None] - p[None, :] + oo
    g = (g + g.T) * 0.5
    if float(raw.diagonal().median()) + oo > PLAIN_FACTOR * float(g.diagonal().median()):
        return None
    return g.to(x.dtype)


def sq_distances_from_gram(g: Tensor) -> Tensor:
    """D_ij = G_ii + G_jj − 2G_ij, clamped at 0, exactly symmetric, exact 0 on the diagonal."""
    sq = g.diagonal()
    dist = (sq[:, None] + sq[None, :] - (g + g.T)).clamp_(min=0.0)
    dist.fill_diagonal_(0.0)
    return dist


def _finite_gram(x: Tensor, origin: Tensor, *, row: int | None = None, raw: Tensor | None = None) -> Tensor:
    g = gram(x, origin, row=row, raw=raw)
    if not torch.isfinite(g).all():
        g = gram(x, origin, dtype=torch.float64)
    return g


def row_medians(dist: Tensor) -> Tensor:
    """Per row, the (lower) median of its distances to the *other* rows."""
    m = dist.shape[0]
    off = dist.masked_fill(torch.eye(m, dtype=torch.bool, device=dist.device), float("inf"))
    return off.sort(dim=1).values[:, max(m - 2, 0) // 2]


def accurate_gram(x: Tensor) -> tuple[Tensor, int]:
    """A Gram matrix of the rows of ``x`` (m, d) shifted to a row origin chosen for accuracy,
    and that row's index.

    First around x_0; then, if the tightest row k (smallest median distance s to the others, a
    cheap medoid that lies in the majority cluster whenever one exists) is so far from x_0 that
    ε·G_kk > 1e-4·s, once more around x_k. Distances are then accurate to about ε·(spread of the
    majority cluster) whenever a majority of rows form a cluster. Both origins are rows, so
    the one GEMM X·Xᵀ serves both (the shifted blockwise form is only formed when the plain one
    is not accurate).
    """
    m = x.shape[0]
    raw = raw_gram(x)  # one GEMM, shared by both origins
    g = _finite_gram(x, x[0], row=0, raw=raw)
    if m <= 2:
        return g, 0
    med = row_medians(sq_distances_from_gram(g))
    k = int(torch.argmin(med))
    eps = torch.finfo(g.dtype).eps
    if k != 0 and float(g[k, k]) * eps > RECENTRE_FACTOR * float(med[k]):
        return _finite_gram(x, x[k], row=k, raw=raw), k
    return g, 0


def pairwise_sq_distances(x: Tensor) -> Tensor:
    """Matrix of squared distances ‖x_i − x_j‖² for the rows of ``x`` (m, d), in x's dtype
    (float64 where float32 would overflow). Symmetric, ≥ 0, exactly 0 on the diagonal."""
    g, _ = accurate_gram(x)
    return sq_distances_from_gram(g)


def sq_distances_to(x: Tensor, origin: Tensor) -> Tensor:
    """‖x_i − o‖² = Σ_j (x_ij − o_j)² for every row (the diagonal of ``gram(x, o)`` without the
    rest), as float64.

    Differences first (no cancellation), in x's dtype over column blocks that stay in cache; their
    squares summed with float64 accumulation (``torch.sum(..., dtype=float64)``), so the result is
    within a few units of x's rounding of each term, whatever d. (``torch.cdist`` accumulates in
    x's dtype: at d = 1e7 in float32 it was 0.8% off, more than the spread of the distances a rule
    like MoNNA ranks.) Rows whose squared differences overflow x's dtype are recomputed in float64.
    """
    m, d = x.shape
    o = origin.to(x.dtype)
    acc = torch.zeros(m, dtype=torch.float64, device=x.device)
    step = max(4096, (1 << 18) // max(m, 1))  # ~1 MB of float32 differences per block
    block = torch.empty(m, min(step, d), dtype=x.dtype, device=x.device)
    for start in range(0, d, step):
        cols = slice(start, min(start + step, d))
        diff = block[:, : cols.stop - cols.start]
        torch.sub(x[:, cols], o[cols], out=diff)
        diff.mul_(diff)
        acc += torch.sum(diff, 1, dtype=torch.float64)
    bad = ~torch.isfinite(acc)
    if bool(bad.any()):
        acc[bad] = (x[bad].double() - origin.double()).square_().sum(1)
    return acc
