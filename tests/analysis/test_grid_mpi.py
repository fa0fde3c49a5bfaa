"""End to end: one MPI job runs a grid (aggregators x seeds) one run after another, each under its
grid name; ``byzmpi compare`` then finds the swept field and the replicates by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from byzmpi import grid as G
from byzmpi.analysis import compare as C
from tests.mpi import byzmpi

pytestmark = pytest.mark.mpi
ROOT = Path(__file__).resolve().parents[2]


def test_one_job_runs_a_grid_and_compare_understands_it(tmp_path):
    cfg = ROOT / "configs" / "quickstart.toml"
    desc = ["--grid", "aggregator.name=mean,median", "--seeds", "1..2", "--set", "run.rounds=20"]
    res = byzmpi(3, "run", str(cfg), *desc, "--set", "run.progress=none", timeout=300, cwd=tmp_path)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])
    names = [r.name for r in G.expand([cfg], ["aggregator.name=mean,median"], "1..2", ["run.rounds=20"])]
    assert names == ["quickstart_mean_s1", "quickstart_mean_s2", "quickstart_median_s1", "quickstart_median_s2"]
    assert sorted(p.stem for p in (tmp_path / "runs").glob("*.h5")) == names
    assert "[byzmpi] run 4 of 4 (grid index 3): quickstart_median_s2" in res.stdout
    comp = C.build(tmp_path / "runs")
    assert comp.sweep.swept == ["aggregator.name"] and "run.seed" in comp.sweep.replicates
    assert set(comp.cells[comp.metrics[0]]["n"]) == {2}
    # --index: only that run (a fresh folder: a resumed checkpoint would not rerun it)
    res = byzmpi(3, "run", str(cfg), *desc, "--index", "1", timeout=300, cwd=tmp_path / "runs")
    assert res.returncode == 0, res.stderr[-3000:]
    assert [p.stem for p in (tmp_path / "runs" / "runs").glob("*.h5")] == ["quickstart_mean_s2"]
    # a malformed --grid: one line from rank 0, exit 2
    res = byzmpi(3, "run", str(cfg), "--grid", "aggregator.name=", timeout=120, cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("config error: --grid aggregator.name=") == 1, res.stderr
