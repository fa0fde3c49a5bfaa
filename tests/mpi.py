"""Launch real ``mpiexec`` jobs from tests, through byzmpi's one launch helper
(:mod:`byzmpi.launch`: the venv's own launcher, ``python -m mpi4py``, a new session, a kill of the
whole session on timeout)."""

from __future__ import annotations

from pathlib import Path

from byzmpi.launch import Result, kill_session, mpiexec_path, run_mpi, session_pids

MPIEXEC = mpiexec_path()
kill_group = kill_session  # the name the tests use

__all__ = ["MPIEXEC", "Result", "byzmpi", "kill_group", "run_mpi", "session_pids"]


def byzmpi(n: int, *args: str, timeout: float = 180.0, cwd: str | Path | None = None) -> Result:
    """``mpiexec -n N python -m mpi4py -m byzmpi ARGS...``"""
    return run_mpi(n, "-m", "byzmpi", *args, timeout=timeout, cwd=cwd)
