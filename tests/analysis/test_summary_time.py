"""``byzmpi summary``'s time split: every part of the round the trace records, staging included."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from byzmpi.analysis.summary import format_summary, summarize
from byzmpi.trace import ROUND_DTYPE, TIME_SPLIT

from .synth import write_trace


def test_every_time_part_is_a_rounds_column_and_summed(tmp_path: Path) -> None:
    assert set(TIME_SPLIT) <= set(ROUND_DTYPE.names or ())
    path = write_trace(tmp_path / "t.h5")
    with h5py.File(path, "r+") as f:  # staging seconds, as a run with GPU buffers records them
        rows = f["rounds"][...]
        rows["t_stage"] = np.linspace(1e-4, 2e-4, len(rows))
        rows["t_stage_hosts"] = 3e-4
        f["rounds"][...] = rows
    s = summarize(path)
    for name in TIME_SPLIT:
        assert s["time"][name] == float(rows[name].astype(np.float64).sum())
    assert s["time_per_round_ms"]["t_stage_hosts"] == 1e3 * s["time"]["t_stage_hosts"] / len(rows)
    text = format_summary(s)
    assert f"hosts {s['time_per_round_ms']['t_stage_hosts']:.3f}" in text
