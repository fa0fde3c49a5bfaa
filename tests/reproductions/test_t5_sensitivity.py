"""T5 fast: clipping radii that converge (alpha = 1 and 3) both converge linearly at different speeds;
full participation also converges (full version: analysis/reproduce/t5_sensitivity.py, where
alpha = 10 is shown not to converge in this setting)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reproductions.helpers import log_slope, needs_a9a, run_variants

pytestmark = [pytest.mark.mpi, needs_a9a()]


def test_clipping_radii_and_full_participation(tmp_path):
    common = {"run.rounds": 700, "run.eval_every": 25}
    traces = run_variants(
        tmp_path,
        "t5_sensitivity.toml",
        [
            ("alpha1", {**common, "method.clip_alpha": 1.0}),
            ("alpha3", {**common, "method.clip_alpha": 3.0}),
            ("full", {**common, "method.clip": False, "clients.per_round": 20, "aggregator.f": 4}),
        ],
        timeout=170,
    )
    gap0 = traces["alpha1"]["eval"]["gap"][0]
    for name in ("alpha1", "alpha3", "full"):
        ev = traces[name]["eval"]
        assert ev["gap"][-1] < 1e-2 * gap0, (name, ev["gap"])
        assert log_slope(ev) < -0.5, (name, log_slope(ev))
    # different speeds: the tighter radius is faster here
    assert traces["alpha1"]["eval"]["gap"][-1] < 0.5 * traces["alpha3"]["eval"]["gap"][-1]
    # full participation: every client every round, the Byzantines never a majority, no clipping
    r = traces["full"]["rounds"]
    assert (r["sampled"] == 20).all() and (2 * r["byzantine"] <= r["sampled"]).all()
    assert np.isnan(r["clip_radius"]).all()
