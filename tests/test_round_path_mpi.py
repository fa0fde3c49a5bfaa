"""The server's round path under real ``mpiexec``: what the trace records equals the pure step
run in process on the same rounds, for the Gatherv and the checked receive paths alike, and the
staging columns (schema 4) are 0 on the CPU.

The in-process reference builds each round's wire by calling every sampled client's method step
(as the hosts do) and feeds it to :func:`byzmpi.runner.step.step`; the MPI run moves the same
payloads through ``Create_group`` + ``Bcast`` + ``Gatherv`` (with the hosts' telemetry in the same
gather) or the checked point-to-point path, and the server traces them. Every statistic of the
rounds and messages tables (timings aside) and the final model must agree exactly: the test
catches a changed value anywhere on the path (gather layout, telemetry slots, the statistics'
reused buffers, the row builders).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from byzmpi.config import load_config
from byzmpi.runner.setup import setup
from byzmpi.runner.step import new_server_state, step
from byzmpi.trace import SCHEMA_VERSION
from tests.mpi import byzmpi

pytestmark = pytest.mark.mpi

RANKS = 4
CONFIG = """
[run]
name = "{name}"
seed = 9
rounds = 25
eval_every = 10
trace = "{name}.h5"
progress = "none"
receive = "{receive}"

[clients]
n = 6
byzantine = 1
per_round = 4

[task]
name = "synthetic"
features = 12
samples = 600
heterogeneity = 0.4
batch_size = 8

[method]
name = "sgd"
lr = 0.2
momentum = 0.5

[aggregator]
name = "trimmed_mean"
f = 1

[attack]
name = "alie"
"""
TIMING = {"t_setup", "t_compute", "t_comm", "t_aggregate", "t_io", "t_eval", "t_round", "t_wall", "t_stage"}
TIMING |= {"t_stage_hosts"}


@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> tuple[Path, list[Path]]:
    d = tmp_path_factory.mktemp("round_path")
    configs = []
    for receive in ("gatherv", "checked"):
        path = d / f"{receive}.toml"
        path.write_text(textwrap.dedent(CONFIG.format(name=receive, receive=receive)))
        configs.append(path)
    res = byzmpi(RANKS, "run", *map(str, configs), "--json", timeout=240, cwd=d)
    assert res.returncode == 0, res.stderr[-3000:]
    return d, configs


def in_process(config: Path) -> tuple[list, np.ndarray]:
    """Every round's RoundRecord and the final model from the pure step, clients simulated here."""
    torch.set_num_threads(1)  # as in the ranks
    run = setup(load_config(config), world_size=RANKS, rank=0)
    state = new_server_state(run)
    method = run.method
    clients = {c: method.init_client(c) for c in range(run.cfg.clients.n)}
    records = []
    for k in range(run.cfg.run.rounds):
        plan = run.sampler.plan(k)
        down = torch.zeros(method.downlink_len)
        method.downlink(state.method, plan, down)
        wire = torch.zeros(plan.m, method.codec.wire_len(plan))
        for j, c in enumerate(plan.sampled.tolist()):
            method.codec.encode(method.client_message(clients[c], down, plan, c), plan, c, wire[j])
        records.append(step(run, state, plan, wire))
    return records, method.model(state.method).numpy()


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True)) if a.dtype.kind == "f" else bool(np.array_equal(a, b))


def test_trace_equals_the_pure_step_on_both_receive_paths(traces) -> None:
    d, configs = traces
    records, final = in_process(configs[0])
    assert sum(r.byzantine for r in records) > 0  # the attack really ran in some rounds
    for config in configs:
        with h5py.File(d / f"{config.stem}.h5", "r") as f:
            rounds, msgs = f["rounds"][...], f["messages"][...]
            assert f.attrs["status"] == "finished"
            np.testing.assert_array_equal(f["final_params"][...], final)
        assert len(rounds) == len(records)
        for name in ("sampled", "byzantine", "rejected", "clipped", "bytes_up", "full"):
            assert same(rounds[name], np.array([getattr(r, name) for r in records], rounds.dtype[name])), name
        for name in ("aggregate_norm", "honest_mean_norm", "dist_honest_mean", "update_norm", "clip_radius"):
            assert same(rounds[name], np.array([getattr(r, name) for r in records], np.float32)), name
        for name in ("client", "byzantine", "rejected", "norm", "dist_honest_mean", "weight", "clipped"):
            want = np.concatenate([getattr(r, f"message_{name}") for r in records]).astype(msgs.dtype[name])
            assert same(msgs[name], want), name
        assert np.array_equal(msgs["round"], np.concatenate([np.full(r.sampled, r.round) for r in records]))


def test_cpu_run_stages_nothing_and_reports_host_compute(traces) -> None:
    d, configs = traces
    for config in configs:
        with h5py.File(d / f"{config.stem}.h5", "r") as f:
            rounds = f["rounds"][...]
            assert int(f.attrs["schema_version"]) == SCHEMA_VERSION == 4
            for name in ("t_stage", "t_stage_hosts", "staged_d2h", "staged_h2d"):
                assert not rounds[name].any(), name
            # the hosts' compute seconds arrived (in the gather's telemetry slots) and fit in the wait
            assert (rounds["t_compute"] > 0).all()
            assert (rounds["t_compute"] + rounds["t_comm"] <= rounds["t_round"] + 1e-6).all()
            assert '"d2h": 0' in f.attrs["staged_bytes"] and '"h2d": 0' in f.attrs["staged_bytes"]
            assert '"telemetry_refused": 0' in f.attrs["refusals"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_staging_on_a_gpu_is_counted(tmp_path: Path) -> None:
    """On a GPU with host staging (run.cuda_aware = "no"), every round stages: the server its
    downlink out and the gather in, each member host the downlink in and its rows out."""
    text = CONFIG.format(name="gpu", receive="gatherv").replace(
        'progress = "none"', 'progress = "none"\ndevice = "cuda"\ncuda_aware = "no"'
    )
    (tmp_path / "gpu.toml").write_text(textwrap.dedent(text))
    res = byzmpi(RANKS, "run", str(tmp_path / "gpu.toml"), timeout=240, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    with h5py.File(tmp_path / "gpu.h5", "r") as f:
        rounds = f["rounds"][...]
        d = int(f.attrs["dim"])
    stride = d + 3  # payload + TELEMETRY slots
    members = rounds["bytes_down"] // (4 * d)  # member hosts per round
    m = rounds["sampled"].astype(np.int64)
    np.testing.assert_array_equal(rounds["staged_d2h"], 4 * (d + m * stride))
    np.testing.assert_array_equal(rounds["staged_h2d"], 4 * (m * stride + members * d))
    assert (rounds["t_stage"] > 0).all() and (rounds["t_stage_hosts"] > 0).all()
