"""Top-k's wire format: int32 indices packed bit-for-bit into float32 slots.

pack: ``out[K:2K] = idx.to(int32).view(float32)``; unpack: ``wire[K:2K].view(int32)``. A view
reinterprets the 4 bytes, so every index survives — including 1 … 2²³−1, whose bit patterns are
*denormal* floats (a cast, or any arithmetic under flush-to-zero, would destroy them). The wire
must therefore only ever be copied (MPI, ``copy_``), never converted or computed on, before unpack.
Honest indices are < d ≤ 0x7F7FFFFF, so they are never NaN/Inf patterns; a hostile row may hold
any 32 bits, which :func:`bad_index_rows` catches.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pack_indices(idx: Tensor, out: Tensor) -> None:
    """Write integer indices ``idx`` (any int dtype, values < 2³¹) bit-for-bit into float32 ``out``."""
    out.copy_(idx.to(device=out.device, dtype=torch.int32).view(torch.float32))


def unpack_indices(slots: Tensor) -> Tensor:
    """The int32 indices held bit-for-bit by float32 ``slots`` (last dim contiguous), as a view."""
    return slots.contiguous().view(torch.int32)


def bad_index_rows(idx: Tensor, d: int) -> Tensor:
    """Bool per row of (m, K) int32 indices: some index outside [0, d) or two indices equal.

    NaN/Inf float patterns are ≥ 0x7F800000 > d or negative as int32, so the range test covers them.
    Rows already strictly increasing (every honest top-k row) are distinct in O(K); only the
    others are sorted to look for a repeat.
    """
    bad = ((idx < 0) | (idx >= d)).any(dim=1)
    if idx.shape[1] < 2:
        return bad
    unsorted = ~(idx[:, 1:] > idx[:, :-1]).all(dim=1)
    if bool(unsorted.any()):
        s = torch.sort(idx[unsorted], dim=1).values
        bad[unsorted] |= (s[:, 1:] == s[:, :-1]).any(dim=1)
    return bad
