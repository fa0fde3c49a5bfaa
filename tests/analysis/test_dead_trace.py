"""A trace whose writer was SIGKILLed mid-run (issue 13, item 10): byzmpi's readers open it,
``watch --once`` reports it stale by its last write time instead of an ETA, and
``byzmpi mark-interrupted`` clears its open-for-write flag (plain h5py opens it afterwards) and
marks it ``interrupted``. No MPI: the writer is byzmpi.trace.TraceWriter in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import byzmpi.analysis.repair as repair
from byzmpi.analysis.load import LiveTrace, read_trace
from byzmpi.analysis.summary import summarize
from byzmpi.analysis.watch import EXIT_STALE, follow
from byzmpi.cli import main
from byzmpi.errors import SetupError
from byzmpi.trace import open_trace

from .synth import write_trace

ROOT = Path(__file__).resolve().parents[2]


def killed_trace(path: Path, first: int = 15) -> Path:
    """Start tests.analysis.live_writer, let it append rounds past ``first``, SIGKILL it mid-run."""
    go = path.with_name(path.name + ".go")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.analysis.live_writer", str(path), str(first), "100000", str(go)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        go.touch()
        time.sleep(0.4)  # a few more blocks of 5 rounds, written while the file is open for SWMR write
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return path


def age(path: Path, seconds: float) -> None:
    """Pretend the trace's last write was ``seconds`` ago."""
    t = time.time() - seconds
    os.utime(path, (t, t))


@pytest.fixture(scope="module")
def dead(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return killed_trace(tmp_path_factory.mktemp("dead") / "live.h5")


def copy_of(dead: Path, tmp_path: Path) -> Path:
    out = tmp_path / "live.h5"
    out.write_bytes(dead.read_bytes())
    return out


def test_a_killed_trace_is_left_open_for_write(dead: Path) -> None:
    """The problem itself: plain h5py refuses the file (also without file locking)."""
    for kw in ({}, {"locking": False}):
        with pytest.raises(OSError, match="already open for write"):
            h5py.File(dead, "r", **kw)


def test_byzmpis_readers_open_a_killed_trace(dead: Path, tmp_path: Path, capsys) -> None:
    path = copy_of(dead, tmp_path)
    t = read_trace(path, messages=True)
    assert t.status == "running" and len(t.rounds) > 15 and len(t.messages) > 0
    assert t.rounds["round"].tolist() == list(range(len(t.rounds)))
    with LiveTrace(path) as live:
        assert live.refresh() == len(t.rounds)
    assert summarize(path)["path"] == str(path)
    assert main(["report", str(path)]) == 0
    assert "live" in capsys.readouterr().out


def test_watch_once_reports_a_stale_trace_by_its_last_write(dead: Path, tmp_path: Path, capsys) -> None:
    path = copy_of(dead, tmp_path)
    age(path, 3600)
    assert main(["watch", str(path), "--once"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "running (stale)" in out and "last write " in out and "1:00:0" in out, out
    assert not re.search(r"ETA [0-9?]", out) and "no ETA" in out and f"mark-interrupted {path}" in out
    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(path.stat().st_mtime))
    assert stamp in out


def test_watch_once_on_a_recent_running_trace_still_gives_an_eta(dead: Path, tmp_path: Path, capsys) -> None:
    path = copy_of(dead, tmp_path)
    age(path, 5)
    assert main(["watch", str(path), "--once"]) == 0
    out = capsys.readouterr().out
    assert "ETA" in out and "stale" not in out
    assert main(["watch", str(path), "--once", "--stale", "1"]) == 0  # a shorter threshold, given
    assert "running (stale)" in capsys.readouterr().out


def tables_of(path: Path) -> dict[str, bytes]:
    with open_trace(path) as f:
        return {name: f[name][...].tobytes() for name in ("rounds", "messages", "eval")}


def _check_marked(path: Path, rounds_before: int, tables: dict[str, bytes]) -> None:
    with h5py.File(path, "r") as f:  # plain h5py, default locking
        assert f.attrs["status"] == "interrupted"
        assert int(f.attrs["rounds_done"]) == rounds_before == f["rounds"].shape[0]
        assert f["rounds"]["round"].tolist() == list(range(rounds_before))
        for name, rows in tables.items():  # every table byte for byte as the SWMR read saw it
            assert f[name][...].tobytes() == rows, name
        assert json.loads(f.attrs["config"])["run"]["name"] == "live"
        assert float(f.attrs["interrupted_at"]) > 0


@pytest.mark.parametrize("how", ["cleared", "rewritten"])
def test_mark_interrupted_clears_the_flag_and_marks_the_trace(
    how: str, dead: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    path = copy_of(dead, tmp_path)
    rounds_before, tables = len(read_trace(path).rounds), tables_of(path)
    if how == "rewritten":  # no reachable libhdf5: the fallback copies into a fresh file
        monkeypatch.setattr(repair, "_hdf5_library", lambda: None)
    age(path, 600)
    assert main(["mark-interrupted", str(path)]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "running -> interrupted" in line and f"{rounds_before} rounds" in line
    assert ("write flags cleared" if how == "cleared" else "rewritten") in line
    _check_marked(path, rounds_before, tables)
    assert [p.name for p in tmp_path.iterdir()] == ["live.h5"]  # no temp file left
    # watch now knows it is over: exit 3, status interrupted, no ETA
    assert follow(path, once=True) == EXIT_STALE
    out = capsys.readouterr().out
    assert "interrupted" in out and "ETA" not in out and "last write" in out, out
    # a second call changes nothing
    assert repair.mark_interrupted(path).how == "unchanged"


def test_mark_interrupted_refuses_a_recent_trace_unless_forced(dead: Path, tmp_path: Path) -> None:
    path = copy_of(dead, tmp_path)
    rounds_before, tables = len(read_trace(path).rounds), tables_of(path)
    age(path, 2)
    with pytest.raises(SetupError, match="may still be running") as info:
        repair.mark_interrupted(path)
    assert "\n" not in str(info.value)
    assert main(["mark-interrupted", str(path)]) == 2
    assert repair.mark_interrupted(path, force=True).how == "cleared"
    _check_marked(path, rounds_before, tables)


def test_mark_interrupted_refuses_a_finished_trace_and_a_missing_one(tmp_path: Path) -> None:
    done = write_trace(tmp_path / "done.h5")
    age(done, 600)
    with pytest.raises(SetupError, match="finished"):
        repair.mark_interrupted(done)
    with h5py.File(done, "r") as f:
        assert f.attrs["status"] == "finished"
    with pytest.raises(SetupError, match="no trace"):
        repair.mark_interrupted(tmp_path / "missing.h5")


def test_resume_copy_of_a_killed_trace_is_clean(dead: Path, tmp_path: Path) -> None:
    """Resuming truncates the trace into a fresh file, which also clears the flags."""
    from byzmpi.trace import truncated_copy

    path = copy_of(dead, tmp_path)
    n = len(read_trace(path).rounds)
    truncated_copy(path, {"rounds": n - 3, "messages": 0, "eval": 1}, {})
    with h5py.File(path, "r") as f:
        assert f["rounds"].shape == (n - 3,) and f.attrs["status"] == "running"
        assert np.all(f["rounds"]["round"][...] == np.arange(n - 3))
