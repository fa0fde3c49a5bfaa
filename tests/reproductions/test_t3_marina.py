"""T3 fast: Byz-VR-MARINA converges linearly on homogeneous a9a under BF, robust SGD plateaus
(full version: analysis/reproduce/t3_marina.py, results in analysis/results/t3_marina/)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reproductions.helpers import log_slope, needs_a9a, run_variants

pytestmark = [pytest.mark.mpi, needs_a9a()]


def test_marina_linear_sgd_plateau(tmp_path):
    common = {"run.rounds": 700, "run.eval_every": 25, "attack.name": "sign_flip"}
    traces = run_variants(
        tmp_path,
        "t3_marina.toml",
        [
            ("marina", {**common}),
            ("sgd", {**common, "method.name": "sgd", "method.p": None, "method.lr": 0.5, "method.momentum": 0.9}),
        ],
        timeout=150,
    )
    m, s = traces["marina"]["eval"], traces["sgd"]["eval"]
    gap0 = m["gap"][0]
    assert gap0 > 0.1 and np.isclose(s["gap"][0], gap0)
    # Byz-VR-MARINA: several orders of magnitude, still falling steadily (linear rate)
    assert m["gap"][-1] < 1e-4 * gap0, m["gap"]
    assert log_slope(m) < -1.0, log_slope(m)
    # BR-SGDm: stuck at its noise floor, far above MARINA
    assert s["gap"][-1] > 1e-5, s["gap"]
    assert abs(log_slope(s)) < 1.0, log_slope(s)
    assert m["gap"][-1] < 1e-2 * s["gap"][-1]
    # the Byzantine is sampled every round (full participation)
    r = traces["marina"]["rounds"]
    assert (r["sampled"] == 5).all() and (r["byzantine"] == 1).all()
