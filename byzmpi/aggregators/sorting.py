"""Coordinate-wise order statistics over dim 0: a compiled sorting network, or ``torch.sort``.

``reduce_sorted_columns(x, reduction)`` computes ``reduction(sort(x, dim=0))`` column by column.
Two paths give the same values:

* **fast path** — the sorting network for m (:mod:`.sorting_network`) followed by the reduction,
  ``torch.compile``'d (dynamic in d, inductor's fusion-size limit raised so that the whole network
  is one loop over the columns with every intermediate in registers) into one kernel: one read of
  x, one write of the result, about 1–2× the memory floor, against 26–35× for ``torch.median``
  (docs/performance.md). One kernel is compiled per (m, reduction, dtype, device) on first use and
  cached in this process (inductor's on-disk cache makes later processes faster: seconds instead
  of tens of seconds). Nothing is compiled at import.
* **fallback** — ``torch.sort`` on column chunks of ``CHUNK_BYTES``, then the same reduction:
  used for small inputs (d < ``COMPILE_MIN_COLUMNS`` or m < 3: not worth a compile), when
  compilation is disabled (``BYZMPI_COMPILE=0`` or :func:`set_compile_enabled`), on a device with
  no compiler backend (CUDA without triton), and, with a warning, if compiling fails.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from .sorted_reductions import SortedReduction
from .sorting_network import batcher_pairs, sort_rows

#: bytes of one sorted block in the fallback (the sort allocates values and indices of this size)
CHUNK_BYTES = 16 << 20
#: bytes of one gathered block in :func:`reduce_sorted_rows` (cache-resident, allocated once a call)
SELECT_CHUNK_BYTES = 24 << 20
#: below this many columns the fallback is used (a compile would cost more than it saves)
COMPILE_MIN_COLUMNS = 1 << 16
#: below this many rows the fallback is used
COMPILE_MIN_ROWS = 3
#: inductor's ``max_fusion_size`` for the kernels: large enough for one loop over the columns
FUSION_LIMIT = 1 << 16

_compile_enabled = os.environ.get("BYZMPI_COMPILE", "1").strip().lower() not in ("0", "false", "no", "off")
_kernels: dict[tuple[Any, ...], Callable[[Tensor], Tensor] | None] = {}

Reduction = SortedReduction


def set_compile_enabled(enabled: bool) -> bool:
    """Turn the compiled fast path on or off for this process; returns the previous setting."""
    global _compile_enabled
    previous, _compile_enabled = _compile_enabled, bool(enabled)
    return previous


def compile_enabled() -> bool:
    return _compile_enabled


def column_chunks(x: Tensor, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, int]]:
    m, d = x.shape
    step = max(1, chunk_bytes // (max(m, 1) * x.element_size()))
    for start in range(0, d, step):
        yield start, min(start + step, d)


def _device_can_compile(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    return False


def uses_compiled_path(x: Tensor) -> bool:
    """Whether :func:`reduce_sorted_columns` would try the compiled kernel for ``x``."""
    m, d = x.shape
    return (
        _compile_enabled
        and m >= COMPILE_MIN_ROWS
        and d >= COMPILE_MIN_COLUMNS
        and x.dtype in (torch.float32, torch.float64)
        and _device_can_compile(x.device)
    )


def _make_kernel(m: int, reduction: Reduction) -> Callable[[Tensor], Tensor]:
    if "mpi4py.MPI" in sys.modules:  # no compile-worker subprocesses (fork) inside an MPI rank
        import torch._inductor.config as inductor_config

        inductor_config.compile_threads = 1
    pairs = batcher_pairs(m)

    def kernel(x: Tensor) -> Tensor:
        return reduction(sort_rows(x.unbind(0), pairs))

    # a code object of its own per kernel, so that dynamo's per-code cache holds one entry each
    tag = re.sub(r"\W+", "_", repr(reduction)).strip("_").lower()
    code = kernel.__code__.replace(co_name=f"sorted_{tag}_m{m}")
    fn = types.FunctionType(code, kernel.__globals__, code.co_name, None, kernel.__closure__)
    # inductor fuses at most 64 nodes per group by default: the network (hundreds of min/max) then
    # splits into several loops over the columns with full-size intermediate rows between them
    # (measured: trimmed mean at m = 32 went from 3x to 1.0x the memory floor with the limit raised)
    return torch.compile(fn, dynamic=True, fullgraph=True, options={"max_fusion_size": FUSION_LIMIT})


def _compiled(x: Tensor, reduction: Reduction) -> Tensor | None:
    key = (x.shape[0], reduction, x.dtype, x.device.type)
    kernel = _kernels.get(key, ...)
    if kernel is None:
        return None
    if kernel is ...:
        kernel = _kernels[key] = _make_kernel(x.shape[0], reduction)
    try:
        with torch.no_grad():
            return kernel(x.contiguous())
    except Exception as exc:  # noqa: BLE001 - any compiler failure means: use the fallback
        _kernels[key] = None
        warnings.warn(
            f"byzmpi: compiling the sorting network for m={x.shape[0]} ({reduction}) failed "
            f"({type(exc).__name__}: {exc}); using torch.sort instead",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def reduce_sorted_columns_fallback(x: Tensor, reduction: Reduction) -> Tensor:
    """``reduction`` of ``torch.sort(x, dim=0)``, chunk by chunk."""
    out = torch.empty(x.shape[1], dtype=x.dtype, device=x.device)
    for start, end in column_chunks(x):
        out[start:end] = reduction.on_sorted(torch.sort(x[:, start:end], dim=0).values)
    return out


def reduce_sorted_columns(x: Tensor, reduction: Reduction) -> Tensor:
    """``out_j = reduction(sorted column j of x)`` for x of shape (m, d); see the module doc."""
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty (m, d) tensor, got shape {tuple(x.shape)}")
    if uses_compiled_path(x):
        out = _compiled(x, reduction)
        if out is not None:
            return out
    return reduce_sorted_columns_fallback(x, reduction)


def reduce_sorted_rows(x: Tensor, index: Tensor, reduction: Reduction) -> Tensor:
    """``reduce_sorted_columns(x[index], reduction)`` without forming the (k, d) copy ``x[index]``.

    The selected rows are gathered block by block (about ``SELECT_CHUNK_BYTES`` of them, at least
    ``COMPILE_MIN_COLUMNS`` columns, blocks of near-equal width) into one small buffer, which the
    reduction then reads while it is still in cache: one read of the selected rows, no
    full-size temporary (a fresh k·d tensor costs its page faults on every call). Each column is
    reduced independently, so the result is bitwise that of the one-block form.
    """
    if x.dim() != 2 or index.dim() != 1 or index.numel() == 0:
        raise ValueError(f"expected an (m, d) tensor and a non-empty index, got {tuple(x.shape)}, {tuple(index.shape)}")
    k, d = index.numel(), x.shape[1]
    index = index.to(device=x.device, dtype=torch.long)
    if x.device.type == "cpu" and not x.requires_grad:
        index = index.cpu()
    if int(index.min()) < 0 or int(index.max()) >= x.shape[0]:
        raise IndexError(f"row index out of range for {x.shape[0]} rows: {index.tolist()}")
    step = max(COMPILE_MIN_COLUMNS, SELECT_CHUNK_BYTES // (k * x.element_size()))
    if d <= step:
        return reduce_sorted_columns(x.index_select(0, index), reduction)
    blocks = -(-d // step)
    step = -(-d // blocks)
    out = torch.empty(d, dtype=x.dtype, device=x.device)
    buf = torch.empty(k * step, dtype=x.dtype, device=x.device)
    for start in range(0, d, step):
        end = min(start + step, d)
        block = buf[: k * (end - start)].view(k, end - start)
        _gather_rows(x[:, start:end], index, block)
        out[start:end] = reduce_sorted_columns(block, reduction)
    return out


def _gather_rows(src: Tensor, index: Tensor, out: Tensor) -> None:
    """out[j] = src[index[j]] for a column slice ``src`` of a row-major tensor: one contiguous copy
    per row (``torch.index_select`` on a strided slice runs an elementwise kernel about 10× slower,
    and numpy's ``take`` first copies the whole strided slice into a contiguous temporary)."""
    for j, i in enumerate(index.tolist()):
        out[j].copy_(src[i])
