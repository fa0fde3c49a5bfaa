"""Packed runs (issue 12): ``byzmpi run --group-size Q`` splits the world into groups that run
their share of a grid concurrently, each with its own server, trace and checkpoint.

One 4-rank job with groups of 2: a grid of 8 runs where four fail at setup (they are reported,
the other four finish, exit status 1); every packed run's trace equals the same run alone on 2 ranks.
Then a preempted packed job (SIGUSR1 while both groups run) exits 75 and its requeue resumes the
unfinished runs and skips the finished ones."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import pytest

from byzmpi.checkpoint import REQUEUE_EXIT
from byzmpi.launch import mpi_env, mpiexec_command
from tests.mpi import byzmpi, kill_group

pytestmark = pytest.mark.mpi
PACED = Path(__file__).parent / "slurm" / "paced_rule.py"

BASE = """
[run]
name = "packed"
seed = 2
rounds = {rounds}
eval_every = 20
trace = "{dir}/{{name}}.h5"
progress = "none"
plugins = ["{paced}"]

[checkpoint]
path = "{dir}/{{name}}.ckpt.h5"
every = 10

[clients]
n = 4
byzantine = 1

[task]
name = "synthetic"
features = 8
samples = 400
batch_size = 8

[method]
name = "sgd"
lr = 0.2

[aggregator]
name = "{rule}"
f = 1

[attack]
name = "sign_flip"
"""


def _config(d: Path, rounds: int, rule: str = "median") -> str:
    path = d / "base.toml"
    path.write_text(BASE.format(dir=d, rounds=rounds, paced=PACED, rule=rule))
    return str(path)


def _final(path: Path) -> tuple[str, bytes]:
    with h5py.File(path, "r", locking=False) as f:
        return str(f.attrs["status"]), f["final_params"][...].tobytes()


def test_packed_grid_runs_concurrently_and_survives_a_failing_run(tmp_path):
    cfg = _config(tmp_path, rounds=40)
    # eight runs: four seeds of the median, and four of a config whose data file does not exist
    grid = ["--grid", "run.seed=1,2,3,4"]
    bad = tmp_path / "bad.toml"
    bad.write_text(
        Path(cfg)
        .read_text()
        .replace('name = "synthetic"', 'name = "libsvm"\npath = "missing.svm"')
        .replace('"packed"', '"bad"')
    )
    res = byzmpi(4, "run", cfg, str(bad), *grid, "--group-size", "2", timeout=300, cwd=tmp_path)
    assert res.returncode == 1, res.stderr[-3000:]
    assert "task.path" in res.stderr and "4 run(s) failed at setup" in res.stdout
    names = sorted(p.stem for p in tmp_path.glob("packed_s?.h5"))
    assert names == ["packed_s1", "packed_s2", "packed_s3", "packed_s4"]
    assert "group 0: " in res.stdout and "group 1: " in res.stdout
    # a packed run is the same run as alone (results do not depend on where it ran)
    alone = tmp_path / "alone"
    alone.mkdir()
    res = byzmpi(2, "run", _config(alone, rounds=40), "--set", "run.seed=3", "--set", "run.name=packed_s3", timeout=200)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _final(tmp_path / "packed_s3.h5") == _final(alone / "packed_s3.h5")


def test_preempted_packed_job_resumes_and_skips_finished_runs(tmp_path):
    cfg = _config(tmp_path, rounds=400)  # 10 ms per round (paced rule): 4 s per run
    short = tmp_path / "short.toml"
    short.write_text(
        Path(cfg).read_text().replace("rounds = 400", "rounds = 20").replace('name = "packed"', 'name = "short"')
    )
    args = ["-m", "byzmpi", "run", str(short), cfg, "--grid", "run.seed=1,2,3", "--group-size", "2"]
    proc = subprocess.Popen(
        mpiexec_command(4, args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
        env=mpi_env(),
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not list(tmp_path.glob("packed_s*.ckpt.h5")):
        time.sleep(0.1)
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGUSR1)  # mpiexec forwards it to every rank
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        pytest.fail("the packed job did not stop after SIGUSR1")
    assert proc.returncode == REQUEUE_EXIT, err[-3000:]
    res = byzmpi(4, "run", str(short), cfg, "--grid", "run.seed=1,2,3", "--group-size", "2", timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "finished before, skipped" in res.stdout  # at least the short runs finished in the first job
    for name in ("short_s1", "short_s2", "short_s3", "packed_s1", "packed_s2", "packed_s3"):
        assert _final(tmp_path / f"{name}.h5")[0] == "finished", name
