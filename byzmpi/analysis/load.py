"""Traces into pandas DataFrames: one trace, many traces (glob, sweep folder), or a live one.

* :func:`read_trace` reads one trace (attributes, config, ``rounds``, ``eval`` and optionally
  ``messages``) into a :class:`TraceData`; ``final_params`` (per-coordinate data) is never read.
* :func:`load_runs` gives one row per trace: the resolved config flattened to ``section.key``
  columns, and final metrics (:func:`byzmpi.analysis.metrics.run_row`).
* :func:`load_rounds`, :func:`load_evals`, :func:`load_messages` give the tables of many traces in
  long format, with a ``run`` column (and any config columns you ask for).
* :class:`LiveTrace` follows a trace while its job is still writing it (SWMR ``refresh``).

Columns computed with knowledge only a simulation has (the trace's ``oracle_fields`` attribute,
e.g. ``rounds/dist_honest_mean``) keep their names; each DataFrame lists them in
``df.attrs["oracle_fields"]``, and summary columns derived from them start with ``oracle_``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..trace import EVAL_DTYPE, LEGACY_NOT_APPLICABLE, MESSAGE_DTYPE, REJECT_REASONS, ROUND_DTYPE, open_trace
from .sources import find_traces

TABLE_DTYPES = {"rounds": ROUND_DTYPE, "eval": EVAL_DTYPE, "messages": MESSAGE_DTYPE}
_JSON_ATTRS = ("config", "versions", "oracle_fields", "reject_reasons", "final_eval", "byzantine_ids")


def decode_attrs(raw: Any) -> dict[str, Any]:
    """A trace's root attributes as plain Python values (JSON attributes parsed)."""
    out: dict[str, Any] = {}
    for key in raw:
        value = raw[key]
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, str) and key in _JSON_ATTRS:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        out[key] = value
    if "reject_reasons" in out and isinstance(out["reject_reasons"], dict):
        out["reject_reasons"] = {int(k): v for k, v in out["reject_reasons"].items()}
    return out


def flatten_config(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"run": {"seed": 1}}`` → ``{"run.seed": 1}``; lists become tuples (hashable, comparable)."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_config(value, prefix=f"{name}."))
        elif isinstance(value, list):
            out[name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        else:
            out[name] = value
    return out


@dataclass
class TraceData:
    """One trace in memory, without its per-coordinate data."""

    path: Path
    attrs: dict[str, Any]
    rounds: pd.DataFrame
    evals: pd.DataFrame
    messages: pd.DataFrame | None = None
    label: str = ""

    @property
    def config(self) -> dict[str, Any]:
        cfg = self.attrs.get("config", {})
        return cfg if isinstance(cfg, dict) else {}

    @property
    def flat_config(self) -> dict[str, Any]:
        return flatten_config(self.config)

    @property
    def status(self) -> str:
        return str(self.attrs.get("status", "unknown"))

    @property
    def simulation(self) -> bool:
        return bool(self.attrs.get("simulation", False))

    @property
    def oracle_fields(self) -> list[str]:
        fields = self.attrs.get("oracle_fields", [])
        return list(fields) if isinstance(fields, (list, tuple)) else []

    def oracle_columns(self, table: str) -> list[str]:
        """Columns of ``table`` flagged as simulation-only knowledge."""
        return [f.split("/", 1)[1] for f in self.oracle_fields if f.startswith(f"{table}/")]

    @property
    def byzantine_ids(self) -> list[int]:
        ids = self.attrs.get("byzantine_ids", [])
        return [int(i) for i in np.atleast_1d(np.asarray(ids, dtype=np.int64))] if np.size(ids) else []

    @property
    def rounds_planned(self) -> int | None:
        rounds = self.config.get("run", {}).get("rounds")
        return int(rounds) if rounds is not None else None

    @property
    def reject_reasons(self) -> dict[int, str]:
        reasons = self.attrs.get("reject_reasons")
        return reasons if isinstance(reasons, dict) else dict(REJECT_REASONS)

    @property
    def f_star(self) -> float:
        return float(self.attrs.get("f_star", float("nan")))

    @property
    def name(self) -> str:
        return str(self.config.get("run", {}).get("name", self.path.stem))


def table_frame(rows: np.ndarray, table: str, oracle: Sequence[str] = ()) -> pd.DataFrame:
    """A structured array of ``table`` rows as a DataFrame with the schema's columns."""
    dtype = TABLE_DTYPES[table]
    if rows.dtype.names is None or len(rows) == 0:
        rows = np.zeros(0, dtype)
    df = pd.DataFrame({name: rows[name] for name in rows.dtype.names or ()})
    if table == "messages" and "clipped" in df and df["clipped"].dtype == np.uint8:  # schema <= 2: 255 = n/a
        df["clipped"] = df["clipped"].astype(np.float32).where(df["clipped"] != LEGACY_NOT_APPLICABLE)
    df.attrs["oracle_fields"] = [c for c in oracle if c in df.columns]
    return df


def _read(ds: Any, start: int = 0) -> np.ndarray:
    n = ds.shape[0]
    return ds[start:n] if n > start else np.zeros(0, ds.dtype)


def read_trace(path: str | Path, *, messages: bool = True, label: str | None = None) -> TraceData:
    """Read one trace (also while it is being written). ``messages=False`` skips the per-message
    table (the largest); ``final_params`` is never read."""
    path = Path(path)
    with open_trace(path) as f:
        attrs = decode_attrs(f.attrs)
        raw = {
            name: _read(f[name]) if name in f else np.zeros(0, TABLE_DTYPES[name])
            for name in TABLE_DTYPES
            if name != "messages" or messages
        }
    t = TraceData(path, attrs, rounds=pd.DataFrame(), evals=pd.DataFrame(), label=label or "")
    t.rounds = table_frame(raw["rounds"], "rounds", t.oracle_columns("rounds"))
    t.evals = table_frame(raw["eval"], "eval", t.oracle_columns("eval"))
    if messages:
        t.messages = table_frame(raw["messages"], "messages", t.oracle_columns("messages"))
    if not t.label:
        t.label = t.name
    return t


def run_labels(traces: Sequence[TraceData]) -> list[str]:
    """Unique names for traces: the config's run name, else the file stem, else the path."""
    for key in (lambda t: t.name, lambda t: t.path.stem, lambda t: str(t.path)):
        labels = [key(t) for t in traces]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{t.path}#{i}" for i, t in enumerate(traces)]


def read_traces(specs: str | Path | Iterable[str | Path], *, messages: bool = False) -> list[TraceData]:
    """Read every trace that ``specs`` names (files, folders, globs), labelled uniquely."""
    traces = [read_trace(p, messages=messages) for p in find_traces(specs)]
    for t, label in zip(traces, run_labels(traces)):
        t.label = label
    return traces


def _as_traces(source: Any, messages: bool) -> list[TraceData]:
    if isinstance(source, TraceData):
        return [source]
    if isinstance(source, (list, tuple)) and source and all(isinstance(t, TraceData) for t in source):
        return list(source)
    return read_traces(source, messages=messages)


def load_runs(source: Any) -> pd.DataFrame:
    """One row per trace: ``run``, ``path``, status, final metrics, totals, ``oracle_*`` summaries,
    and every resolved config field as a ``section.key`` column. ``source``: specs or TraceData."""
    from .metrics import run_row

    traces = _as_traces(source, messages=False)
    rows = [{**run_row(t), **t.flat_config} for t in traces]
    df = pd.DataFrame(rows)
    df.attrs["oracle_fields"] = sorted({c for c in df.columns if c.startswith("oracle_")})
    return df


def _long(traces: list[TraceData], table: str, config_fields: Sequence[str]) -> pd.DataFrame:
    frames = []
    oracle: set[str] = set()
    for t in traces:
        df = {"rounds": t.rounds, "eval": t.evals, "messages": t.messages}[table]
        if df is None:
            continue
        df = df.copy()
        flat = t.flat_config
        df.insert(0, "run", t.label)
        for i, key in enumerate(config_fields):
            df.insert(1 + i, key, [flat.get(key)] * len(df) if len(df) else [])
        oracle.update(t.oracle_columns(table))
        frames.append(df)
    out = pd.concat(frames, ignore_index=True) if frames else table_frame(np.zeros(0, TABLE_DTYPES[table]), table)
    out.attrs["oracle_fields"] = sorted(c for c in oracle if c in out.columns)
    return out


def load_rounds(source: Any, config_fields: Sequence[str] = ()) -> pd.DataFrame:
    """The ``rounds`` tables of many traces in long format (a ``run`` column first)."""
    return _long(_as_traces(source, messages=False), "rounds", config_fields)


def load_evals(source: Any, config_fields: Sequence[str] = ()) -> pd.DataFrame:
    """The ``eval`` tables of many traces in long format (a ``run`` column first)."""
    return _long(_as_traces(source, messages=False), "eval", config_fields)


def load_messages(source: Any, config_fields: Sequence[str] = ()) -> pd.DataFrame:
    """The ``messages`` tables of many traces in long format (one row per message received)."""
    return _long(_as_traces(source, messages=True), "messages", config_fields)


# ------------------------------------------------------------------------------------------
@dataclass
class LiveTrace:
    """A trace that may still be growing: :meth:`refresh` appends only the rows written since the
    last call (SWMR ``Dataset.refresh`` on an open handle).

    An open HDF5 handle does not see attribute changes, and the writer records ``status`` only
    after closing its SWMR handle; so when a refresh finds no new rows (the writer may have
    finished), the handle is closed and reopened to re-read the attributes.
    """

    path: Path
    messages: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)
    _rows: dict[str, list[np.ndarray]] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)
    _file: Any = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._rows = {name: [] for name in self._tables()}
        self._counts = {name: 0 for name in self._tables()}

    def _tables(self) -> list[str]:
        return [n for n in TABLE_DTYPES if n != "messages" or self.messages]

    def _open(self) -> None:
        self._file = open_trace(self.path)
        self.attrs = decode_attrs(self._file.attrs)

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None

    def __enter__(self) -> LiveTrace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def refresh(self) -> int:
        """Read the rows appended since the last refresh; returns how many ``rounds`` rows arrived."""
        try:
            if self._file is None:
                self._open()
            grown = self._pull()
            if grown == 0:
                self.close()  # maybe finished: only a fresh handle sees the new status attribute
                self._open()
                grown = self._pull()
        except (OSError, KeyError):
            # the writer is between its SWMR handle and its final attribute write: try next time
            self.close()
            return 0
        return grown

    def _pull(self) -> int:
        new_rounds = 0
        for name in self._tables():
            if name not in self._file:
                continue
            ds = self._file[name]
            ds.refresh()
            rows = _read(ds, self._counts[name])
            if len(rows):
                self._rows[name].append(rows)
                self._counts[name] += len(rows)
                if name == "rounds":
                    new_rounds = len(rows)
        return new_rounds

    def _table(self, name: str) -> np.ndarray:
        chunks = self._rows.get(name) or []
        if len(chunks) > 1:
            self._rows[name] = [np.concatenate(chunks)]
        return self._rows[name][0] if self._rows.get(name) else np.zeros(0, TABLE_DTYPES[name])

    @property
    def status(self) -> str:
        return str(self.attrs.get("status", "unknown"))

    @property
    def n_rounds(self) -> int:
        return self._counts.get("rounds", 0)

    def data(self) -> TraceData:
        """What has been read so far, as a :class:`TraceData`."""
        t = TraceData(self.path, dict(self.attrs), rounds=pd.DataFrame(), evals=pd.DataFrame())
        t.rounds = table_frame(self._table("rounds"), "rounds", t.oracle_columns("rounds"))
        t.evals = table_frame(self._table("eval"), "eval", t.oracle_columns("eval"))
        if self.messages:
            t.messages = table_frame(self._table("messages"), "messages", t.oracle_columns("messages"))
        t.label = t.name
        return t
