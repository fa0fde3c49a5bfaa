"""T8 fast: RoSDHB with a global rand-k mask vs independent masks under FOE (digits MLP, trimmed mean):
while the model climbs, independent masks leave the trimmed mean a larger error and reach the target
accuracy no sooner (full version: analysis/reproduce/t8_masks.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reproductions.helpers import run_variants

pytestmark = pytest.mark.mpi


def rounds_to(ev: np.ndarray, target: float) -> float:
    hit = np.flatnonzero(ev["accuracy"] >= target)
    return float(ev["round"][hit[0]]) if hit.size else float("inf")


def test_global_mask_beats_independent_masks_early(tmp_path):
    common = {"run.rounds": 60, "run.eval_every": 5, "method.lr": 1.0}
    traces = run_variants(
        tmp_path,
        "t8_masks.toml",
        [
            ("global", {**common}),
            ("independent", {**common, "compressor.name": "randk"}),
        ],
        timeout=150,
    )
    err = {}
    for name, t in traces.items():
        r = t["rounds"]
        early = (r["round"] >= 1) & (r["round"] <= 30)
        err[name] = float(np.nanmean(r["dist_honest_mean"][early] / r["honest_mean_norm"][early]))
        # both send exactly K = floor(0.1 * 2410) = 241 float32 values per client per round
        assert (r["bytes_up"] == r["sampled"] * 241 * 4).all()
    assert err["independent"] > 1.3 * err["global"], err
    g, i = rounds_to(traces["global"]["eval"], 0.9), rounds_to(traces["independent"]["eval"], 0.9)
    assert g <= 40 and g <= i, (g, i)
