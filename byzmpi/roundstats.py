"""Per-round statistics for the trace, computed on the server from the round's rows.

The honest-mean metrics use the Byzantine flags, knowledge that only a simulation has; the trace
lists them in ``oracle_fields``. Every reduction runs over column chunks with float64
accumulation, so it never materialises a float64 copy of the (m, d) rows (at d = 1e6 that copy
cost more than the aggregation itself) and 1e38 entries give finite-or-inf, never NaN, norms.

Definitions (x_i the rows, c the honest mean, all sums in float64 over column chunks of
:data:`CHUNK` columns, chunk by chunk in column order):

* ``row_norms``:     ‖x_i‖ = sqrt(Σ_chunks Σ_{j ∈ chunk} x_ij²);
* ``honest_mean``:   c_j = (1/|H|) Σ_{i ∈ H} x_ij, per column, over the honest rows H;
* ``distances_to``:  ‖x_i − c‖ = sqrt(Σ_chunks Σ_{j ∈ chunk} (x_ij − c_j)²).

The module-level functions are the reference definitions. :class:`StatsWorkspace` computes the
same numbers, bit for bit (the same torch reductions on the same contiguous float64 chunks, in the
same order), into buffers it keeps from round to round, and computes the norms and the distances
of the same rows in one pass: the server calls it every round, where the reference functions'
fresh float64 chunks cost page faults at large d and their many small calls cost tens of µs at
small d (issue 12, item 3).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

NAN = float("nan")
CHUNK = 1 << 16  # columns per chunk


def _chunks(d: int) -> Iterator[slice]:
    for start in range(0, d, CHUNK):
        yield slice(start, min(start + CHUNK, d))


def row_norms(msgs: Tensor) -> Tensor:
    """‖x_i‖ per row (float64)."""
    acc = torch.zeros(msgs.shape[0], dtype=torch.float64, device=msgs.device)
    for cols in _chunks(msgs.shape[1]):
        acc += msgs[:, cols].double().square().sum(1)
    return acc.sqrt_()


def honest_mean(rows: Tensor, honest: Tensor) -> Tensor | None:
    """Mean of the honest rows (float64), or None when there is none."""
    if not bool(honest.any()):
        return None
    chosen = rows[honest] if not bool(honest.all()) else rows
    out = torch.empty(rows.shape[1], dtype=torch.float64, device=rows.device)
    for cols in _chunks(rows.shape[1]):
        out[cols] = chosen[:, cols].double().mean(0)
    return out


def distances_to(rows: Tensor, centre: Tensor | None) -> Tensor:
    """‖x_i − c‖ per row (float64); NaN when there is no centre."""
    if centre is None:
        return torch.full((rows.shape[0],), NAN, dtype=torch.float64)
    acc = torch.zeros(rows.shape[0], dtype=torch.float64, device=rows.device)
    for cols in _chunks(rows.shape[1]):
        acc += (rows[:, cols].double() - centre[cols]).square_().sum(1)
    return acc.sqrt_()


def distance(a: Tensor, centre: Tensor | None) -> float:
    if centre is None:
        return NAN
    value = float(distances_to(a.reshape(1, -1), centre)[0])
    return value if math.isfinite(value) else float("inf")


class StatsWorkspace:
    """The reference statistics above, computed into buffers reused from round to round.

    Each result equals the reference function's bit for bit: a float32 chunk is copied into a
    contiguous float64 buffer of the layout the reference's ``.double()`` makes (a float64 chunk is
    used in place, as ``.double()`` does), and reduced by the same torch call. Buffers grow on
    demand (a method may aggregate more rows than it received, e.g. stored client states) and live
    on the rows' device. Rows that are not contiguous go to the reference functions."""

    def __init__(self) -> None:
        self._flat: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}
        self._views: dict[tuple[str, torch.dtype, torch.device, tuple[int, ...]], Tensor] = {}

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        """A contiguous tensor of ``shape`` over the reused buffer ``name`` (the same view object
        for the same shape: a round costs a dictionary look-up per buffer, not a new view)."""
        key = (name, dtype, device, shape)
        view = self._views.get(key)
        if view is not None:
            return view
        numel = math.prod(shape)
        flat = self._flat.get(key[:3])
        if flat is None or flat.numel() < numel:
            flat = torch.empty(max(numel, 1), dtype=dtype, device=device)
            self._flat[key[:3]] = flat
            self._views = {k: v for k, v in self._views.items() if k[:3] != key[:3]}  # views of the old buffer
        view = flat[:numel].view(shape)
        if len(self._views) >= 1024:
            self._views.clear()
        self._views[key] = view
        return view

    def _double(self, src: Tensor, name: str) -> Tensor:
        """``src.double()`` for a column chunk of contiguous rows, into a reused buffer."""
        if src.dtype == torch.float64:
            return src
        m, w = src.shape
        return self._buffer(name, (m, w), torch.float64, src.device).copy_(src)

    def honest_mean(self, rows: Tensor, honest: np.ndarray) -> Tensor | None:
        """:func:`honest_mean`, the honest mask a numpy bool array (one per row); the result is a
        buffer of this workspace, valid until its next ``honest_mean``."""
        if not rows.is_contiguous():
            return honest_mean(rows, torch.from_numpy(np.asarray(honest, dtype=bool)).to(rows.device))
        count = int(np.count_nonzero(honest))
        if count == 0:
            return None
        m, d = rows.shape
        if count < m:  # rows[honest], selected into a reused buffer
            index = torch.from_numpy(np.flatnonzero(honest)).to(rows.device)
            chosen = self._buffer("chosen", (count, d), rows.dtype, rows.device)
            torch.index_select(rows, 0, index, out=chosen)
        else:
            chosen = rows
        out = self._buffer("centre", (d,), torch.float64, rows.device)
        for cols in _chunks(d):
            torch.mean(self._double(chosen[:, cols], "block"), 0, out=out[cols])
        return out

    def centre_norms_distances(self, rows: Tensor, honest: np.ndarray) -> tuple[Tensor | None, np.ndarray, np.ndarray]:
        """(:func:`honest_mean`, :func:`row_norms`, :func:`distances_to` that mean) of the same rows
        in one pass: each column chunk is converted to float64 once, its part of the honest mean
        computed, then its part of every row's squared norm and squared distance to that mean (a
        chunk of the mean depends only on the same columns). Equal, bit for bit, to the three
        reference functions; the mean is a buffer of this workspace."""
        if not rows.is_contiguous():
            centre = honest_mean(rows, torch.from_numpy(np.asarray(honest, dtype=bool)).to(rows.device))
            return centre, row_norms(rows).cpu().numpy(), distances_to(rows, centre).cpu().numpy()
        m, d = rows.shape
        dev = rows.device
        count = int(np.count_nonzero(honest))
        index = torch.from_numpy(np.flatnonzero(honest)).to(dev) if 0 < count < m else None
        if index is not None and rows.dtype == torch.float64 and d > CHUNK:
            # the reference takes the float64 chunks of rows[honest]: select the rows first, as it does
            chosen = self._buffer("chosen", (count, d), rows.dtype, dev)
            torch.index_select(rows, 0, index, out=chosen)
        else:
            chosen = None
        centre = self._buffer("centre", (d,), torch.float64, dev) if count else None
        acc_n = self._buffer("acc_norms", (m,), torch.float64, dev)
        acc_d = self._buffer("acc_dists", (m,), torch.float64, dev)
        part = self._buffer("part", (m,), torch.float64, dev)
        for cols in _chunks(d):
            first = cols.start == 0  # the first chunk's sums go straight to the accumulators (0 + s = s)
            block = self._double(rows[:, cols], "block")
            work = self._buffer("work", tuple(block.shape), torch.float64, dev)
            if centre is not None:
                c = centre[cols]
                if index is None:
                    torch.mean(block, 0, out=c)
                elif chosen is not None:
                    torch.mean(chosen[:, cols], 0, out=c)
                else:
                    sel = self._buffer("selected", (count, block.shape[1]), torch.float64, dev)
                    torch.mean(torch.index_select(block, 0, index, out=sel), 0, out=c)
            torch.sum(torch.square(block, out=work), 1, out=acc_n if first else part)
            if not first:
                acc_n += part
            if centre is not None:
                torch.sub(block, centre[cols], out=work).square_()
                torch.sum(work, 1, out=acc_d if first else part)
                if not first:
                    acc_d += part
        norms = acc_n.sqrt_().cpu().numpy().copy()
        dists = acc_d.sqrt_().cpu().numpy().copy() if centre is not None else np.full(m, NAN)
        return centre, norms, dists

    def norms_and_distances(
        self, rows: Tensor, centre: Tensor | None, *, norms: bool = True, distances: bool = True
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(:func:`row_norms`, :func:`distances_to` ``centre``) of the same rows in one pass over
        them, as float64 numpy arrays (copies); either may be skipped (None). Without a centre the
        distances are NaN, as :func:`distances_to`'s."""
        m, d = rows.shape
        if not rows.is_contiguous():
            return (
                row_norms(rows).cpu().numpy() if norms else None,
                distances_to(rows, centre).cpu().numpy() if distances else None,
            )
        dev = rows.device
        do_d = distances and centre is not None
        acc_n = self._buffer("acc_norms", (m,), torch.float64, dev) if norms else None
        acc_d = self._buffer("acc_dists", (m,), torch.float64, dev) if do_d else None
        part = self._buffer("part", (m,), torch.float64, dev)
        for cols in _chunks(d):
            first = cols.start == 0  # the first chunk's sums go straight to the accumulators (0 + s = s)
            block = self._double(rows[:, cols], "block")
            work = self._buffer("work", tuple(block.shape), torch.float64, dev)
            if acc_n is not None:
                torch.sum(torch.square(block, out=work), 1, out=acc_n if first else part)  # x.double().square().sum(1)
                if not first:
                    acc_n += part
            if acc_d is not None:
                assert centre is not None
                torch.sub(block, centre[cols], out=work).square_()  # (x.double() - c).square_()
                torch.sum(work, 1, out=acc_d if first else part)
                if not first:
                    acc_d += part
        out_n = None if acc_n is None else acc_n.sqrt_().cpu().numpy().copy()
        if acc_d is not None:
            out_d: np.ndarray | None = acc_d.sqrt_().cpu().numpy().copy()
        else:
            out_d = np.full(m, NAN) if distances else None
        return out_n, out_d

    def distance(self, a: Tensor, centre: Tensor | None) -> float:
        """:func:`distance`: ‖a − c‖ (inf when not finite, NaN without a centre)."""
        if centre is None:
            return NAN
        row = a.reshape(1, -1)
        if not row.is_contiguous():
            return distance(a, centre)
        acc = self._buffer("acc_distance", (1,), torch.float64, row.device)
        part = self._buffer("part_distance", (1,), torch.float64, row.device)
        for cols in _chunks(row.shape[1]):
            block = self._double(row[:, cols], "block")
            work = self._buffer("work", tuple(block.shape), torch.float64, row.device)
            torch.sub(block, centre[cols], out=work).square_()
            torch.sum(work, 1, out=acc if cols.start == 0 else part)
            if cols.start:
                acc += part
        value = float(acc.sqrt_().item())
        return value if math.isfinite(value) else float("inf")
