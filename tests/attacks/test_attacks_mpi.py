"""Attacks in real multi-rank runs: one batched 4-rank job (10 clients on 3 hosts: 0-2, 3-5, 6-9)
runs four configs one after the other, and the assertions read the traces it wrote."""

from __future__ import annotations

import textwrap

import h5py
import numpy as np
import pytest

from tests.mpi import byzmpi

pytestmark = pytest.mark.mpi

BASE = """
[run]
name = "{name}"
seed = 4
rounds = 40
eval_every = 20
trace = "{dir}/{name}.h5"
progress = "none"

[clients]
n = 10
{clients}

[task]
name = "synthetic"
features = 8
samples = 1500
heterogeneity = 0.3
batch_size = 16

[method]
name = "sgd"
lr = 0.2

[aggregator]
{aggregator}

[attack]
{attack}
"""

CONFIGS = {
    # (a) label flip, full participation, trimmed mean
    "label_flip": dict(
        clients="byzantine = 2", aggregator='name = "trimmed_mean"\nf = 2', attack='name = "label_flip"'
    ),
    # (b) NaN payloads under partial participation: the number of sampled Byzantines varies
    "nan": dict(
        clients="byzantine_ids = [1, 4, 8]\nper_round = 6",
        aggregator='name = "trimmed_mean"\nf = 2',
        attack='name = "nan_payload"',
    ),
    # (c) IPM computed by the Byzantine hosts; Byzantines on all three hosts (two on host 1)
    "ipm_local": dict(
        clients="byzantine_ids = [1, 2, 4, 8]",
        aggregator='name = "mean"',
        attack='name = "ipm"\nthreat_model = "local"\neps = 0.5',
    ),
    # (d) FOE searching eta against the server's trimmed mean
    "foe": dict(
        clients="byzantine = 3",
        aggregator='name = "trimmed_mean"\nf = 3',
        # the RoSDHB code's linear grid, no zoom or refinement: the sent eta is a grid value
        attack='name = "foe"\nthreat_model = "omniscient"\ngrid = "linear"\neta_min = 0.1\neta_max = 5.0\n'
        "eta_steps = 20\nzoom = 0\nrefine = 0",
    ),
}


def _read(path) -> dict:
    with h5py.File(path, "r") as f:
        return {
            "eval": f["eval"][...],
            "rounds": f["rounds"][...],
            "messages": f["messages"][...],
            "params": f["final_params"][...],
            "attrs": dict(f.attrs),
        }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("attack_runs")
    paths = []
    for name, parts in CONFIGS.items():
        path = d / f"{name}.toml"
        path.write_text(textwrap.dedent(BASE.format(name=name, dir=d, **parts)))
        paths.append(str(path))
    res = byzmpi(4, "run", *paths, timeout=150, cwd=d)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-4000:])
    return {name: _read(d / f"{name}.h5") for name in CONFIGS}


def _byzantine_norms_per_round(run) -> list[np.ndarray]:
    msgs = run["messages"]
    byz = msgs[msgs["byzantine"] == 1]
    return [byz["norm"][byz["round"] == k] for k in np.unique(byz["round"])]


def test_every_run_finished_with_its_attack(runs):
    for name, run in runs.items():
        assert run["attrs"]["status"] == "finished", name
        assert len(run["rounds"]) == 40
        assert np.isfinite(run["params"]).all(), name


def test_label_flip_still_trains_under_trimmed_mean(runs):
    run = runs["label_flip"]
    assert run["attrs"]["attack"] == "label_flip"
    assert np.all(run["rounds"]["byzantine"] == 2) and np.all(run["rounds"]["rejected"] == 0)
    assert run["eval"]["loss"][-1] < run["eval"]["loss"][0]


def test_nan_payloads_are_rejected_and_counted(runs):
    run = runs["nan"]
    rounds, msgs = run["rounds"], run["messages"]
    assert np.all(rounds["sampled"] == 6)
    assert np.array_equal(rounds["rejected"], rounds["byzantine"])
    assert rounds["byzantine"].max() > 0 and len(np.unique(rounds["byzantine"])) > 1
    assert np.all(msgs["rejected"][msgs["byzantine"] == 1] != 0)
    assert np.all(msgs["rejected"][msgs["byzantine"] == 0] == 0)
    assert np.all(rounds["skipped"] == 0)
    assert np.isfinite(run["eval"]["loss"]).all() and run["eval"]["loss"][-1] < run["eval"]["loss"][0]


def test_ipm_local_is_computed_by_the_coalition(runs):
    run = runs["ipm_local"]
    assert run["attrs"]["threat_model"] == "local"
    assert not run["attrs"]["simulation"]
    assert np.all(run["rounds"]["byzantine"] == 4)
    # every Byzantine, whichever host holds it, sends −ε·(coalition mean): one vector per round
    for norms in _byzantine_norms_per_round(run):
        assert len(norms) == 4 and norms.max() > 0
        assert np.allclose(norms, norms[0], rtol=1e-6)


def test_foe_search_runs_on_the_server(runs):
    run = runs["foe"]
    assert run["attrs"]["threat_model"] == "omniscient" and run["attrs"]["simulation"]
    assert np.all(run["rounds"]["byzantine"] == 3)
    rounds = run["rounds"]
    grid = np.linspace(0.1, 5.0, 20)
    for k, norms in enumerate(_byzantine_norms_per_round(run)):
        assert len(norms) == 3 and np.allclose(norms, norms[0], rtol=1e-6)
        # ‖−η·μ‖ / ‖μ‖ = η: the server sent a value of the configured grid
        eta = norms[0] / rounds["honest_mean_norm"][k]
        assert np.min(np.abs(grid - eta)) < 1e-3 * eta, eta
    assert np.isfinite(rounds["dist_honest_mean"]).all()
