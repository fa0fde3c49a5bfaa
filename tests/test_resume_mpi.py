"""Checkpoints and exact resume, through real mpiexec jobs.

Each trial kills a running job with SIGKILL to its whole process group at a random moment after
some checkpoints exist, resumes it on a different number of ranks, and compares the final model
byte for byte with an uninterrupted run (one batched job runs every reference). Every method and
the stateful aggregator (centered clipping) is covered.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import textwrap
import time

import h5py
import numpy as np
import pytest

from byzmpi.checkpoint import REQUEUE_EXIT, read_header
from byzmpi.launch import mpi_env, mpiexec_command
from byzmpi.trace import open_trace
from tests.mpi import byzmpi, kill_group

pytestmark = pytest.mark.mpi

BASE = """
[run]
name = "{name}"
seed = 5
rounds = {rounds}
eval_every = 25
trace = "{dir}/{name}.h5"
progress = "none"
flush_seconds = 0.2

[checkpoint]
every = 10
path = "{dir}/{name}.ckpt.h5"

[clients]
n = 8
byzantine = 2

[task]
name = "synthetic"
features = 12
samples = 1600
batch_size = 16
"""

VARIANTS = {
    "sgd_cc": """
[method]
name = "sgd"
lr = 0.2
momentum = 0.9
[aggregator]
name = "centered_clipping"
[attack]
name = "alie"
""",
    "sgd_clip": """
[clients]
per_round = 6
[method]
name = "sgd"
lr = 0.2
momentum = 0.5
clip = true
clip_alpha = 2.0
[aggregator]
name = "median"
[attack]
name = "sign_flip"
""",
    "marina_pp": """
[clients]
per_round = 4
[method]
name = "vr_marina_pp"
lr = 0.3
p = 0.1
[aggregator]
name = "median"
f = 1
[attack]
name = "shift_back"
[compressor]
name = "randk"
ratio = 0.5
""",
    "dasha": """
[method]
name = "dasha_page"
lr = 0.2
p = 0.1
[aggregator]
name = "trimmed_mean"
[attack]
name = "ipm"
[compressor]
name = "randk"
ratio = 0.5
""",
    "rosdhb": """
[method]
name = "rosdhb"
lr = 0.2
[aggregator]
name = "trimmed_mean"
[attack]
name = "foe"
[compressor]
name = "randk_coordinated"
ratio = 0.5
""",
}


def _config(tmp, name: str, variant: str, rounds: int) -> str:
    base = BASE.format(name=name, dir=tmp, rounds=rounds)
    extra = VARIANTS[variant]
    if "[clients]" in extra:  # merge the variant's [clients] keys into the base section
        head, _, rest = extra.partition("[clients]\n")
        lines, _, tail = rest.partition("[method]")
        base = base.replace("byzantine = 2\n", "byzantine = 2\n" + lines)
        extra = head + "[method]" + tail
    path = tmp / f"{name}.toml"
    path.write_text(textwrap.dedent(base + extra))
    return str(path)


ROUNDS = 240


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    configs = [_config(d, v, v, ROUNDS) for v in VARIANTS]
    res = byzmpi(4, "run", *configs, timeout=400, cwd=d)
    assert res.returncode == 0, res.stderr[-3000:]
    return d


def _start(n: int, config: str, cwd) -> subprocess.Popen:
    cmd = mpiexec_command(n, ["-m", "byzmpi", "run", config])
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True, env=mpi_env()
    )


def _wait_for_checkpoint(path, at_least: int, proc: subprocess.Popen, timeout: float = 120.0) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            return -1
        try:
            header = read_header(path)
        except Exception:  # a reader racing the first write: try again
            header = None
        if header is not None and header.rounds_done >= at_least:
            return header.rounds_done
        time.sleep(0.05)
    return -1


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_sigkill_then_resume_on_other_rank_count_is_bit_identical(variant, references, tmp_path):
    rnd = random.Random(f"{variant}-{os.getpid()}")
    name = variant
    cfg = _config(tmp_path, name, variant, ROUNDS)
    proc = _start(4, cfg, tmp_path)
    threshold = rnd.choice([10, 20, 30, 40])
    seen = _wait_for_checkpoint(tmp_path / f"{name}.ckpt.h5", threshold, proc)
    time.sleep(rnd.uniform(0.0, 0.3))
    if proc.poll() is None:
        kill_group(proc, signal.SIGKILL)
    proc.communicate()
    assert seen >= threshold, "the job ended before the kill: make it longer"

    # the killed job's trace opens and holds every round up to its last flush, in order
    header = read_header(tmp_path / f"{name}.ckpt.h5")
    with open_trace(tmp_path / f"{name}.h5") as f:
        rounds = f["rounds"]["round"][...]
        assert len(rounds) >= header.trace_rows["rounds"]
        assert np.array_equal(rounds, np.arange(len(rounds)))
        assert f.attrs["status"] == "running"

    n_resume = rnd.choice([3, 5])
    res = byzmpi(n_resume, "run", cfg, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resuming at round {header.rounds_done}" in res.stdout

    with h5py.File(references / f"{name}.h5", "r") as a, h5py.File(tmp_path / f"{name}.h5", "r") as b:
        assert b.attrs["status"] == "finished"
        assert a["final_params"][...].tobytes() == b["final_params"][...].tobytes()
        for table, column in (("rounds", "aggregate_norm"), ("eval", "loss"), ("messages", "norm")):
            assert np.array_equal(a[table][column], b[table][column], equal_nan=True), table
        assert np.array_equal(a["rounds"]["round"], b["rounds"]["round"])


def test_sigusr1_stops_at_a_round_boundary_with_exit_75_and_resumes(references, tmp_path):
    cfg = _config(tmp_path, "sgd_cc", "sgd_cc", ROUNDS)
    proc = _start(4, cfg, tmp_path)
    seen = _wait_for_checkpoint(tmp_path / "sgd_cc.ckpt.h5", 10, proc)
    assert seen >= 10
    os.kill(proc.pid, signal.SIGUSR1)  # mpiexec forwards SIGUSR1 to every rank
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        pytest.fail("the job did not stop after SIGUSR1")
    assert proc.returncode == REQUEUE_EXIT, err[-2000:]
    header = read_header(tmp_path / "sgd_cc.ckpt.h5")
    assert not header.complete and seen <= header.rounds_done < ROUNDS
    assert f"checkpoint at round {header.rounds_done}" in out
    res = byzmpi(3, "run", cfg, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    with h5py.File(references / "sgd_cc.h5", "r") as a, h5py.File(tmp_path / "sgd_cc.h5", "r") as b:
        assert a["final_params"][...].tobytes() == b["final_params"][...].tobytes()


def test_checkpoint_of_another_config_is_refused(references, tmp_path):
    cfg = _config(tmp_path, "sgd_cc", "sgd_cc", ROUNDS)
    ckpt = references / "sgd_cc.ckpt.h5"
    other = open(cfg).read().replace("lr = 0.2", "lr = 0.25").replace(str(tmp_path), str(references))
    path = tmp_path / "other.toml"
    path.write_text(other)
    assert read_header(ckpt).complete
    res = byzmpi(3, "run", str(path), "--resume", timeout=120, cwd=tmp_path)
    assert res.returncode == 2
    assert "was written by a different config" in res.stderr and "Traceback" not in res.stderr
