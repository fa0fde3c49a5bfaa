"""T4 fast: Byz-VR-MARINA-PP under shift-back: with clipping f - f* falls by orders of magnitude,
without clipping it never converges (full version: analysis/reproduce/t4_clipping.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reproductions.helpers import log_slope, needs_a9a, run_variants

pytestmark = [pytest.mark.mpi, needs_a9a()]


def test_clipping_vs_no_clipping_under_shift_back(tmp_path):
    common = {"run.rounds": 700, "run.eval_every": 25}
    traces = run_variants(
        tmp_path,
        "t4_clipping.toml",
        [
            ("clip", {**common}),
            # the paper's a9a shift-back: Byzantines send x^k - x^0 (byzmpi mult = gamma)
            ("noclip", {**common, "method.clip": False, "attack.mult": 0.2}),
        ],
        timeout=150,
    )
    c, u = traces["clip"]["eval"], traces["noclip"]["eval"]
    gap0 = c["gap"][0]
    assert np.isclose(u["gap"][0], gap0)
    # with clipping: several orders of magnitude, decreasing at a linear rate
    assert c["gap"][-1] < 1e-2 * gap0, c["gap"]
    assert log_slope(c) < -1.0, log_slope(c)
    # without clipping: never gets anywhere near (stays around its start or blows up)
    assert np.nanmin(u["gap"][len(u) // 2 :]) > 0.1 * gap0, u["gap"]
    assert u["gap"][-1] > 1e3 * c["gap"][-1]
    # same sampling in both runs; Byzantine-majority rounds at the expected rate 155/4845 = 0.032
    rc, ru = traces["clip"]["rounds"], traces["noclip"]["rounds"]
    assert (rc["byzantine"] == ru["byzantine"]).all()
    majority = (2 * rc["byzantine"] > rc["sampled"]).mean()
    assert 0.012 < majority < 0.06, majority
    # the clipped run clipped the Byzantine messages of majority rounds
    msg = traces["clip"]["messages"]
    maj_rounds = rc["round"][2 * rc["byzantine"] > rc["sampled"]]
    byz = msg[(msg["byzantine"] == 1) & np.isin(msg["round"], maj_rounds)]
    assert byz.size and (byz["clipped"] == 1).mean() > 0.9
