"""A real single-node Slurm for the slurm/ job scripts.

Which cluster the tests use (session fixture ``slurm``):

* ``SLURM_CONF`` is set and ``scontrol ping`` answers: that cluster (``.ci/run`` starts one with
  ``slurm/local/slurm-local.sh``). It is left running.
* otherwise, with ``BYZMPI_REQUIRE_SLURM=1`` or ``BYZMPI_SLURM_LOCAL=1``: a private cluster started
  here with ``slurm/local/slurm-local.sh`` (root; installs Debian's slurm-wlm and munge when missing),
  in a fresh folder, on free ports, stopped at the end of the session.
* otherwise the tests skip, saying how to run them.

``BYZMPI_REQUIRE_SLURM=1`` turns "no cluster" into a failure. The node must offer 8 CPUs (the
local script's default) so that two 4-task jobs can run at once.

Every wait polls ``scontrol show job`` (there is no accounting, so no sacct) and has a time limit;
a job that overruns is cancelled and the failure shows its output and the controller's log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLURM_DIR = REPO / "slurm"
LOCAL_SCRIPT = SLURM_DIR / "local" / "slurm-local.sh"
TERMINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
}


def _run(cmd: list[str], env: dict[str, str], timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def parse_records(text: str) -> list[dict[str, str]]:
    """``scontrol show job -o`` output: one record per line, ``Key=value`` fields (values may be
    empty; only Command= and a few others may hold spaces, and those come last or are not used)."""
    records = []
    for line in text.splitlines():
        if "JobId=" not in line:
            continue
        records.append(dict(re.findall(r"(?:^|\s)([A-Za-z][\w:/]*)=(\S*)", line)))
    return records


@dataclass
class Job:
    id: str
    workdir: Path
    submitted: float = field(default_factory=time.monotonic)


class Cluster:
    def __init__(self, conf: str, base: Path | None, log_dir: Path | None) -> None:
        self.conf, self.base, self.log_dir = conf, base, log_dir
        self.env = {**os.environ, "SLURM_CONF": conf}

    # ---- commands -------------------------------------------------------------------------
    def cmd(self, *args: str, timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess:
        res = _run(list(args), self.env, timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(args)} -> rc {res.returncode}: {res.stderr.strip()}")
        return res

    def sbatch(
        self,
        script: str | Path,
        *args: str,
        opts: tuple[str, ...] = (),
        workdir: Path,
        env: dict[str, str] | None = None,
    ) -> Job:
        """Submit ``sbatch [opts] script args`` from ``workdir`` with the test's environment plus ``env``."""
        job_env = {**self.env, "BYZMPI_VENV": sys.prefix, "BYZMPI_CACHE": str(workdir / "cache"), **(env or {})}
        res = _run(["sbatch", "--parsable", f"--chdir={workdir}", *opts, str(script), *args], job_env, timeout=30)
        assert res.returncode == 0, f"sbatch failed (rc {res.returncode}): {res.stderr.strip()}"
        return Job(res.stdout.strip().split(";")[0], workdir)

    def records(self, job: Job | str) -> list[dict[str, str]]:
        jid = job.id if isinstance(job, Job) else job
        res = self.cmd("scontrol", "show", "job", "-o", jid, check=False)
        return parse_records(res.stdout) if res.returncode == 0 else []

    def show(self, job: Job | str) -> dict[str, str]:
        recs = self.records(job)
        assert recs, f"scontrol does not know job {job}"
        return recs[0]

    # ---- waiting --------------------------------------------------------------------------
    def wait_for(self, job: Job, predicate, timeout: float, what: str, poll: float = 0.3):
        """Poll until ``predicate(records)`` returns something truthy (which is returned); on timeout
        cancel the job and fail with its state, output and the controller's log."""
        deadline = time.monotonic() + timeout
        recs: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            recs = self.records(job)
            try:
                got = predicate(recs) if recs else None
            except BaseException:
                self.cmd("scancel", job.id, check=False)
                raise
            if got:
                return got
            time.sleep(poll)
        self.cmd("scancel", job.id, check=False)
        pytest.fail(f"job {job.id}: no {what} within {timeout:.0f} s\n{self.describe(job, recs)}")

    def wait_done(self, job: Job, timeout: float, restarts: int = 0) -> dict[str, str]:
        """The job's final record, once it is in a final state and has restarted ``restarts`` times
        (a requeue passes through COMPLETING and PENDING, never a final state, but checking the
        count too makes that irrelevant)."""
        early: list[float] = []

        def done(recs):
            r = recs[0]
            if r.get("JobState") not in TERMINAL:
                early.clear()
                return None
            if int(r.get("Restarts", 0)) >= restarts:
                return r
            early.append(time.monotonic())  # ended without the expected requeue: fail once it stays so
            if early[-1] - early[0] > 5:
                raise AssertionError(
                    f"job {job.id} ended after {r.get('Restarts')} restart(s), expected "
                    f"{restarts}\n{self.describe(job, recs)}"
                )
            return None

        return self.wait_for(job, done, timeout, f"final state after {restarts} restart(s)", poll=0.5)

    def wait_array(self, job: Job, n: int, timeout: float) -> dict[str, dict[str, str]]:
        """{array task id: record} once all ``n`` tasks of an array job are in a final state."""

        def done(recs):
            tasks = {r.get("ArrayTaskId"): r for r in recs}
            if len(tasks) == n and all(r.get("JobState") in TERMINAL for r in tasks.values()):
                return tasks
            return None

        return self.wait_for(job, done, timeout, f"final state of all {n} array tasks", poll=0.5)

    def describe(self, job: Job, recs: list[dict[str, str]] | None = None) -> str:
        recs = recs if recs is not None else self.records(job)
        parts = [
            " ".join(
                f"{k}={r.get(k)}"
                for k in ("JobId", "ArrayTaskId", "JobState", "Reason", "Restarts", "ExitCode", "RunTime")
            )
            for r in recs
        ]
        for r in recs:
            out = r.get("StdOut")
            if out and Path(out).exists():
                parts.append(f"--- {out} (tail) ---\n{Path(out).read_text(errors='replace')[-4000:]}")
        if self.log_dir is not None:
            log = self.log_dir / "slurmctld.log"
            if log.exists():
                parts.append(f"--- {log} (tail) ---\n{log.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)


def _answers(env: dict[str, str]) -> bool:
    if shutil.which("scontrol", path=env.get("PATH")) is None:
        return False
    try:
        return _run(["scontrol", "ping"], env, timeout=15).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="session")
def slurm():
    require = os.environ.get("BYZMPI_REQUIRE_SLURM") == "1"
    start_local = require or os.environ.get("BYZMPI_SLURM_LOCAL") == "1"
    conf = os.environ.get("SLURM_CONF")
    if conf and _answers(dict(os.environ)):
        log_dir = Path(conf).parent.parent / "log"
        yield Cluster(conf, None, log_dir if log_dir.is_dir() else None)
        return
    why = f"SLURM_CONF={conf} does not answer `scontrol ping`" if conf else "SLURM_CONF is not set"
    if not start_local:
        pytest.skip(
            f"no Slurm cluster ({why}). To run these tests: BYZMPI_SLURM_LOCAL=1 (starts a private "
            "single-node cluster with slurm/local/slurm-local.sh; root, apt), or start one and export "
            "SLURM_CONF; CI sets BYZMPI_REQUIRE_SLURM=1"
        )
    base = Path(tempfile.mkdtemp(prefix="byzmpi-slurm-", dir="/tmp"))
    env = {**os.environ, "SLURM_LOCAL_BASE": str(base)}
    env.pop("SLURM_CONF", None)
    try:
        res = _run(["bash", str(LOCAL_SCRIPT), "start"], env, timeout=600)
        ok, detail = res.returncode == 0, f"rc {res.returncode}\n{res.stderr[-3000:]}"
    except subprocess.TimeoutExpired as exc:
        ok, detail = False, f"timed out after {exc.timeout} s"
    if not ok:
        _run(["bash", str(LOCAL_SCRIPT), "stop"], env, timeout=120)
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(
            f"{'BYZMPI_REQUIRE_SLURM=1' if require else 'BYZMPI_SLURM_LOCAL=1'} ({why}), and the local "
            f"cluster did not start: {LOCAL_SCRIPT} start -> {detail}",
            pytrace=False,
        )
    try:
        yield Cluster(str(base / "etc" / "slurm.conf"), base, base / "log")
    finally:
        _run(["bash", str(LOCAL_SCRIPT), "stop"], env, timeout=120)
        shutil.rmtree(base, ignore_errors=True)
