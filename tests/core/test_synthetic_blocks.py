"""The synthetic generator computes its samples in blocks of rows (to bound its float64
temporaries); its data must be exactly the whole-array definition's, for any block size."""

from __future__ import annotations

import numpy as np
import pytest

from byzmpi import rng
from byzmpi.tasks import datasets


def reference(*, seed, n_clients, samples, features, heterogeneity, label_noise):
    """The docstring's definition in whole-array form, drawing from the same stream in the same
    order: w*, μ_i, u_i, then every z_j at once, then the label noise ε."""
    gen = rng.generator(seed, rng.SETUP_ROUND, "synthetic-data")
    d = features
    w_star = gen.normal(size=d) * (2.0 / np.sqrt(d))
    per = np.full(n_clients, samples // n_clients)
    per[: samples % n_clients] += 1
    groups = np.repeat(np.arange(n_clients), per)
    centres = gen.normal(scale=heterogeneity, size=(n_clients, d))
    w_client = w_star + heterogeneity * gen.normal(size=(n_clients, d)) / np.sqrt(d)
    A = gen.normal(size=(samples, d)) + centres[groups]
    margin = np.einsum("nd,nd->n", A, w_client[groups]) + label_noise * gen.normal(size=samples)
    y = np.where(margin > 0, 1.0, -1.0).astype(np.float32)
    X = np.hstack([A, np.ones((samples, 1))]).astype(np.float32)
    return X, y, groups


@pytest.mark.parametrize("block", [1, 7, 100, 101, 1 << 14])
@pytest.mark.parametrize("heterogeneity", [0.0, 1.5])
def test_blocks_give_the_whole_array_data(monkeypatch, block, heterogeneity):
    monkeypatch.setattr(datasets, "SYNTHETIC_BLOCK", block)
    kw = dict(seed=3, n_clients=6, samples=101, features=5, heterogeneity=heterogeneity, label_noise=0.3)
    X, y, groups = reference(**kw)
    ds = datasets.synthetic(**kw, test_fraction=0.0)
    assert np.array_equal(ds.X.numpy(), X)
    assert np.array_equal(ds.y.numpy(), y)
    assert np.array_equal(ds.groups, groups)
    assert (y == 1).any() and (y == -1).any()  # both labels: the comparison is not vacuous
