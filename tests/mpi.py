"""Launch real ``mpiexec`` jobs from tests: the venv's own launcher, ``python -m mpi4py`` (an
exception on any rank aborts the job), a new session, and a process-group kill on timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")


@dataclass
class Result:
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float


def run_mpi(
    n: int, *args: str, timeout: float = 120.0, cwd: str | Path | None = None, env: dict[str, str] | None = None
) -> Result:
    """``mpiexec -n N python -m mpi4py ARGS...``; on timeout SIGTERM then SIGKILL the whole group."""
    cmd = [MPIEXEC, "-n", str(n), sys.executable, "-m", "mpi4py", *args]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        return Result(proc.returncode, out, err, time.monotonic() - t0)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        return Result(None, out, err, time.monotonic() - t0)


def session_pids(sid: int) -> list[int]:
    """Every process of session ``sid``: Open MPI's launcher puts each rank in its own process
    group, but they stay in the launcher's session (the test starts it with a new session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after "pid (comm)": state, ppid, pgrp, session
            pids.append(int(entry))
    return pids


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` (then SIGKILL) to the launcher and every rank of its session."""
    for s in (sig, signal.SIGKILL):
        targets = session_pids(proc.pid) or [proc.pid]
        for pid in targets:
            try:
                os.kill(pid, s)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            continue
        if s == signal.SIGKILL or not session_pids(proc.pid):
            return


def byzmpi(n: int, *args: str, timeout: float = 180.0, cwd: str | Path | None = None) -> Result:
    """``mpiexec -n N python -m mpi4py -m byzmpi ARGS...``"""
    return run_mpi(n, "-m", "byzmpi", *args, timeout=timeout, cwd=cwd)
