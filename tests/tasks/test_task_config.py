"""The new data files and torch models through the config, in process: a config names them, the
run is assembled by the same setup a launch uses, and one round of the pure step trains."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from byzmpi.config import load_config
from byzmpi.errors import ConfigError, SetupError
from byzmpi.runner.setup import setup
from byzmpi.tasks.torch_model import TorchModel
from tests.core.test_step import Clients, new_server_state, plan_of, step

CONFIG = """
[run]
name = "t"
trace = "{dir}/t.h5"
[clients]
n = 4
byzantine = 1
[checkpoint]
resume = "never"
[task]
{task}
batch_size = 4
[method]
name = "sgd"
lr = 0.05
[aggregator]
name = "median"
"""


def _run(tmp_path, task: str):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(dir=tmp_path, task=textwrap.dedent(task)))
    return setup(load_config(path), world_size=2, rank=1)


def _one_round(run) -> torch.Tensor:
    clients, state = Clients(run), new_server_state(run)
    x0 = run.method.model(state.method).clone()
    plan = plan_of(run, 0)
    record = step(run, state, plan, clients.wire(state, plan))
    x1 = run.method.model(state.method)
    assert record.rejected == 0 and not record.skipped
    assert bool(torch.isfinite(x1).all()) and not torch.equal(x0, x1)
    return x1


def _images(tmp_path, n=40, shape=(1, 28, 28), classes=10):
    g = np.random.default_rng(0)
    X = g.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    y = g.integers(0, classes, size=n)
    np.savez(tmp_path / "img.npz", X=X, y=y)


def test_npz_images_with_the_builtin_cnn(tmp_path):
    _images(tmp_path)
    run = _run(tmp_path, 'name = "npz"\npath = "img.npz"\nmodel = "lightnet"\npartition = "iid"')
    assert isinstance(run.task.model, TorchModel) and run.task.dim == 11_830  # LightNet2 of the RoSDHB code
    _one_round(run)


def test_a_users_module_and_data_through_the_config(tmp_path):
    (tmp_path / "my_models.py").write_text(
        "import torch.nn as nn\n"
        "def Net():\n    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3))\n"
    )
    (tmp_path / "my_data.py").write_text(
        "import torch\n"
        "def load():\n"
        "    g = torch.Generator().manual_seed(1)\n"
        "    return torch.randn(60, 12, generator=g), torch.randint(0, 3, (60,), generator=g)\n"
    )
    run = _run(tmp_path, 'name = "torch"\ndata = "my_data.py:load"\nmodel = "my_models.py:Net"')
    assert run.task.dim == 12 * 8 + 8 + 8 * 3 + 3
    _one_round(run)


def test_csv_with_default_model_from_labels(tmp_path):
    g = np.random.default_rng(2)
    rows = np.column_stack([g.normal(size=(50, 4)), g.integers(0, 2, size=50)])
    np.savetxt(tmp_path / "d.csv", rows, delimiter=",", fmt="%.6f")
    run = _run(tmp_path, 'name = "csv"\npath = "d.csv"')
    assert type(run.task.model).__name__ == "LogisticRegression"  # binary labels
    _one_round(run)


def test_bad_task_fields_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="task.path"):
        _run(tmp_path, 'name = "mnist"')
    with pytest.raises(ConfigError, match="task.data"):
        _run(tmp_path, 'name = "torch"')
    with pytest.raises(ConfigError, match="task.model"):
        _run(tmp_path, 'name = "synthetic"\nmodel = "nope"')
    _images(tmp_path, shape=(3, 32, 32))
    with pytest.raises(ConfigError, match="takes inputs of shape"):
        _run(tmp_path, 'name = "npz"\npath = "img.npz"\nmodel = "lightnet"')
    with pytest.raises((SetupError, ConfigError), match="task.path"):
        _run(tmp_path, 'name = "cifar10"\npath = "nowhere"')
