"""A built-in CNN on an image file through real mpiexec (issue 10): the same result on 3 and 5
ranks, and a run that dies mid-way resumes from its checkpoint, on another rank count, to the
byte-identical model of an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.mpi import byzmpi

pytestmark = pytest.mark.mpi

CONFIG = """
[run]
name = "{name}"
seed = 5
rounds = 12
eval_every = 6
trace = "{dir}/{name}.h5"
progress = "none"

[checkpoint]
path = "{dir}/{name}.ckpt.h5"
every = 4

[clients]
n = 4
byzantine = 1

[task]
name = "npz"
path = "{dir}/images.npz"
model = "lightnet"
partition = "dirichlet"
alpha = 5.0
batch_size = 8

[method]
name = "rosdhb"
lr = 0.05

[compressor]
name = "randk_coordinated"
ratio = 0.25

[aggregator]
name = "trimmed_mean"

[attack]
name = "sign_flip"

[debug]
fail_rank = {fail_rank}
fail_round = {fail_round}
"""


def _config(d: Path, name: str, fail_rank: int = -1, fail_round: int = -1) -> str:
    path = d / f"{name}.toml"
    path.write_text(CONFIG.format(dir=d, name=name, fail_rank=fail_rank, fail_round=fail_round))
    return str(path)


def _model(path: Path) -> bytes:
    with h5py.File(path, "r", locking=False) as f:
        assert f.attrs["status"] == "finished"
        return f["final_params"][...].tobytes()


def test_cnn_on_an_image_file_is_rank_count_independent_and_resumes_exactly(tmp_path):
    g = np.random.default_rng(0)
    np.savez(
        tmp_path / "images.npz",
        X=g.integers(0, 256, size=(80, 1, 28, 28), dtype=np.uint8),
        y=g.integers(0, 10, size=80),
    )
    for ranks, name in ((3, "three"), (5, "five")):
        res = byzmpi(ranks, "run", _config(tmp_path, name), timeout=400, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
    # the same run (the trajectory does not depend on names or paths, only on the config's fields)
    assert _model(tmp_path / "three.h5") == _model(tmp_path / "five.h5")
    # dies at round 9 on rank 2 after the checkpoint of round 8, resumed on 3 ranks
    crashed = _config(tmp_path, "crash", fail_rank=2, fail_round=9)
    res = byzmpi(5, "run", crashed, timeout=400, cwd=tmp_path)
    assert res.returncode != 0 and "injected failure" in res.stderr
    res = byzmpi(3, "run", _config(tmp_path, "crash"), timeout=400, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming at round 8" in res.stdout
    assert _model(tmp_path / "crash.h5") == _model(tmp_path / "three.h5")
