"""Task: minibatches, the honest objective and its optimum."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from byzmpi.config import parse_config
from byzmpi.errors import SetupError
from byzmpi.tasks import build_task, flip_labels
from byzmpi.tasks.datasets import Dataset
from byzmpi.tasks.models import LogisticRegression, SoftmaxRegression
from byzmpi.tasks.optimum import optimum, solve_optimum
from byzmpi.tasks.regularizers import Regularizer
from byzmpi.tasks.task import Batch, Task


def logistic_dataset(n=40, p=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, p, generator=g)
    y = torch.where(X @ torch.tensor([1.0, -2.0, 0.5][:p]) + 0.7 * torch.randn(n, generator=g) > 0, 1.0, -1.0)
    return Dataset("toy", X, y, 2)


def make_task(shards, honest, *, dataset=None, batch_size=4, lam=0.1, seed=0):
    ds = dataset if dataset is not None else logistic_dataset()
    return Task(
        dataset=ds,
        shards=[np.asarray(s) for s in shards],
        model=LogisticRegression(ds.n_features),
        regularizer=Regularizer("l2", lam),
        batch_size=batch_size,
        seed=seed,
        honest_ids=np.asarray(honest),
    )


SHARDS = [np.arange(0, 10), np.arange(10, 25), np.arange(25, 40)]


def test_batch_is_deterministic_and_independent_of_call_order():
    t1, t2 = make_task(SHARDS, [0, 1, 2]), make_task(SHARDS, [0, 1, 2])
    keys = [(c, r) for r in range(5) for c in range(3)]
    first = {k: t1.batch(*k).samples for k in keys}
    second = {k: t2.batch(*k).samples for k in reversed(keys)}
    for k in keys:
        assert torch.equal(first[k], second[k])
        assert torch.equal(first[k], t1.batch(*k).samples)


def test_batch_is_a_subset_without_replacement_that_varies():
    t = make_task(SHARDS, [0, 1, 2], batch_size=6)
    for c, shard in enumerate(SHARDS):
        for r in range(10):
            b = t.batch(c, r).samples.numpy()
            assert b.size == 6 and np.unique(b).size == 6 and np.isin(b, shard).all()
    assert not torch.equal(t.batch(1, 0).samples, t.batch(1, 1).samples)
    assert not torch.equal(t.batch(1, 0).samples, t.batch(2, 0).samples - 15)
    assert not torch.equal(t.batch(1, 0).samples, t.batch(1, 0, purpose="batch2").samples)
    assert not torch.equal(
        t.batch(1, 0).samples, make_task(SHARDS, [0, 1, 2], batch_size=6, seed=1).batch(1, 0).samples
    )


def test_full_batch_when_batch_size_is_zero_or_too_large():
    for bs in (0, 10, 100):
        t = make_task(SHARDS, [0, 1, 2], batch_size=bs)
        assert torch.equal(t.batch(0, 3).samples, torch.arange(10))


def test_empty_shard_is_a_setup_error():
    with pytest.raises(SetupError, match="client 1 received no samples"):
        make_task([np.arange(5), np.array([], dtype=np.int64)], [0, 1])


def test_objective_weights_by_hand():
    # honest clients 0 and 1 share sample 1; client 2 (Byzantine) holds sample 4 only.
    shards = [np.array([0, 1]), np.array([1, 2, 3]), np.array([4])]
    t = make_task(shards, [0, 1], dataset=logistic_dataset(n=5))
    _, _, w = t._eval_set()
    # w_j = Σ_{honest i ∋ j} 1 / (G |D_i|), G = 2: 1/4, 1/4 + 1/6, 1/6, 1/6; sample 4 is absent
    assert w.tolist() == pytest.approx([0.25, 0.25 + 1 / 6, 1 / 6, 1 / 6])
    theta = torch.tensor([0.3, -0.2, 0.9])
    value, grad = t.objective(theta)
    ds, model, reg = t.dataset, t.model, t.regularizer
    th = theta.double()

    def f_i(s):
        X, y = ds.X[s].double(), ds.y[s].double()
        return model.loss(th, X, y) + reg.value(th)

    assert value == pytest.approx(float(0.5 * (f_i(shards[0]) + f_i(shards[1]))), rel=1e-12)
    # clients compute in float32 (the data's dtype); the server's objective in float64
    g_ref = 0.5 * (t.local_gradient(theta, 0) + t.local_gradient(theta, 1))
    assert grad.dtype == torch.float64
    assert torch.allclose(grad.float(), g_ref, rtol=1e-5, atol=1e-7)


def test_gradient_with_flipped_labels():
    t = make_task(SHARDS, [0, 1, 2])
    theta = torch.tensor([0.1, 0.2, -0.3])
    idx = torch.arange(10, 20)
    t.flip_labels_of([1])  # client 1 sees flipped labels; plain indices and client 0 do not
    flipped = t.gradient(theta, Batch(1, idx))
    _, ref = t.model.loss_grad(theta, t.dataset.X[idx], -t.dataset.y[idx])
    assert torch.allclose(flipped, ref + t.regularizer.grad(theta))
    assert not torch.allclose(flipped, t.gradient(theta, idx))
    assert torch.equal(t.gradient(theta, Batch(0, idx)), t.gradient(theta, idx))
    assert torch.equal(t.local_gradient(theta, 1), t.gradient(theta, Batch(1, t.shards[1])))
    assert flip_labels(torch.tensor([1.0, -1.0]), 2).tolist() == [-1.0, 1.0]
    assert flip_labels(torch.tensor([0, 3, 9]), 10).tolist() == [9, 6, 0]


def newton_minimum(t: Task, iters=40) -> tuple[float, torch.Tensor]:
    """Direct Newton solve of the honest l2-regularised logistic objective (closed-form Hessian)."""
    X, y, w = t._eval_set()
    y = y.double()
    lam = t.regularizer.lam
    theta = torch.zeros(X.shape[1], dtype=torch.float64)
    for _ in range(iters):
        m = y * (X @ theta)
        s = torch.sigmoid(-m)
        grad = X.T @ (w * -y * s) + lam * theta
        H = X.T @ ((w * s * (1 - s))[:, None] * X) + lam * torch.eye(X.shape[1], dtype=torch.float64)
        theta = theta - torch.linalg.solve(H, grad)
    value = float((w * torch.nn.functional.softplus(-y * (X @ theta))).sum() + 0.5 * lam * theta.dot(theta))
    return value, theta


def test_optimum_matches_newton():
    t = make_task(SHARDS, [0, 2], lam=0.05)
    f_newton, theta = newton_minimum(t)
    assert float(t.objective(theta)[1].norm()) < 1e-12
    assert solve_optimum(t) == pytest.approx(f_newton, rel=1e-12, abs=1e-14)


def test_optimum_is_cached_and_only_for_convex_tasks():
    t = make_task(SHARDS, [0, 1, 2], lam=0.05)
    f1 = optimum(t)
    assert f1 == optimum(make_task(SHARDS, [0, 1, 2], lam=0.05))
    assert optimum(make_task(SHARDS, [0, 1], lam=0.05)) != f1  # different honest set: a different f
    assert optimum(make_task(SHARDS, [0, 1, 2], lam=0.0)) is None  # not strongly convex


def test_evaluate_gap_is_non_negative():
    t = make_task(SHARDS, [0, 1, 2], lam=0.05)
    t.f_star = optimum(t)
    f_newton, theta_star = newton_minimum(t)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        ev = t.evaluate(torch.randn(3, generator=g))
        assert ev.gap >= 0 and math.isfinite(ev.loss) and 0 <= ev.accuracy <= 1 and ev.grad_norm_sq >= 0
    assert t.evaluate(torch.zeros(3)).gap > 0
    ev = t.evaluate(theta_star)
    assert ev.gap >= -1e-12 and ev.grad_norm_sq < 1e-20
    t.f_star = None
    assert math.isnan(t.evaluate(torch.zeros(3)).gap)


def test_accuracy_on_held_out_split_when_present():
    ds = logistic_dataset()
    X_test = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    with_test = Dataset("toy", ds.X, ds.y, 2, X_test, torch.tensor([1.0, 1.0]))
    t = make_task(SHARDS, [0, 1, 2], dataset=with_test)
    assert t.accuracy(torch.tensor([1.0, 0.0, 0.0])) == 0.5


def test_build_task_from_a_config():
    cfg = parse_config(
        {
            "run": {"seed": 2},
            "clients": {"n": 4, "byzantine": 1},
            "task": {"features": 5, "samples": 200, "batch_size": 8},
        }
    )
    t = build_task(cfg)
    assert t.dim == 6 and len(t.shards) == 4
    assert sum(s.numel() for s in t.shards) == 160  # 20 % held out, natural partition covers the rest
    assert t.honest_ids.tolist() == sorted(set(range(4)) - set(cfg.byzantine_ids))
    assert torch.equal(t.init_params(), torch.zeros(6))
    u = build_task(cfg)
    assert all(torch.equal(a, b) for a, b in zip(t.shards, u.shards)) and t.fingerprint() == u.fingerprint()
    cfg = parse_config({"clients": {"n": 4}, "task": {"features": 5, "samples": 200, "model": "softmax"}})
    t = build_task(cfg)
    assert isinstance(t.model, SoftmaxRegression) and t.dim == 2 * (6 + 1)  # W (2 x 6) and b (2)
    assert t.dataset.y.dtype == torch.int64 and set(t.dataset.y.tolist()) == {0, 1}


def test_init_options_zeros_normal_and_optimum_plus_one(tmp_path, monkeypatch):
    monkeypatch.setenv("BYZMPI_CACHE", str(tmp_path))
    t = make_task(SHARDS, [0, 1, 2])
    assert torch.equal(t.init_params("zeros"), torch.zeros(t.dim))
    a, b = t.init_params("normal", 2.0), t.init_params("normal", 2.0)
    assert torch.equal(a, b) and float(a.std()) > 0  # seeded: the same on every rank
    x = t.init_params("optimum", 1.0).double()
    _, grad = t.objective(x - 1.0)  # x* + 1: the gradient at x* vanishes
    assert float(grad.norm()) < 1e-6
    assert torch.equal(t.init_params("optimum", 1.0), x.float())  # from the cache, identical
