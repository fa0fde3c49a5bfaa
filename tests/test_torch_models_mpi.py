"""The built-in deep models on the standard file formats through real mpiexec (issue 10): LightNet
on an ``.npz``, LeNet-5 on gzipped MNIST IDX files, ResNet-18 (CIFAR stem, GroupNorm) on CIFAR-10
python batches. Each gives the same result on 3 and 5 ranks, and a run that dies mid-way resumes
from its checkpoint, on another rank count, to the byte-identical model of an uninterrupted run."""

from __future__ import annotations

import gzip
import pickle
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
rounds = {rounds}
eval_every = 6
trace = "{dir}/{name}.h5"
progress = "none"

[checkpoint]
path = "{dir}/{name}.ckpt.h5"
every = {every}

[clients]
n = 4
byzantine = 1

[task]
name = "{dataset}"
path = "{dir}/{data}"
model = "{model}"
partition = "dirichlet"
alpha = 5.0
batch_size = {batch}

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


def _write_npz(d: Path) -> str:
    g = np.random.default_rng(0)
    np.savez(d / "images.npz", X=g.integers(0, 256, size=(80, 1, 28, 28), dtype=np.uint8), y=g.integers(0, 10, size=80))
    return "images.npz"


def _write_idx(d: Path) -> str:
    g = np.random.default_rng(1)
    folder = d / "mnist"
    folder.mkdir()
    for prefix, n in (("train", 64), ("t10k", 16)):
        header = np.array([0x0803, n, 28, 28], dtype=">u4").tobytes()
        pixels = g.integers(0, 256, (n, 28, 28), dtype=np.uint8).tobytes()
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + pixels))
        labels = np.array([0x0801, n], dtype=">u4").tobytes() + g.integers(0, 10, n, dtype=np.uint8).tobytes()
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    return "mnist"


def _write_cifar(d: Path) -> str:
    """cifar-10-batches-py as distributed: pickled dicts with b"data" (N, 3072) uint8, b"labels"."""
    g = np.random.default_rng(2)
    folder = d / "cifar-10-batches-py"
    folder.mkdir()
    for name, n in (("data_batch_1", 32), ("data_batch_2", 16), ("test_batch", 16)):
        batch = {
            b"labels": [int(v) for v in g.integers(0, 10, n)],
            b"data": g.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return "cifar-10-batches-py"


#: model -> (dataset, file writer, batch, rounds, checkpoint every, crash round)
CASES = {
    "lightnet": ("npz", _write_npz, 8, 12, 4, 9),
    "lenet5": ("mnist", _write_idx, 8, 12, 4, 9),
    "resnet18": ("cifar10", _write_cifar, 4, 6, 2, 5),
}


def _config(d: Path, model: str, data: str, name: str, fail_rank: int = -1, fail_round: int = -1) -> str:
    dataset, _, batch, rounds, every, _ = CASES[model]
    path = d / f"{name}.toml"
    text = CONFIG.format(
        dir=d,
        name=name,
        model=model,
        dataset=dataset,
        data=data,
        batch=batch,
        rounds=rounds,
        every=every,
        fail_rank=fail_rank,
        fail_round=fail_round,
    )
    path.write_text(text)
    return str(path)


def _model(path: Path) -> bytes:
    with h5py.File(path, "r", locking=False) as f:
        assert f.attrs["status"] == "finished"
        return f["final_params"][...].tobytes()


@pytest.mark.parametrize("model", sorted(CASES))
def test_deep_model_on_its_file_format_is_rank_count_independent_and_resumes_exactly(tmp_path, model):
    data = CASES[model][1](tmp_path)
    crash_round, every = CASES[model][5], CASES[model][4]
    for ranks, name in ((3, "three"), (5, "five")):
        res = byzmpi(ranks, "run", _config(tmp_path, model, data, name), timeout=400, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
    # the same run (the trajectory does not depend on names or paths, only on the config's fields)
    assert _model(tmp_path / "three.h5") == _model(tmp_path / "five.h5")
    # dies on rank 2 after a checkpoint, resumed on 3 ranks
    crashed = _config(tmp_path, model, data, "crash", fail_rank=2, fail_round=crash_round)
    res = byzmpi(5, "run", crashed, timeout=400, cwd=tmp_path)
    assert res.returncode != 0 and "injected failure" in res.stderr
    res = byzmpi(3, "run", _config(tmp_path, model, data, "crash"), timeout=400, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resuming at round {crash_round // every * every}" in res.stdout
    assert _model(tmp_path / "crash.h5") == _model(tmp_path / "three.h5")
