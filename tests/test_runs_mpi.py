"""Multi-rank behaviour of ``byzmpi run``, through real ``mpiexec`` launches.

Scenarios are batched: one 5-rank job runs three configs one after the other (20 clients, four per
rank), and the assertions read the traces the job wrote, the same files a user would read.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from byzmpi.aggregators import RULES
from byzmpi.plan import Sampler
from tests.mpi import byzmpi, run_mpi

pytestmark = pytest.mark.mpi

GAUSSIAN = """
[run]
name = "{name}"
seed = 3
rounds = 150
eval_every = 50
trace = "{dir}/{name}.h5"
progress = "log"

[clients]
n = 20
byzantine = 6

[task]
name = "synthetic"
features = 20
samples = 4000
heterogeneity = 0.3
batch_size = 16

[method]
name = "sgd"
lr = 0.2

[aggregator]
name = "{rule}"

[attack]
name = "gaussian"
std = 200.0
"""

PARTIAL = """
[run]
name = "partial"
seed = 11
rounds = 60
eval_every = 20
trace = "{dir}/partial.h5"
progress = "none"

[clients]
n = 20
byzantine = 3
per_round = 7

[task]
name = "synthetic"
features = 10
samples = 2000
batch_size = 8

[method]
name = "sgd"
lr = 0.1
momentum = 0.5

[aggregator]
name = "trimmed_mean"

[attack]
name = "sign_flip"
"""


def _write(path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One 5-rank job (20 clients, 4 per host) running mean, Krum and a partial-participation config."""
    d = tmp_path_factory.mktemp("runs")
    configs = [
        _write(d / "mean.toml", GAUSSIAN.format(name="mean", rule="mean", dir=d)),
        _write(d / "krum.toml", GAUSSIAN.format(name="krum", rule="krum", dir=d)),
        _write(d / "partial.toml", PARTIAL.format(dir=d)),
    ]
    res = byzmpi(5, "run", *configs, "--json", timeout=240, cwd=d)
    assert res.returncode == 0, res.stderr[-3000:]
    return d, res


def _final(path) -> dict:
    with h5py.File(path, "r") as f:
        ev = f["eval"][...]
        return {
            "initial": ev[0],
            "final": ev[-1],
            "params": f["final_params"][...],
            "rounds": f["rounds"][...],
            "messages": f["messages"][...],
            "attrs": dict(f.attrs),
        }


def test_gaussian_attack_breaks_mean_but_not_krum(batch):
    d, res = batch
    mean, krum = _final(d / "mean.h5"), _final(d / "krum.h5")
    # every round of both runs saw all 20 clients, 6 of them Byzantine
    for run in (mean, krum):
        assert np.all(run["rounds"]["sampled"] == 20) and np.all(run["rounds"]["byzantine"] == 6)
        assert run["attrs"]["status"] == "finished"
    # the mean is dragged by N(0, 200^2) noise: no training, the loss grows
    assert not mean["final"]["loss"] < mean["initial"]["loss"]
    assert mean["final"]["accuracy"] < 0.75
    # Krum never selects a Byzantine vector, and trains
    msgs = krum["messages"]
    assert np.all(msgs["weight"][msgs["byzantine"] == 1] == 0.0)
    assert np.allclose(msgs["weight"][msgs["byzantine"] == 0].reshape(150, -1).sum(1), 1.0)
    assert krum["final"]["loss"] < 0.8 * krum["initial"]["loss"]
    assert krum["final"]["accuracy"] > 0.8
    assert krum["final"]["gap"] < 0.25 * krum["initial"]["gap"]


def test_partial_participation_samples_per_round_count(batch):
    d, _ = batch
    run = _final(d / "partial.h5")
    rounds, msgs = run["rounds"], run["messages"]
    assert len(rounds) == 60 and np.all(rounds["sampled"] == 7)
    cfg = json.loads(run["attrs"]["config"])
    sampler = Sampler(
        seed=cfg["run"]["seed"],
        n=20,
        per_round=7,
        full_round=20,
        p=0.0,
        byzantine_ids=np.array(cfg["clients"]["byzantine_ids"]),
    )
    for k in range(60):
        plan = sampler.plan(k)
        got = msgs[msgs["round"] == k]
        assert np.array_equal(got["client"], plan.sampled)
        assert np.array_equal(got["byzantine"].astype(bool), plan.byzantine)
        assert rounds["byzantine"][k] == plan.n_byzantine
    # several sampled clients shared a host in some round (4 clients per rank)
    hosts = [np.unique(1 + msgs["client"][msgs["round"] == k] // 5).size for k in range(60)]
    assert min(hosts) < 7
    assert run["final"]["loss"] < run["initial"]["loss"]


def test_summary_lines_are_json(batch):
    _, res = batch
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [line["trace"].rsplit("/", 1)[1] for line in lines] == ["mean.h5", "krum.h5", "partial.h5"]


def test_result_does_not_depend_on_rank_count(batch, tmp_path):
    """The Krum run on 3 ranks (10 clients per host) ends with the same bytes as on 5 ranks."""
    d, _ = batch
    cfg = _write(tmp_path / "krum.toml", GAUSSIAN.format(name="krum", rule="krum", dir=tmp_path))
    res = byzmpi(3, "run", cfg, timeout=180, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = _final(d / "krum.h5"), _final(tmp_path / "krum.h5")
    assert a["params"].tobytes() == b["params"].tobytes()
    assert np.array_equal(a["rounds"]["aggregate_norm"], b["rounds"]["aggregate_norm"])


def test_rank_failure_aborts_the_job_quickly(tmp_path):
    cfg = _write(
        tmp_path / "fail.toml",
        PARTIAL.format(dir=tmp_path).replace("rounds = 60", "rounds = 1000000")
        + "\n[debug]\nfail_rank = 2\nfail_round = 5\n",
    )
    res = byzmpi(4, "run", cfg, timeout=120, cwd=tmp_path)
    end = time.time()
    assert res.returncode not in (0, None), res.stderr[-2000:]
    assert "injected failure on rank 2 at round 5" in res.stderr
    stamp = float(re.search(r"at ([0-9.]+) \(debug", res.stderr).group(1))
    assert end - stamp < 10.0


def test_bad_config_under_mpiexec_is_one_line_and_exit_2(tmp_path):
    cfg = _write(tmp_path / "bad.toml", PARTIAL.format(dir=tmp_path).replace('name = "trimmed_mean"', 'name = "krun"'))
    res = byzmpi(3, "run", cfg, timeout=120, cwd=tmp_path)
    assert res.returncode == 2
    ours = [line for line in res.stderr.splitlines() if line.startswith("byzmpi:")]
    assert ours == [f"byzmpi: config error: aggregator.name: must be one of {', '.join(sorted(RULES))} (got 'krun')"]
    assert "Traceback" not in res.stderr


def test_invalid_rule_for_the_worst_sampled_round_is_refused(tmp_path):
    cfg = _write(tmp_path / "krum_pp.toml", PARTIAL.format(dir=tmp_path).replace('"trimmed_mean"', '"krum"'))
    res = byzmpi(3, "run", cfg, timeout=120, cwd=tmp_path)
    assert res.returncode == 2
    assert "aggregator.f: krum needs m > 2f + 2, but a round can deliver m = 7" in res.stderr
    assert "Traceback" not in res.stderr


def test_one_rank_is_a_clear_error(tmp_path):
    cfg = _write(tmp_path / "ok.toml", PARTIAL.format(dir=tmp_path))
    res = run_mpi(1, "-m", "byzmpi", "run", cfg, timeout=120, cwd=tmp_path)
    assert res.returncode == 2
    assert "needs at least 2 MPI ranks" in res.stderr and "Traceback" not in res.stderr


def test_100k_rounds_do_not_exhaust_communicators():
    script = Path(__file__).parent / "scripts" / "comm_hygiene.py"
    res = run_mpi(4, str(script), "100000", timeout=280)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "OK 100000" in res.stdout
