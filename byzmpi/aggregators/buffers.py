"""A pre-aggregator's output tensor, reused from call to call.

A pre-aggregator (clipping, ARC, bucketing, NNM) writes a fresh (m', d) tensor every round. At
large d a fresh tensor costs its page faults on every call: the first write of each 4 KiB page
traps into the kernel, which at m = 16, d = 10⁶ cost as much as the pass itself (docs/performance.md,
"What the aggregators cost"). The pipeline therefore gives each stage an :class:`OutputBuffer` and the
stage writes into it; the result is valid until the stage's next call, which is all the pipeline
needs (the rule reads it, and an aggregate that would alias it is copied out, see
:meth:`OutputBuffer.holds`). Called directly, without a buffer, a pre-aggregator allocates as any
function does.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class OutputBuffer:
    """``buffer(shape, dtype, device)``: a contiguous tensor of that shape over storage kept
    between calls (grown when a call needs more, reallocated when the dtype or device changes).
    Its contents are whatever the last call left."""

    def __init__(self) -> None:
        self._flat: Tensor | None = None

    def __call__(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        numel = math.prod(shape)
        flat = self._flat
        if flat is None or flat.dtype != dtype or flat.device != device or flat.numel() < numel:
            flat = self._flat = torch.empty(max(numel, 1), dtype=dtype, device=device)
        return flat[:numel].view(shape)

    def holds(self, t: Tensor) -> bool:
        """Whether ``t`` lives in this buffer's storage (then it must be copied before the next call)."""
        flat = self._flat
        return (
            flat is not None
            and t.device == flat.device
            and t.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
        )


def output(out: OutputBuffer | None, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """A tensor of ``shape`` in ``like``'s dtype and device: from ``out`` when given, else new."""
    if out is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    return out(shape, like.dtype, like.device)
