"""T6 fast: momentum SGD with partial participation on digits: shift-back breaks the unclipped run,
clipping of differences (eq. 10) trains normally; under BF clipping is not worse (full version:
analysis/reproduce/t6_momentum_clip.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reproductions.helpers import run_variants

pytestmark = pytest.mark.mpi


def second_half(ev: np.ndarray) -> np.ndarray:
    return ev["accuracy"][len(ev) // 2 :]


def test_clipping_rescues_momentum_sgd_from_shift_back(tmp_path):
    common = {"run.rounds": 500, "run.eval_every": 20}
    shb = {"attack.name": "shift_back", "attack.mult": 2.0}
    clip = {"method.clip": True, "method.clip_mult": 1.0}
    traces = run_variants(
        tmp_path,
        "t6_momentum_clip.toml",
        [
            ("shb_noclip", {**common, **shb}),
            ("shb_clip", {**common, **shb, **clip}),
            ("bf_noclip", {**common, "attack.name": "sign_flip"}),
            ("bf_clip", {**common, "attack.name": "sign_flip", **clip}),
        ],
        timeout=120,
    )
    acc = {k: second_half(t["eval"]) for k, t in traces.items()}
    # SHB: the clipped run trains normally, the unclipped one keeps being thrown back
    assert acc["shb_clip"].mean() > 0.85, acc["shb_clip"]
    assert acc["shb_noclip"].mean() < acc["shb_clip"].mean() - 0.1, acc["shb_noclip"]
    assert acc["shb_noclip"].min() < 0.6, acc["shb_noclip"]
    # BF: clipping does not hurt (within noise)
    assert acc["bf_clip"].mean() > 0.85
    assert acc["bf_clip"].mean() >= acc["bf_noclip"].mean() - 0.03
    # both SHB runs saw the same Byzantine-majority rounds, and only those trigger the attack
    r = traces["shb_noclip"]["rounds"]
    assert (r["byzantine"] == traces["shb_clip"]["rounds"]["byzantine"]).all()
    assert (2 * r["byzantine"] > r["sampled"]).sum() >= 5
