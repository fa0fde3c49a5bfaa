"""Models and regularisers: closed-form gradients against autograd and finite differences."""

from __future__ import annotations

import pytest
import torch

from byzmpi.tasks.models import MLP, LogisticRegression, SoftmaxRegression
from byzmpi.tasks.regularizers import Regularizer

torch.set_default_dtype(torch.float32)


def data(n=17, p=6, classes=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, p, generator=g, dtype=torch.float64)
    if classes is None:
        y = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).double()
    else:
        y = torch.randint(0, classes, (n,), generator=g)
    w = torch.rand(n, generator=g, dtype=torch.float64)
    return X, y, w / w.sum(), g


def autograd(model, theta, X, y, w=None):
    th = theta.clone().requires_grad_(True)
    value = model.loss(th, X, y, w)
    (grad,) = torch.autograd.grad(value, th)
    return value.detach(), grad


@pytest.mark.parametrize("weighted", [False, True])
def test_logistic_gradient_equals_autograd(weighted):
    X, y, w, g = data()
    w = w if weighted else None
    model = LogisticRegression(6)
    theta = torch.randn(6, generator=g, dtype=torch.float64)
    value, grad = model.loss_grad(theta, X, y, w)
    ref_value, ref_grad = autograd(model, theta, X, y, w)
    assert torch.allclose(value, ref_value, rtol=1e-12, atol=1e-14)
    assert torch.allclose(grad, ref_grad, rtol=1e-10, atol=1e-13)


def test_logistic_by_hand():
    model = LogisticRegression(2)
    X = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0], dtype=torch.float64)
    value, grad = model.loss_grad(torch.zeros(2, dtype=torch.float64), X, y)
    # at θ = 0 every loss is log 2 and ∇ = mean(−y σ(0) a) = (−0.5·[1, 0] + 0.5·[0, 2]) / 2
    assert value.item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert grad.tolist() == pytest.approx([-0.25, 0.5])
    assert model.predict(torch.tensor([1.0, -1.0]), X.float()).tolist() == [1.0, -1.0]


@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_gradient_equals_autograd(weighted):
    X, y, w, g = data(classes=4)
    w = w if weighted else None
    model = SoftmaxRegression(6, 4)
    assert model.dim == 4 * 7
    theta = torch.randn(model.dim, generator=g, dtype=torch.float64)
    value, grad = model.loss_grad(theta, X, y, w)
    ref_value, ref_grad = autograd(model, theta, X, y, w)
    assert torch.allclose(value, ref_value, rtol=1e-12)
    assert torch.allclose(grad, ref_grad, rtol=1e-10, atol=1e-13)


def test_softmax_two_classes_matches_logistic():
    # softmax with W = [0; θ], b = 0 is logistic regression with labels 2c − 1
    X, y, _, g = data()
    theta = torch.randn(6, generator=g, dtype=torch.float64)
    sm = SoftmaxRegression(6, 2)
    full = torch.cat([torch.zeros(6, dtype=torch.float64), theta, torch.zeros(2, dtype=torch.float64)])
    classes = (y > 0).long()
    assert torch.allclose(sm.loss(full, X, classes), LogisticRegression(6).loss(theta, X, y), rtol=1e-12)


def test_mlp_gradient_matches_finite_differences():
    X, y, w, _ = data(n=9, p=4, classes=3)
    model = MLP(4, 3, hidden=5)
    assert model.dim == 5 * 4 + 5 + 3 * 5 + 3
    theta = model.init(torch.Generator().manual_seed(1)).double()
    value, grad = model.loss_grad(theta, X, y, w)
    eps = 1e-6
    fd = torch.empty_like(theta)
    for i in range(theta.numel()):
        e = torch.zeros_like(theta)
        e[i] = eps
        fd[i] = (model.loss(theta + e, X, y, w) - model.loss(theta - e, X, y, w)) / (2 * eps)
    assert torch.allclose(grad, fd, rtol=1e-6, atol=1e-9)
    assert value.item() == pytest.approx(model.loss(theta, X, y, w).item())


def test_mlp_init_is_seeded_and_bounded():
    model = MLP(16, 3, hidden=4)
    a = model.init(torch.Generator().manual_seed(5))
    b = model.init(torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (model.dim,)
    w1 = a[: 4 * 16]
    assert w1.abs().max() <= 1 / 16**0.5 and w1.abs().max() > 0.15  # uniform(-1/4, 1/4)


@pytest.mark.parametrize("kind, lam", [("l2", 0.3), ("nonconvex", 0.7), ("none", 0.5)])
def test_regularizer_gradient_equals_autograd(kind, lam):
    reg = Regularizer(kind, lam)
    theta = torch.randn(11, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2
    th = theta.clone().requires_grad_(True)
    value = reg.value(th)
    grad = torch.autograd.grad(value, th, allow_unused=True)[0] if value.requires_grad else torch.zeros_like(th)
    assert torch.allclose(reg.grad(theta), grad, rtol=1e-12, atol=1e-15)


def test_regularizer_values_by_hand():
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    assert Regularizer("l2", 0.1).value(theta).item() == pytest.approx(0.05 * 5)
    assert Regularizer("nonconvex", 0.1).value(theta).item() == pytest.approx(0.1 * (0.5 + 0.8))
    assert Regularizer("none", 0.1).value(theta).item() == 0.0
    assert Regularizer("l2", 0.1).strongly_convex and not Regularizer("l2", 0.0).strongly_convex
    assert not Regularizer("nonconvex", 0.1).convex
