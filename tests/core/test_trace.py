"""The HDF5 trace writer: buffering, schema, attributes, status, SWMR readers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import h5py
import numpy as np

from byzmpi.trace import EVAL_DTYPE, MESSAGE_DTYPE, ROUND_DTYPE, SCHEMA_VERSION, TraceWriter, open_trace

ATTRS = {
    "config": {"run": {"seed": 3}},
    "byzantine_ids": [1, 4],
    "method": "sgd",
    "seed": 3,
    "simulation": True,
    "f_star": 0.25,
}


def rounds(start: int, count: int) -> np.ndarray:
    out = np.zeros(count, ROUND_DTYPE)
    out["round"] = np.arange(start, start + count)
    out["sampled"] = 5
    out["t_round"] = 0.001
    return out


def writer(path, **kw) -> TraceWriter:
    args = dict(flush_rows=1000, flush_seconds=1e9)
    args.update(kw)
    return TraceWriter(path, dict(ATTRS), 4, **args)


def test_rows_are_buffered_until_flush(tmp_path):
    w = writer(tmp_path / "t.h5")
    w.append("rounds", rounds(0, 10))
    w.maybe_flush()  # 10 < 1000 rows, and the time limit is far away
    assert w._file["rounds"].shape == (0,)
    w.flush()
    assert w._file["rounds"].shape == (10,)
    assert w.io_seconds > 0
    w.close("finished", np.zeros(4, np.float32), 10)


def test_maybe_flush_on_row_count_and_on_time(tmp_path):
    w = writer(tmp_path / "a.h5", flush_rows=8)
    for k in range(7):
        w.append("rounds", rounds(k, 1))
        w.maybe_flush()
    assert w._file["rounds"].shape == (0,)
    w.append("rounds", rounds(7, 1))
    w.maybe_flush()
    assert w._file["rounds"].shape == (8,)
    w.close("finished", None, 8)
    w = writer(tmp_path / "b.h5", flush_seconds=0.0)
    w.append("rounds", rounds(0, 1))
    w.maybe_flush()
    assert w._file["rounds"].shape == (1,)
    w.close("finished", None, 1)


def test_tables_columns_and_values_after_close(tmp_path):
    path = tmp_path / "t.h5"
    w = writer(path)
    w.append("rounds", rounds(0, 3))
    w.append("rounds", rounds(3, 2))
    msgs = np.zeros(4, MESSAGE_DTYPE)
    msgs["client"] = [0, 2, 5, 7]
    w.append("messages", msgs)
    w.append("eval", np.array([(0, 0.69, 0.5, 0.1, 1.0)], EVAL_DTYPE))
    w.close("finished", np.arange(4, dtype=np.float32), 5, {"wall_seconds": 1.5, "final_eval": {"loss": 0.2}})
    with h5py.File(path, "r") as f:
        assert f["rounds"].dtype == ROUND_DTYPE and f["messages"].dtype == MESSAGE_DTYPE
        assert f["eval"].dtype == EVAL_DTYPE
        assert f["rounds"]["round"].tolist() == [0, 1, 2, 3, 4]
        assert f["messages"]["client"].tolist() == [0, 2, 5, 7]
        assert f["eval"][0]["loss"] == 0.69
        assert f["final_params"][...].tolist() == [0, 1, 2, 3]
        assert f["final_params"].dtype == np.float32
        assert f.attrs["status"] == "finished" and f.attrs["rounds_done"] == 5
        assert f.attrs["wall_seconds"] == 1.5 and json.loads(f.attrs["final_eval"]) == {"loss": 0.2}


def test_root_attributes(tmp_path):
    path = tmp_path / "t.h5"
    w = writer(path)
    w.close("finished", None, 0)
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["schema_version"] == SCHEMA_VERSION
        assert json.loads(a["config"]) == {"run": {"seed": 3}}
        assert a["byzantine_ids"].tolist() == [1, 4]
        assert a["method"] == "sgd" and a["seed"] == 3 and bool(a["simulation"]) and a["f_star"] == 0.25
        assert "rounds/dist_honest_mean" in json.loads(a["oracle_fields"])
        assert json.loads(a["reject_reasons"])["1"] == "non-finite"
        assert np.all(np.isnan(f["final_params"][...]))  # never written: NaN, not zeros


def test_messages_table_can_be_switched_off(tmp_path):
    path = tmp_path / "t.h5"
    w = writer(path, messages=False)
    w.append("messages", np.zeros(3, MESSAGE_DTYPE))
    w.append("rounds", rounds(0, 1))
    w.close("finished", None, 1)
    with h5py.File(path, "r") as f:
        assert f["messages"].shape == (0,) and f["rounds"].shape == (1,)


def test_status_running_then_failed(tmp_path):
    path = tmp_path / "t.h5"
    w = writer(path, params_dtype="f8")
    # (another process sees the same: test_reader_in_another_process_follows_an_open_writer)
    assert w._file.attrs["status"] == "running" and w._file.attrs["rounds_done"] == 0
    w.append("rounds", rounds(0, 2))
    w.close("failed", np.ones(4), -1)
    with open_trace(path) as f:
        assert f.attrs["status"] == "failed" and f.attrs["rounds_done"] == -1
        assert f["rounds"].shape == (2,)  # buffered rows are kept on failure
        assert f["final_params"].dtype == np.float64


READER = textwrap.dedent("""
    import sys, time
    from byzmpi.trace import open_trace
    path, target = sys.argv[1], int(sys.argv[2])
    f = open_trace(path)
    ds = f["rounds"]
    print("status", f.attrs["status"], flush=True)
    print("first", ds.shape[0], flush=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ds.refresh()
        if ds.shape[0] >= target:
            break
        time.sleep(0.02)
    print("later", ds.shape[0], int(ds[-1]["round"]), flush=True)
""")


def test_reader_in_another_process_follows_an_open_writer(tmp_path):
    path = tmp_path / "live.h5"
    w = writer(path)
    w.append("rounds", rounds(0, 5))
    w.flush()
    w.append("rounds", rounds(5, 3))  # buffered: not visible yet
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, str(path), "12"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout.readline().split() == ["status", "running"]
        assert proc.stdout.readline().split() == ["first", "5"]
        w.append("rounds", rounds(8, 4))
        w.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.split() == ["later", "12", "11"]
    w.close("finished", None, 12)
