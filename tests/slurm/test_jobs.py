"""slurm/run.sbatch and slurm/sweep.sbatch on a real single-node Slurm (see conftest.py).

The interrupted runs are compared bit for bit with one uninterrupted 4-rank ``mpiexec`` run of the
same config (started in the background as soon as a test needs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

from byzmpi.trace import open_trace
from tests.mpi import byzmpi

from .conftest import REPO, SLURM_DIR, TERMINAL, Cluster, Job

pytestmark = pytest.mark.slurm

RUN = SLURM_DIR / "run.sbatch"
SWEEP = SLURM_DIR / "sweep.sbatch"
NTASKS = 4
SHORT = 60  # rounds of the plain runs
LONG = 250  # rounds of the interrupted runs (long.toml: >= 10 ms each): >= 2.5 s to interrupt them in
LONG_SET = ("--set", f"run.rounds={LONG}", "--set", "run.flush_seconds=0.2", "--set", "run.eval_every=50")
START_TIMEOUT = 240  # submit -> the job's first trace rows (4 ranks importing torch on a loaded 2-core box)
JOB_TIMEOUT = 300  # submit or requeue -> final state


@pytest.fixture(scope="module")
def workroot(tmp_path_factory) -> Path:
    """cfg.toml: the quickstart; long.toml: the quickstart with rounds paced to >= 10 ms (plugin)."""
    root = tmp_path_factory.mktemp("slurm")
    quick = (REPO / "configs" / "quickstart.toml").read_text()
    (root / "cfg.toml").write_text(quick)
    long = re.sub(r'(?m)^name = "trimmed_mean"$', 'name = "paced_trimmed_mean"', quick)
    long = long.replace("[run]\n", '[run]\nplugins = ["paced_rule.py"]\n', 1)
    assert "paced_trimmed_mean" in long and "paced_rule.py" in long
    (root / "long.toml").write_text(long)
    shutil.copy(Path(__file__).with_name("paced_rule.py"), root / "paced_rule.py")
    return root


def _workdir(workroot: Path, name: str) -> Path:
    d = workroot / name
    d.mkdir()
    for f in ("cfg.toml", "long.toml", "paced_rule.py"):
        shutil.copy(workroot / f, d / f)
    return d


@pytest.fixture(scope="module")
def reference(workroot) -> Future:
    """final_params of an uninterrupted run of the LONG config, computed in the background."""
    d = _workdir(workroot, "reference")

    def run() -> np.ndarray:
        res = byzmpi(NTASKS, "run", "long.toml", *LONG_SET, "--set", "run.name=ref", timeout=600, cwd=d)
        assert res.returncode == 0, f"reference run failed: {res.stderr[-3000:]}"
        return _trace(d / "runs" / "ref.h5")["params"]

    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(run)
    yield future
    pool.shutdown(wait=True)


def _trace(path: Path) -> dict:
    with h5py.File(path, "r", locking=False) as f:
        return {"attrs": dict(f.attrs), "params": f["final_params"][...], "rounds": f["rounds"]["round"][...]}


def _rows(path: Path) -> int:
    """Rows of the trace's rounds table so far (0 while it does not exist yet)."""
    try:
        with open_trace(path) as f:
            return int(f["rounds"].shape[0])
    except (OSError, KeyError):
        return 0


def _output(rec: dict) -> str:
    return Path(rec["StdOut"]).read_text(errors="replace")


def _wait_rows(slurm: Cluster, job: Job, trace: Path, rows: int, also: Path | None = None) -> int:
    """Wait until the running job's trace holds ``rows`` rounds (and ``also`` exists); the row count."""

    def ready(recs):
        state = recs[0].get("JobState")
        if state != "RUNNING":
            assert state in ("PENDING", "CONFIGURING"), f"job {job.id} is {state} before the test could interrupt it"
            return None
        n = _rows(trace)
        return n if n >= rows and (also is None or also.exists()) else None

    return slurm.wait_for(job, ready, START_TIMEOUT, f"{rows} trace rows while RUNNING")


def _wait_restarted(slurm: Cluster, job: Job) -> None:
    """Wait until the job runs again after one requeue (or has already ended after it)."""
    slurm.wait_for(
        job,
        lambda r: int(r[0].get("Restarts", 0)) >= 1 and r[0].get("JobState") in {"RUNNING", *TERMINAL},
        JOB_TIMEOUT,
        "second start (Restarts=1, RUNNING)",
        poll=0.2,
    )


def _check_finished(d: Path, name: str, rounds: int, world_size: int) -> dict:
    t = _trace(d / "runs" / f"{name}.h5")
    assert t["attrs"]["status"] == "finished"
    assert int(t["attrs"]["rounds_done"]) == rounds
    assert int(t["attrs"]["world_size"]) == world_size
    np.testing.assert_array_equal(t["rounds"], np.arange(rounds))  # each round exactly once, also after a resume
    return t


def _check_resumed(d: Path, name: str, out: str, reference: Future, world_size: int = NTASKS) -> int:
    """The run finished after exactly one resume from a round strictly inside the run, and its model
    equals the uninterrupted run's bit for bit; returns the round it resumed at."""
    resumed = [int(k) for k in re.findall(rf"{name}: resuming at round (\d+)", out)]
    assert len(resumed) == 1 and 0 < resumed[0] < LONG, f"expected one resume inside the run:\n{out[-3000:]}"
    t = _check_finished(d, name, LONG, world_size)
    ref = reference.result(timeout=JOB_TIMEOUT)
    assert t["params"].dtype == ref.dtype
    assert t["params"].tobytes() == ref.tobytes(), f"max |diff| {np.max(np.abs(t['params'] - ref))}"
    return resumed[0]


# ---- (a) a plain run ----------------------------------------------------------------------------


def test_run_sbatch_completes(slurm, workroot):
    d = _workdir(workroot, "plain")
    t0 = time.monotonic()
    job = slurm.sbatch(
        RUN,
        "cfg.toml",
        "--set",
        f"run.rounds={SHORT}",
        "--set",
        "run.name=plain",
        opts=(f"--ntasks={NTASKS}", "--time=10"),
        workdir=d,
    )
    rec = slurm.wait_done(job, JOB_TIMEOUT)
    out = _output(rec)
    assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", slurm.describe(job)
    assert Path(rec["StdOut"]).name == f"byzmpi-{job.id}.out"  # the script's --output=%x-%j.out, in --chdir
    assert f"restart 0, {NTASKS} tasks: mpiexec -n {NTASKS}" in out and "finished" in out
    _check_finished(d, "plain", SHORT, NTASKS)
    print(
        f"\n[slurm] (a) run.sbatch, {NTASKS} ranks, {SHORT} rounds: {time.monotonic() - t0:.1f} s submit -> COMPLETED"
    )


# ---- (b) USR1 -> checkpoint, exit 75, self-requeue, resume ----------------------------------------


@pytest.mark.timeout(900)
def test_usr1_checkpoints_requeues_and_resumes_bit_identically(slurm, workroot, reference):
    d = _workdir(workroot, "usr1")
    t0 = time.monotonic()
    job = slurm.sbatch(
        RUN, "long.toml", *LONG_SET, "--set", "run.name=usr1", opts=(f"--ntasks={NTASKS}", "--time=10"), workdir=d
    )
    rows = _wait_rows(slurm, job, d / "runs" / "usr1.h5", 20)
    slurm.cmd("scancel", "--signal=USR1", "--batch", job.id)
    t_sig = time.monotonic()
    _wait_restarted(slurm, job)
    t_back = time.monotonic()
    rec = slurm.wait_done(job, JOB_TIMEOUT, restarts=1)
    out = _output(rec)
    assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0" and rec["Restarts"] == "1", slurm.describe(job)
    assert "SIGUSR1: asking the run to checkpoint" in out
    assert "exiting with status 75" in out and f"scontrol requeue {job.id}" in out
    assert "restart 1, " in out
    k = _check_resumed(d, "usr1", out, reference)
    assert k >= rows
    print(
        f"\n[slurm] (b) USR1 at trace row {rows}, resumed at round {k}; signal -> running again "
        f"{t_back - t_sig:.1f} s; whole job {time.monotonic() - t0:.1f} s"
    )


# ---- (c) scontrol requeue of a running job (TERM, then KILL) -------------------------------------


@pytest.mark.timeout(900)
def test_scontrol_requeue_resumes_from_a_checkpoint(slurm, workroot, reference):
    every = 25
    d = _workdir(workroot, "requeue")
    t0 = time.monotonic()
    job = slurm.sbatch(
        RUN,
        "long.toml",
        *LONG_SET,
        "--set",
        "run.name=requeue",
        "--set",
        f"checkpoint.every={every}",
        opts=(f"--ntasks={NTASKS}", "--time=10"),
        workdir=d,
    )
    rows = _wait_rows(slurm, job, d / "runs" / "requeue.h5", 2 * every, also=d / "runs" / "requeue.ckpt.h5")
    slurm.cmd("scontrol", "requeue", job.id)
    t_req = time.monotonic()
    _wait_restarted(slurm, job)
    t_back = time.monotonic()
    rec = slurm.wait_done(job, JOB_TIMEOUT, restarts=1)
    out = _output(rec)
    assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0" and rec["Restarts"] == "1", slurm.describe(job)
    assert "DUE TO JOB REQUEUE" in out
    # the batch shell never requeues after TERM itself (Slurm already does): exactly one restart
    assert "scontrol requeue" not in out
    k = _check_resumed(d, "requeue", out, reference)
    # the ranks also get Slurm's TERM: they may still write a checkpoint at the next round boundary
    # before the KILL; otherwise the last periodic one (a multiple of `every`) is used
    kind = "periodic" if k % every == 0 else "written on SIGTERM"
    print(
        f"\n[slurm] (c) scontrol requeue at trace row {rows}, resumed at round {k} ({kind} checkpoint); "
        f"requeue -> running again {t_back - t_req:.1f} s; whole job {time.monotonic() - t0:.1f} s"
    )


@pytest.mark.timeout(900)
def test_killed_job_requeued_resumes_from_the_periodic_checkpoint(slurm, workroot, reference):
    """No process gets a chance to checkpoint (SIGKILL to the whole job, as in a node crash); then
    `scontrol requeue` of the ended job: it resumes from the last `checkpoint.every` checkpoint, and
    from a trace whose writer was killed."""
    every = 25
    d = _workdir(workroot, "killed")
    t0 = time.monotonic()
    job = slurm.sbatch(
        RUN,
        "long.toml",
        *LONG_SET,
        "--set",
        "run.name=killed",
        "--set",
        f"checkpoint.every={every}",
        opts=(f"--ntasks={NTASKS}", "--time=10"),
        workdir=d,
    )
    rows = _wait_rows(slurm, job, d / "runs" / "killed.h5", 2 * every + 5, also=d / "runs" / "killed.ckpt.h5")
    # `scancel --signal=KILL` cancels the job (TERM first, then KILL): SIGKILL its processes directly
    pids = [
        int(line.split()[0])
        for line in slurm.cmd("scontrol", "listpids", job.id).stdout.splitlines()[1:]
        if line.split() and line.split()[0].isdigit()
    ]
    assert len(pids) >= NTASKS + 2, f"scontrol listpids {job.id}: {pids}"  # batch shell, mpiexec, the ranks
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    first = slurm.wait_done(job, 120)
    assert first["JobState"] in ("FAILED", "CANCELLED") and first["Restarts"] == "0", slurm.describe(job)
    slurm.cmd("scontrol", "requeue", job.id)
    rec = slurm.wait_done(job, JOB_TIMEOUT, restarts=1)
    out = _output(rec)
    assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0" and rec["Restarts"] == "1", slurm.describe(job)
    assert "stop requested" not in out  # nobody checkpointed on the way down
    k = _check_resumed(d, "killed", out, reference)
    assert k % every == 0 and every <= k <= rows + every, f"resumed at {k}, not at a periodic checkpoint"
    print(
        f"\n[slurm] (c2) SIGKILL at trace row {rows} + requeue: resumed at round {k} (periodic); "
        f"whole job {time.monotonic() - t0:.1f} s"
    )


# ---- (d) a job array sweep -------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_sweep_array_writes_one_trace_per_task(slurm, workroot):
    d = _workdir(workroot, "sweep")
    (d / "grid.txt").write_text(
        "# aggregator x attack\n"
        "cfg.toml --set aggregator.name=median\n"
        "\n"
        "cfg.toml --set 'aggregator.name=trimmed_mean' --set attack.name=ipm\n"
        "   # an indented comment\n"
        'cfg.toml --set aggregator.name=mean --set "attack.name=none"\n'
    )
    expected = [("median", "alie"), ("trimmed_mean", "ipm"), ("mean", "none")]
    t0 = time.monotonic()
    # 2 ranks per task: 3 tasks fit the node at once; the extra argument goes to every task
    job = slurm.sbatch(
        SWEEP,
        "grid.txt",
        "--set",
        "run.rounds=40",
        opts=(f"--array=0-{len(expected) - 1}", "--ntasks=2", "--time=10"),
        workdir=d,
    )
    tasks = slurm.wait_array(job, len(expected), JOB_TIMEOUT)
    for i, (rule, attack) in enumerate(expected):
        rec = tasks[str(i)]
        assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", slurm.describe(job)
        assert Path(rec["StdOut"]).name == f"byzmpi-sweep-{job.id}_{i}.out"
        t = _check_finished(d, f"grid_{i}", 40, 2)
        cfg = json.loads(t["attrs"]["config"])
        assert (cfg["run"]["name"], cfg["aggregator"]["name"], cfg["attack"]["name"]) == (f"grid_{i}", rule, attack)
    assert sorted(p.name for p in (d / "runs").glob("*.h5")) == [f"grid_{i}.h5" for i in range(len(expected))]
    print(f"\n[slurm] (d) sweep of {len(expected)} array tasks x 2 ranks: {time.monotonic() - t0:.1f} s")


@pytest.mark.timeout(600)
def test_submit_sweep_over_a_folder_of_configs(slurm, workroot):
    """slurm/submit-sweep.sh sizes the array from a folder of configs (task i: the i-th .toml)."""
    d = _workdir(workroot, "sweep_dir")
    grid = d / "grid.d"
    grid.mkdir()
    base = (d / "cfg.toml").read_text()
    (grid / "b_median.toml").write_text(base.replace('name = "trimmed_mean"', 'name = "median"'))
    (grid / "a_mean.toml").write_text(base.replace('name = "trimmed_mean"', 'name = "mean"'))
    (grid / "notes.txt").write_text("not a config\n")
    t0 = time.monotonic()
    res = subprocess.run(
        [
            "bash",
            str(SLURM_DIR / "submit-sweep.sh"),
            "grid.d",
            "--parsable",
            f"--chdir={d}",
            "--ntasks=2",
            "--time=10",
            "--array-limit=2",
            "--",
            "--set",
            "run.rounds=20",
        ],
        cwd=d,
        env={**slurm.env, "BYZMPI_VENV": sys.prefix, "BYZMPI_SWEEP_NAME": "fold"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    job = Job(res.stdout.strip().split(";")[0], d)
    tasks = slurm.wait_array(job, 2, JOB_TIMEOUT)
    for i, rule in enumerate(["mean", "median"]):  # sorted file names: a_mean, b_median
        assert tasks[str(i)]["JobState"] == "COMPLETED", slurm.describe(job)
        t = _check_finished(d, f"fold_{i}", 20, 2)
        assert json.loads(t["attrs"]["config"])["aggregator"]["name"] == rule
    assert slurm.show(job)["ArrayTaskThrottle"] == "2"
    print(f"\n[slurm] (d2) submit-sweep.sh over 2 configs x 2 ranks: {time.monotonic() - t0:.1f} s")


def test_sweep_rejects_an_index_beyond_the_grid(slurm, workroot):
    d = _workdir(workroot, "sweep_short")
    (d / "grid.txt").write_text("cfg.toml --set run.rounds=5\n")
    job = slurm.sbatch(SWEEP, "grid.txt", opts=("--array=1", "--ntasks=1", "--time=2"), workdir=d)
    rec = slurm.wait_array(job, 1, 60)["1"]
    assert rec["JobState"] == "FAILED" and rec["ExitCode"] == "2:0"
    assert "task 1, but grid.txt has 1 lines" in _output(rec)
    assert not (d / "runs").exists()


# ---- (e) srun --mpi=pmix, config through the environment, USR1 at start-up + requeue through srun ----


@pytest.mark.timeout(900)
def test_srun_pmix_launch_and_requeue(slurm, workroot, reference):
    """srun starts one 4-rank world (trace attr world_size); a USR1 sent as srun starts, before srun
    and the ranks can handle it, is held back by the script for a few seconds, then checkpoints."""
    d = _workdir(workroot, "srun")
    t0 = time.monotonic()
    job = slurm.sbatch(
        RUN,
        opts=(f"--ntasks={NTASKS}", "--time=10"),
        workdir=d,
        env={
            "BYZMPI_LAUNCHER": "srun",
            "BYZMPI_CONFIG": "long.toml",
            "BYZMPI_ARGS": " ".join(LONG_SET + ("--set", "run.name=srun")),
        },
    )
    # the script logs this line just before it starts srun: signal within the next second
    launched = f"restart 0, {NTASKS} tasks: srun"
    slurm.wait_for(
        job,
        lambda r: r[0].get("StdOut") and Path(r[0]["StdOut"]).exists() and launched in Path(r[0]["StdOut"]).read_text(),
        START_TIMEOUT,
        "launch",
        poll=0.1,
    )
    slurm.cmd("scancel", "--signal=USR1", "--batch", job.id)
    rec = slurm.wait_done(job, 2 * JOB_TIMEOUT, restarts=1)
    out = _output(rec)
    assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0" and rec["Restarts"] == "1", slurm.describe(job)
    assert f"srun --mpi=pmix -n {NTASKS}" in out
    assert "SIGUSR1 during start-up: passing it on" in out
    assert "Exited with exit code 75" in out  # srun passes the ranks' status on
    # world_size = 4: not 4 singletons of size 1 (srun --mpi=pmi2/none with Open MPI)
    k = _check_resumed(d, "srun", out, reference, world_size=NTASKS)
    print(f"\n[slurm] (e) srun --mpi=pmix: USR1 at start-up, resumed at {k}; whole job {time.monotonic() - t0:.1f} s")


# ---- (f) a packed grid: one allocation, groups of 4 ranks, scontrol requeue, skip + resume -------


@pytest.mark.timeout(900)
def test_packed_grid_requeue_skips_finished_and_resumes_bit_identically(slurm, workroot, reference):
    """slurm/packed.sbatch: 8 tasks, group size 4 = two 4-rank runs at a time over a 4-run grid
    (group 0: runs 0 and 2, group 1: runs 1 and 3). Run 0 is short and finishes first; `scontrol
    requeue` while runs 1 and 2 are in the middle: the requeued job skips run 0 (its trace says it
    finished), resumes runs 1 and 2 from their checkpoints and runs 3; every long run ends
    bit-identical to the uninterrupted reference, whatever its checkpoint.every."""
    d = _workdir(workroot, "packed")
    (d / "grid.txt").write_text(
        "long.toml --set run.rounds=30 --set checkpoint.every=10\n"
        f"long.toml --set run.rounds={LONG} --set checkpoint.every=25\n"
        f"long.toml --set run.rounds={LONG} --set checkpoint.every=20\n"
        f"long.toml --set run.rounds={LONG} --set checkpoint.every=30\n"
    )
    common = ("--set", "run.flush_seconds=0.2", "--set", "run.eval_every=50")
    t0 = time.monotonic()
    job = slurm.sbatch(
        SLURM_DIR / "packed.sbatch",
        "grid.txt",
        *common,
        opts=("--ntasks=8", "--time=10"),
        workdir=d,
        env={"BYZMPI_GROUP_SIZE": "4", "BYZMPI_SWEEP_NAME": "pk"},
    )
    runs = d / "runs"

    def short_done() -> bool:
        try:
            return _trace(runs / "pk_0.h5")["attrs"].get("status") == "finished"
        except (OSError, KeyError):
            return False

    # run 2 (group 0, after the short run 0) has a periodic checkpoint and is in the middle
    rows = _wait_rows(slurm, job, runs / "pk_2.h5", 45, also=runs / "pk_2.ckpt.h5")
    assert short_done()
    before = (runs / "pk_0.h5").stat().st_mtime_ns
    slurm.cmd("scontrol", "requeue", job.id)
    rec = slurm.wait_done(job, JOB_TIMEOUT, restarts=1)
    out = _output(rec)
    assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0" and rec["Restarts"] == "1", slurm.describe(job)
    assert "packed grid: 4 runs, 2 groups of 4 ranks" in out
    assert "--group-size 4 --skip-finished --keep-going" in out and "DUE TO JOB REQUEUE" in out
    after = out.split("DUE TO JOB REQUEUE", 1)[1]
    assert "pk_0: finished before, skipped" in after
    assert (runs / "pk_0.h5").stat().st_mtime_ns == before  # not rewritten
    _check_finished(d, "pk_0", 30, 4)
    resumed = {}
    for i in (1, 2):
        resumed[i] = _check_resumed(d, f"pk_{i}", out, reference, world_size=4)
    assert resumed[2] >= 20
    t3 = _check_finished(d, "pk_3", LONG, 4)
    ref = reference.result(timeout=JOB_TIMEOUT)
    assert t3["params"].tobytes() == ref.tobytes()
    print(
        f"\n[slurm] (f) packed 4-run grid on 8 tasks (2 groups of 4): requeue at pk_2 row {rows}; pk_0 skipped, "
        f"pk_1/pk_2 resumed at {resumed[1]}/{resumed[2]}; whole job {time.monotonic() - t0:.1f} s"
    )
