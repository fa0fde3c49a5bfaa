"""Coordinate-wise order statistics over dim 0, chunked over columns so memory stays bounded."""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import Tensor

#: bytes of one sorted block (the sort allocates values and indices of this size)
CHUNK_BYTES = 16 << 20


def column_chunks(x: Tensor) -> Iterator[tuple[int, int]]:
    m, d = x.shape
    step = max(1, CHUNK_BYTES // (max(m, 1) * x.element_size()))
    for start in range(0, d, step):
        yield start, min(start + step, d)


def map_sorted_columns(x: Tensor, reduce: Callable[[Tensor], Tensor]) -> Tensor:
    """``out[s:e] = reduce(sort(x[:, s:e], dim=0))`` for every column chunk."""
    out = torch.empty(x.shape[1], dtype=x.dtype, device=x.device)
    for start, end in column_chunks(x):
        out[start:end] = reduce(torch.sort(x[:, start:end], dim=0).values)
    return out
