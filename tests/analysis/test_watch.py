"""``byzmpi watch``: follows a trace that another process is still writing, and stops when the
trace's status becomes final."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from byzmpi.analysis.load import LiveTrace
from byzmpi.analysis.watch import EXIT_STALE, EXIT_TIMEOUT, follow, format_snapshot, snapshot
from byzmpi.cli import main
from tests.mpi import kill_group

from .synth import write_trace

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^live  (\w+)  (\d+)/60 rounds")


def start_writer(path: Path, go: Path, first: int = 10, total: int = 60) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.analysis.live_writer", str(path), str(first), str(total), str(go)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_watch_follows_a_trace_being_written(tmp_path):
    path, go = tmp_path / "live.h5", tmp_path / "go"
    writer = start_writer(path, go)
    watch = subprocess.Popen(
        [sys.executable, "-m", "byzmpi", "watch", str(path), "--interval", "0.1", "--timeout", "90"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        first = watch.stdout.readline()
        go.touch()  # the writer goes on only once watch has seen the partial trace
        rest, err = watch.communicate(timeout=120)
        assert writer.wait(timeout=30) == 0
    finally:
        kill_group(watch)
        kill_group(writer)
    assert watch.returncode == 0, err
    lines = [first, *rest.splitlines()]
    states = [(m.group(1), int(m.group(2))) for m in map(LINE.match, lines) if m]
    assert states[0] == ("running", 10), first
    assert states[-1] == ("finished", 60)
    counts = [n for _, n in states]
    assert counts == sorted(counts)  # monotone
    assert any(s == "running" and 10 < n < 60 for s, n in states), lines  # saw it mid-way
    assert "loss" in lines[-1] and "Byzantine sampled" in lines[-1]


def test_watch_once_on_a_running_trace(tmp_path, capsys):
    path, go = tmp_path / "live.h5", tmp_path / "go"
    writer = start_writer(path, go, first=15)
    try:
        assert main(["watch", str(path), "--once"]) == 0
        out = capsys.readouterr().out
        assert out.count("\n") == 1 and out.startswith("live  running  15/60 rounds (25%)")
        assert "ETA" in out and "@10" in out  # latest evaluation after 10 rounds
    finally:
        go.touch()
        assert writer.wait(timeout=60) == 0
        kill_group(writer)


def test_watch_exit_codes(tmp_path, capsys):
    failed = write_trace(tmp_path / "failed.h5", status="failed")
    assert main(["watch", str(failed), "--interval", "0.01"]) == 1
    assert "failed" in capsys.readouterr().out
    finished = write_trace(tmp_path / "done.h5")
    assert main(["watch", str(finished), "--once"]) == 0
    stuck = write_trace(tmp_path / "stuck.h5", status="running")  # a killed job never marks its trace
    assert follow(stuck, interval=0.01, stale=0.2) == EXIT_STALE
    assert "may have been killed" in capsys.readouterr().out
    assert follow(stuck, interval=0.01, timeout=0.1) == EXIT_TIMEOUT
    assert follow(tmp_path / "later.h5", interval=0.01, timeout=0.05) == EXIT_TIMEOUT
    assert main(["watch", str(tmp_path / "missing.h5"), "--once"]) == 2


def test_snapshot_numbers(tmp_path):
    path = write_trace(tmp_path / "s.h5", status="running")
    with LiveTrace(path) as live:
        live.refresh()
        s = snapshot(live, wall_rate=4.0)
    assert (s.rounds, s.planned, s.rate) == (40, 40, 4.0) and s.eta_seconds == 0.0
    assert s.eval_round == 40 and s.accuracy == pytest.approx(0.9)
    line = format_snapshot(s)
    assert "40/40 rounds (100%)" in line and "4 rounds/s" in line and "acc 0.9000" in line
