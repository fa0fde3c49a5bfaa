"""``byzmpi watch TRACE``: follow a running job from its trace (e.g. from a login node).

Each poll reads only the rows appended since the last one (:class:`~byzmpi.analysis.load.LiveTrace`)
and prints one line: rounds done, rate, ETA, latest evaluation, Byzantine clients sampled.
Exits 0 when the trace's ``status`` becomes ``finished``, 1 on ``failed``, 3 on ``interrupted``
(marked by ``byzmpi mark-interrupted``) or when ``--stale`` seconds pass without a new round (a
job killed without a chance to mark its trace), 124 at ``--timeout``.

A trace still ``running`` whose file has not been written for :func:`stale_after` seconds
(``--stale`` when given, else the larger of :data:`STALE_SECONDS` and 20 mean rounds) is shown as
stale, with its last write time instead of an ETA: its job has probably died.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from .load import LiveTrace

EXIT_STALE, EXIT_TIMEOUT = 3, 124
EXIT = {"finished": 0, "failed": 1, "interrupted": EXIT_STALE}
#: a running trace unwritten for this long (seconds, at least) is reported as stale
STALE_SECONDS = 120.0


@dataclass
class Snapshot:
    name: str
    status: str
    rounds: int
    planned: int | None
    rate: float  # rounds per second (NaN when unknown)
    rate_source: str  # "wall" (between polls) or "trace" (sum of t_round)
    eval_round: int | None
    loss: float
    accuracy: float
    gap: float
    byzantine_last: int | None
    byzantine_mean: float
    rejected: int
    last_write: float = math.nan  # the trace file's modification time (seconds since the epoch)
    stale: bool = False  # status running, but the file has not been written for stale_after seconds
    path: str = ""

    @property
    def eta_seconds(self) -> float:
        if self.planned is None or not (self.rate > 0):
            return math.nan
        return max(self.planned - self.rounds, 0) / self.rate


def stale_after(mean_round_seconds: float, stale: float | None = None) -> float:
    """Seconds without a write after which a running trace counts as stale."""
    if stale is not None:
        return stale
    return max(STALE_SECONDS, 20.0 * mean_round_seconds) if math.isfinite(mean_round_seconds) else STALE_SECONDS


def snapshot(
    live: LiveTrace, wall_rate: float = math.nan, *, now: float | None = None, stale: float | None = None
) -> Snapshot:
    """The state of a live trace after its last refresh. Without a measured ``wall_rate`` the
    rate is rounds / (sum of the traced ``t_round``): server time, start-up excluded. ``now``
    (seconds since the epoch, default the current time) and ``stale`` decide staleness."""
    t = live.data()
    r, e = t.rounds, t.evals
    rate, source = wall_rate, "wall"
    if not (rate > 0) and len(r):
        busy = float(r["t_round"].astype(np.float64).sum())
        rate, source = (len(r) / busy if busy > 0 else math.nan), "trace"
    last = e.iloc[-1] if len(e) else None
    out = Snapshot(
        name=t.name,
        status=t.status,
        rounds=len(r),
        planned=t.rounds_planned,
        rate=rate,
        rate_source=source,
        eval_round=int(last["round"]) if last is not None else None,
        loss=float(last["loss"]) if last is not None else math.nan,
        accuracy=float(last["accuracy"]) if last is not None else math.nan,
        gap=float(last["gap"]) if last is not None else math.nan,
        byzantine_last=int(r["byzantine"].iloc[-1]) if len(r) else None,
        byzantine_mean=float(r["byzantine"].mean()) if len(r) else math.nan,
        rejected=int(r["rejected"].sum()) if len(r) else 0,
        path=str(live.path),
    )
    try:
        out.last_write = os.stat(live.path).st_mtime
    except OSError:
        return out
    mean_round = float(r["t_round"].astype(np.float64).mean()) if len(r) else math.nan
    age = (time.time() if now is None else now) - out.last_write
    out.stale = out.status == "running" and age > stale_after(mean_round, stale)
    return out


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_snapshot(s: Snapshot) -> str:
    """One line: ``NAME STATUS k/K rounds (p%) rate ETA loss acc gap @round byz rejected``."""
    done = f"{s.rounds}/{s.planned}" if s.planned else f"{s.rounds}"
    pct = f" ({100.0 * s.rounds / s.planned:.0f}%)" if s.planned else ""
    rate = f"{s.rate:.3g} rounds/s" + ("" if s.rate_source == "wall" else " (server time)") if s.rate > 0 else "rate ?"
    bits = [f"{s.name}", s.status + (" (stale)" if s.stale else ""), f"{done} rounds{pct}", rate]
    if s.stale or s.status == "interrupted":
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(s.last_write)) if s.last_write > 0 else "?"
        bits.append(f"last write {when} ({_duration(time.time() - s.last_write)} ago)")
        if s.stale:
            bits.append(f"no ETA: the job may be dead (byzmpi mark-interrupted {s.path or 'TRACE'})")
    elif s.status == "running":
        bits.append(f"ETA {_duration(s.eta_seconds)}")
    if s.eval_round is not None:
        ev = f"loss {s.loss:.5g} acc {s.accuracy:.4f}"
        if math.isfinite(s.gap):
            ev += f" gap {s.gap:.4g}"
        bits.append(f"{ev} @{s.eval_round}")
    if s.byzantine_last is not None:
        bits.append(f"Byzantine sampled {s.byzantine_last} (mean {s.byzantine_mean:.2f}, oracle)")
    bits.append(f"rejected {s.rejected}")
    return "  ".join(bits)


def follow(
    path: str | Path,
    *,
    interval: float = 5.0,
    once: bool = False,
    timeout: float | None = None,
    stale: float | None = None,
    out: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], float] = time.time,
) -> int:
    """Print a line per poll until the trace's status is final; returns the exit status."""
    out = out if out is not None else sys.stdout
    path = Path(path)
    start = clock()
    if not path.exists():
        if once:
            from ..errors import SetupError

            raise SetupError(f"no trace at {path}")
        print(f"waiting for {path} to appear ...", file=out, flush=True)
        while not path.exists():
            if timeout is not None and clock() - start >= timeout:
                return EXIT_TIMEOUT
            sleep(interval)
    history: deque[tuple[float, int]] = deque(maxlen=12)
    last_growth = clock()
    with LiveTrace(path) as live:
        while True:
            grown = live.refresh()
            now = clock()
            if grown:
                last_growth = now
            history.append((now, live.n_rounds))
            (t0, n0), (t1, n1) = history[0], history[-1]
            wall_rate = (n1 - n0) / (t1 - t0) if t1 > t0 and n1 > n0 else math.nan
            snap = snapshot(live, wall_rate, now=wall_clock(), stale=stale)
            print(format_snapshot(snap), file=out, flush=True)
            if live.status in EXIT:
                return EXIT[live.status]
            if once:
                return 0
            if stale is not None and now - last_growth >= stale:
                print(
                    f"no new round for {now - last_growth:.0f} s and status still '{live.status}': "
                    "the job may have been killed",
                    file=out,
                    flush=True,
                )
                return EXIT_STALE
            if timeout is not None and now - start >= timeout:
                return EXIT_TIMEOUT
            sleep(interval)
