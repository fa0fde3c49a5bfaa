"""The HDF5 trace of a run, written by rank 0 only.

Layout (schema version 4; version 3 lacked the staging columns rounds.t_stage,
rounds.t_stage_hosts, rounds.staged_d2h and rounds.staged_h2d; version 2 stored messages.clipped as
u1 with 255 for "not applicable"; version 1 lacked rounds.t_setup and rounds.t_wall):

* root attributes: ``schema_version``, ``config`` (resolved, JSON), ``versions`` (JSON),
  ``world_size``, ``n_clients``, ``byzantine_ids``, ``method``, ``aggregator``, ``attack``,
  ``threat_model``, ``seed``, ``simulation`` (omniscient Byzantine messages were built by the
  server), ``oracle_fields`` (columns that use knowledge only a simulation has), ``status``
  (``running`` → ``finished`` | ``failed``), ``rounds_done``.
* ``rounds``: one row per round (:data:`ROUND_DTYPE`). Times in seconds, measured on the server:
  ``t_setup`` round plan, downlink and round-communicator creation; ``t_stage`` the server's
  copies between device and pinned host buffers (downlink out, messages in; 0 without a device
  or with CUDA-aware MPI); ``t_comm`` the collectives minus the slowest host's compute and
  staging; ``t_compute`` that slowest host's compute; ``t_stage_hosts`` that host's staging
  copies; ``t_aggregate`` validation, decoding, attack simulation and the method's update;
  ``t_eval`` evaluation; ``t_io`` trace writes; ``t_round`` the whole round; ``t_wall`` seconds
  since the run (segment) started, at the round's end. ``staged_d2h`` / ``staged_h2d``: bytes
  copied device → host and host → device for MPI this round, by the server and the member hosts
  together (0 when nothing is staged).
* ``messages``: one row per message received (:data:`MESSAGE_DTYPE`).
* ``eval``: one row per evaluation (:data:`EVAL_DTYPE`); ``round`` = number of updates applied.
* ``final_params``: the model after the last round.

The file is created up front with every dataset chunked and resizable, then switched to SWMR
mode, so ``h5py.File(path, "r", swmr=True)`` can follow it while the job runs. Rows are buffered
in preallocated structured arrays (a round's row is one tuple assignment, its messages one slice
assignment per column) and written in blocks (one row per resize costs ~233 µs; blocks ~2 µs per
row).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

SCHEMA_VERSION = 4

#: the parts of a round's time, in the order of the rounds table (each a column of it; the server
#: sums them in its run summary, ``byzmpi summary`` per round)
TIME_SPLIT = ("t_setup", "t_stage", "t_compute", "t_stage_hosts", "t_comm", "t_aggregate", "t_io", "t_eval")
ROUND_DTYPE = np.dtype(
    [
        ("round", "i8"),
        ("full", "u1"),
        ("sampled", "i4"),
        ("byzantine", "i4"),
        ("rejected", "i4"),
        ("skipped", "u1"),
        ("aggregate_norm", "f4"),
        ("honest_mean_norm", "f4"),
        ("dist_honest_mean", "f4"),
        ("update_norm", "f4"),
        ("clip_radius", "f4"),
        ("clipped", "i4"),
        ("bytes_up", "i8"),
        ("bytes_down", "i8"),
        ("t_setup", "f4"),
        ("t_compute", "f4"),
        ("t_comm", "f4"),
        ("t_aggregate", "f4"),
        ("t_io", "f4"),
        ("t_eval", "f4"),
        ("t_round", "f4"),
        ("t_wall", "f8"),
        ("t_stage", "f4"),
        ("t_stage_hosts", "f4"),
        ("staged_d2h", "i8"),
        ("staged_h2d", "i8"),
    ]
)
MESSAGE_DTYPE = np.dtype(
    [
        ("round", "i8"),
        ("client", "i4"),
        ("byzantine", "u1"),
        ("rejected", "u1"),
        ("norm", "f4"),
        ("dist_honest_mean", "f4"),
        ("weight", "f4"),
        ("clipped", "f4"),  # 1.0 clipped, 0.0 not, NaN where the method does not clip (a mean skips it)
        ("bytes", "i4"),
    ]
)
EVAL_DTYPE = np.dtype(
    [
        ("round", "i8"),
        ("loss", "f8"),
        ("accuracy", "f8"),
        ("gap", "f8"),
        ("grad_norm_sq", "f8"),
    ]
)
TABLES = {"rounds": ROUND_DTYPE, "messages": MESSAGE_DTYPE, "eval": EVAL_DTYPE}

#: columns computed with knowledge only a simulation has (who is Byzantine)
ORACLE_FIELDS = [
    "rounds/honest_mean_norm",
    "rounds/dist_honest_mean",
    "messages/byzantine",
    "messages/dist_honest_mean",
    "rounds/byzantine",
]

#: why a message was rejected (messages/rejected)
REJECT_REASONS = {0: "accepted", 1: "non-finite", 2: "bad index", 3: "bad length"}
#: messages/clipped value when the method does not clip
NOT_APPLICABLE = float("nan")
#: what schema versions 1-2 stored there instead (readers convert it to NaN)
LEGACY_NOT_APPLICABLE = 255


def _attr(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return np.asarray(value, dtype=np.int64)  # also an empty list: an int64 array, not float
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return value


class _Block:
    """A table's rows waiting to be written: a preallocated structured array and its fill."""

    def __init__(self, dtype: np.dtype, capacity: int) -> None:
        self.rows = np.zeros(max(capacity, 1), dtype)
        self.n = 0

    def reserve(self, k: int) -> np.ndarray:
        """The next ``k`` rows (a view to fill), growing the array when needed."""
        end = self.n + k
        if end > len(self.rows):
            grown = np.zeros(max(end, 2 * len(self.rows)), self.rows.dtype)
            grown[: self.n] = self.rows[: self.n]
            self.rows = grown
        view = self.rows[self.n : end]
        self.n = end
        return view


class TraceWriter:
    """Buffered, SWMR-readable appends to a run's trace (rank 0 only)."""

    def __init__(
        self,
        path: str | Path,
        attrs: dict[str, Any],
        n_params: int,
        *,
        flush_rows: int = 256,
        flush_seconds: float = 2.0,
        messages: bool = True,
        params_dtype: str = "f4",
        resume_rows: dict[str, int] | None = None,
    ) -> None:
        """Create the trace, or with ``resume_rows`` reopen an existing one and truncate each table
        to the given length (the rows a checkpoint covers) before appending again."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.flush_rows, self.flush_seconds, self.with_messages = flush_rows, flush_seconds, messages
        self._blocks = {name: _Block(dtype, flush_rows + 1) for name, dtype in TABLES.items()}
        self._pending = 0
        self._last_flush = time.monotonic()
        self.io_seconds = 0.0
        if resume_rows is None:
            f = h5py.File(self.path, "w", libver="latest")
            for key, value in {
                **attrs,
                "schema_version": SCHEMA_VERSION,
                "status": "running",
                "rounds_done": 0,
                "oracle_fields": ORACLE_FIELDS,
                "reject_reasons": REJECT_REASONS,
            }.items():
                f.attrs[key] = _attr(value)
            for name, dtype in TABLES.items():
                f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(1024,))
            f.create_dataset("final_params", shape=(n_params,), dtype=params_dtype, fillvalue=np.nan)
        else:
            truncated_copy(
                self.path, resume_rows, {"world_size": attrs.get("world_size"), "resumed_at": json.dumps(resume_rows)}
            )
            f = h5py.File(self.path, "r+", libver="latest")
        f.swmr_mode = True
        self._file = f
        self._datasets = {name: f[name] for name in TABLES}

    def rows(self) -> dict[str, int]:
        """Rows in each table, on disk after :meth:`flush`."""
        return {name: int(ds.shape[0]) + self._blocks[name].n for name, ds in self._datasets.items()}

    def append(self, table: str, rows: np.ndarray) -> None:
        """Queue structured rows for ``table``; written when enough are buffered or time has passed."""
        if table == "messages" and not self.with_messages:
            return
        block = self._blocks[table]
        block.reserve(len(rows))[...] = _as_schema(rows, block.rows.dtype)  # by name, never by position
        self._pending += len(rows)

    def append_round(self, row: tuple[Any, ...]) -> None:
        """Queue one ``rounds`` row given as a tuple in :data:`ROUND_DTYPE`'s field order."""
        block = self._blocks["rounds"]
        block.reserve(1)
        block.rows[block.n - 1] = row
        self._pending += 1

    def reserve_messages(self, k: int) -> np.ndarray | None:
        """``k`` queued ``messages`` rows to fill in place (None when the run does not trace messages)."""
        if not self.with_messages:
            return None
        self._pending += k
        return self._blocks["messages"].reserve(k)

    def maybe_flush(self) -> None:
        if self._pending >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        t0 = time.perf_counter()
        for name, pending in self._blocks.items():
            if not pending.n:
                continue
            ds = self._datasets[name]
            start = ds.shape[0]
            ds.resize((start + pending.n,))
            ds[start:] = pending.rows[: pending.n]
            ds.flush()
            pending.n = 0
        self._pending = 0
        self._last_flush = time.monotonic()
        self.io_seconds += time.perf_counter() - t0

    def close(
        self, status: str, final_params: np.ndarray | None, rounds_done: int, extra: dict[str, Any] | None = None
    ) -> None:
        """Flush, store the final model, and record the run's status (reopening without SWMR,
        since SWMR writers cannot add attributes)."""
        self.flush()
        if final_params is not None:
            self._file["final_params"][...] = final_params
        self._file.close()
        with h5py.File(self.path, "r+") as f:
            f.attrs["status"] = status
            f.attrs["rounds_done"] = rounds_done
            for key, value in (extra or {}).items():
                f.attrs[key] = _attr(value)


def truncated_copy(path: Path, rows: dict[str, int], attrs: dict[str, Any]) -> None:
    """Replace the trace at ``path`` by a copy holding the first ``rows[name]`` rows of each table
    (the rows a checkpoint covers), status ``running``. Works on a trace whose writer was killed
    (read through SWMR), and the copy starts with clean file-consistency flags."""
    tmp = path.with_name(f".{path.name}.resume.tmp")
    with open_trace(path) as old, h5py.File(tmp, "w", libver="latest") as new:
        for key, value in old.attrs.items():
            new.attrs[key] = value
        for name, dtype in TABLES.items():
            have = old[name].shape[0]
            if have < rows.get(name, 0):
                raise ValueError(f"trace {path} holds {have} rows of {name}, the checkpoint expects {rows[name]}")
            data = _as_schema(old[name][: rows.get(name, 0)], dtype)
            new.create_dataset(name, data=data, maxshape=(None,), dtype=dtype, chunks=(1024,))
        new.create_dataset(
            "final_params", shape=old["final_params"].shape, dtype=old["final_params"].dtype, fillvalue=np.nan
        )
        new.attrs["status"] = "running"
        if int(old.attrs.get("schema_version", SCHEMA_VERSION)) != SCHEMA_VERSION:
            new.attrs["upgraded_from_schema"] = int(old.attrs.get("schema_version", 0))
            new.attrs["schema_version"] = SCHEMA_VERSION
        for key, value in attrs.items():
            if value is not None:
                new.attrs[key] = value
    os.replace(tmp, path)


def _as_schema(rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Rows of an older schema in this schema's dtype: shared columns copied, columns it lacked 0
    (a resumed older trace; messages.clipped of schema <= 2 converted, 255 -> NaN)."""
    if rows.dtype == dtype:
        return rows
    out = np.zeros(len(rows), dtype)
    for name in rows.dtype.names or ():
        if name not in (dtype.names or ()):
            continue
        if name == "clipped" and rows.dtype[name] == np.uint8 and dtype[name].kind == "f":
            out[name] = np.where(rows[name] == LEGACY_NOT_APPLICABLE, np.nan, rows[name])
        else:
            out[name] = rows[name]
    return out


def open_trace(path: str | Path) -> h5py.File:
    """Open a trace for reading, also while its writer is still appending (SWMR, no file lock)."""
    try:
        return h5py.File(path, "r", swmr=True, locking=False)
    except OSError:
        return h5py.File(path, "r", locking=False)
