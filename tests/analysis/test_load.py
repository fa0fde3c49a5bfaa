"""Loading traces into DataFrames: one, many (folder, glob), while still being written."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from byzmpi.analysis import LiveTrace, find_traces, load_messages, load_rounds, load_runs, read_trace
from byzmpi.analysis.load import flatten_config
from byzmpi.errors import SetupError
from byzmpi.trace import ROUND_DTYPE

from .synth import config, write_trace

ROOT = Path(__file__).resolve().parents[2]


def test_read_trace_equals_h5py_and_skips_params(tmp_path):
    path = write_trace(tmp_path / "a.h5", seed=5)
    t = read_trace(path)
    with h5py.File(path, "r") as f:
        for name, df in (("rounds", t.rounds), ("eval", t.evals), ("messages", t.messages)):
            raw = f[name][...]
            assert list(df.columns) == list(raw.dtype.names)
            for col in raw.dtype.names:
                np.testing.assert_array_equal(df[col].to_numpy(), raw[col])
    assert t.byzantine_ids == [4, 5] and t.status == "finished" and t.simulation
    assert t.config["aggregator"]["name"] == "krum"
    # oracle columns are labelled on the frames, from the trace's own oracle_fields attribute
    assert set(t.rounds.attrs["oracle_fields"]) == {"honest_mean_norm", "dist_honest_mean", "byzantine"}
    assert set(t.messages.attrs["oracle_fields"]) == {"byzantine", "dist_honest_mean"}
    assert not hasattr(t, "final_params")


def test_flatten_config():
    flat = flatten_config({"run": {"seed": 1}, "aggregator": {"name": "m", "pre": ["a"], "a": {"s": 2}}})
    assert flat == {"run.seed": 1, "aggregator.name": "m", "aggregator.pre": ("a",), "aggregator.a.s": 2}


def test_many_traces_from_folder_and_glob(tmp_path):
    sweep = tmp_path / "sweep"
    for i, rule in enumerate(("mean", "median", "krum")):
        write_trace(
            sweep / f"job_{i}" / f"{rule}.h5",
            config(run={"name": rule, "seed": i}, aggregator={"name": rule}),
            seed=i,
            final_accuracy=0.7 + 0.1 * i,
        )
    (sweep / "notes.txt").write_text("not a trace")
    assert [p.name for p in find_traces(sweep)] == ["mean.h5", "median.h5", "krum.h5"]
    assert len(find_traces(f"{sweep}/*/*.h5")) == 3
    with pytest.raises(SetupError):
        find_traces(tmp_path / "nothing*.h5")
    runs = load_runs(sweep)
    assert list(runs["run"]) == ["mean", "median", "krum"]
    assert list(runs["aggregator.name"]) == ["mean", "median", "krum"] and list(runs["run.seed"]) == [0, 1, 2]
    np.testing.assert_allclose(runs["final_accuracy"], [0.7, 0.8, 0.9])
    assert "oracle_dist_honest_mean_mean" in runs.attrs["oracle_fields"]
    for _, row in runs.iterrows():
        with h5py.File(row["path"], "r") as f:
            r = f["rounds"][...]
            assert row["bytes_up"] == r["bytes_up"].sum() and row["rounds"] == len(r)
            assert row["oracle_dist_honest_mean_mean"] == pytest.approx(r["dist_honest_mean"].astype(float).mean())
    rounds = load_rounds(sweep, config_fields=["aggregator.name"])
    assert list(rounds.columns[:2]) == ["run", "aggregator.name"] and len(rounds) == 3 * 40
    assert rounds.groupby("run").size().to_dict() == {"mean": 40, "median": 40, "krum": 40}
    msgs = load_messages(f"{sweep}/**/*.h5")
    assert len(msgs) == 3 * 40 * 4 and set(msgs["run"]) == {"mean", "median", "krum"}


def test_labels_stay_unique_when_run_names_repeat(tmp_path):
    write_trace(tmp_path / "x" / "one.h5")
    write_trace(tmp_path / "y" / "two.h5")
    assert sorted(load_runs(tmp_path)["run"]) == ["one", "two"]


def test_live_trace_reads_only_new_rows_while_writer_appends(tmp_path):
    path, go = tmp_path / "live.h5", tmp_path / "go"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.analysis.live_writer", str(path), "12", "40", str(go)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        with LiveTrace(path, messages=True) as live:
            assert live.refresh() == 12 and live.status == "running"
            assert live.refresh() == 0 and live.n_rounds == 12
            partial = read_trace(path)  # the one-shot reader also works on a trace being written
            assert len(partial.rounds) == 12 and partial.status == "running"
            assert load_runs(path)["rounds"].tolist() == [12]
            go.touch()
            arrivals = []
            for _ in range(600):
                arrivals.append(live.refresh())
                if live.status == "finished":
                    break
                time.sleep(0.02)
            assert live.status == "finished" and live.n_rounds == 40
            assert sum(arrivals) == 28 and max(arrivals) < 28  # read incrementally, not all at the end
            data = live.data()
        assert proc.wait(timeout=30) == 0
        with h5py.File(path, "r") as f:
            for col in ROUND_DTYPE.names:
                np.testing.assert_array_equal(data.rounds[col].to_numpy(), f["rounds"][col])
            assert len(data.messages) == len(f["messages"]) and len(data.evals) == len(f["eval"])
    finally:
        if proc.poll() is None:
            proc.kill()
