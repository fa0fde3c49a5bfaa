"""A stand-in for a running job: appends rounds to a trace with TraceWriter in SWMR mode.

    python -m tests.analysis.live_writer TRACE FIRST TOTAL GO_FILE

writes rounds [0, FIRST) (flushed), prints ``ready``, waits for GO_FILE to exist, then writes the
remaining rounds in blocks of 5 with short pauses, evaluating every 10 rounds, and closes the
trace as finished. Exits 3 if GO_FILE does not appear within 60 s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from byzmpi.trace import TraceWriter

from .synth import attrs_for, config, eval_row, round_rows


def main(path: str, first: int, total: int, go: str) -> int:
    cfg = config(run={"name": "live", "rounds": total, "eval_every": 10})
    rng = np.random.default_rng(0)
    w = TraceWriter(path, attrs_for(cfg), 6, flush_rows=1, flush_seconds=0.0)
    w.append("eval", eval_row(0, 0.5, 1.0))

    def write(k0: int, k1: int) -> None:
        rounds, msgs = round_rows(k0, k1, cfg, rng, clip=False)
        w.append("rounds", rounds)
        w.append("messages", msgs)
        for k in range(k0, k1):
            if (k + 1) % 10 == 0:
                w.append("eval", eval_row(k + 1, 0.5 + 0.4 * (k + 1) / total, 0.5 ** ((k + 1) / 10)))
        w.flush()

    write(0, first)
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not Path(go).exists():
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.02)
    for k0 in range(first, total, 5):
        write(k0, min(k0 + 5, total))
        time.sleep(0.1)
    w.close("finished", np.zeros(6), total, {"wall_seconds": 1.0})
    print("closed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
