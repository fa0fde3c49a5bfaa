"""Models over a flat parameter vector θ ∈ R^d.

Each model computes the (weighted) mean data loss and its gradient with respect to θ:
    L(θ) = Σ_j w_j ℓ(θ; a_j, y_j),   Σ_j w_j = 1 (uniform when no weights are given).
Regularisers are separate (:mod:`byzmpi.tasks.regularizers`).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class Model(Protocol):
    dim: int
    convex: bool  # the data loss is convex in θ

    def init(self, gen: torch.Generator) -> Tensor: ...
    def loss_grad(self, theta: Tensor, X: Tensor, y: Tensor, w: Tensor | None = None) -> tuple[Tensor, Tensor]: ...
    def loss(self, theta: Tensor, X: Tensor, y: Tensor, w: Tensor | None = None) -> Tensor: ...
    def predict(self, theta: Tensor, X: Tensor) -> Tensor: ...


def _weighted_mean(values: Tensor, w: Tensor | None) -> Tensor:
    return values.mean() if w is None else (values * w).sum()


class LogisticRegression:
    """Binary logistic regression with labels y ∈ {−1, +1}, no separate bias (append a constant
    feature for one):  ℓ(θ; a, y) = log(1 + exp(−y⟨a, θ⟩)),
    ∇ = −y·σ(−y⟨a, θ⟩)·a (closed form, no autograd). Initialised at 0."""

    convex = True

    def __init__(self, n_features: int) -> None:
        self.dim = n_features

    def init(self, gen: torch.Generator) -> Tensor:
        return torch.zeros(self.dim)

    def loss(self, theta: Tensor, X: Tensor, y: Tensor, w: Tensor | None = None) -> Tensor:
        return _weighted_mean(F.softplus(-y * (X @ theta)), w)

    def loss_grad(self, theta: Tensor, X: Tensor, y: Tensor, w: Tensor | None = None) -> tuple[Tensor, Tensor]:
        margin = -y * (X @ theta)
        coef = -y * torch.sigmoid(margin)
        coef = coef / X.shape[0] if w is None else coef * w
        return _weighted_mean(F.softplus(margin), w), X.T @ coef

    def predict(self, theta: Tensor, X: Tensor) -> Tensor:
        return torch.where(X @ theta >= 0, 1.0, -1.0).to(X.dtype)


class SoftmaxRegression:
    """Multinomial logistic regression: θ = (W ∈ R^{C×p}, b ∈ R^C), ℓ = cross-entropy of
    softmax(W a + b); gradient in closed form (softmax − onehot)·[a, 1]ᵀ. Initialised at 0."""

    convex = True

    def __init__(self, n_features: int, n_classes: int) -> None:
        self.p, self.c = n_features, n_classes
        self.dim = n_classes * (n_features + 1)

    def _split(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        W = theta[: self.c * self.p].view(self.c, self.p)
        return W, theta[self.c * self.p :]

    def init(self, gen: torch.Generator) -> Tensor:
        return torch.zeros(self.dim)

    def loss(self, theta: Tensor, X: Tensor, y: Tensor, w: Tensor | None = None) -> Tensor:
        W, b = self._split(theta)
        return _weighted_mean(F.cross_entropy(X @ W.T + b, y, reduction="none"), w)

    def loss_grad(self, theta: Tensor, X: Tensor, y: Tensor, w: Tensor | None = None) -> tuple[Tensor, Tensor]:
        W, b = self._split(theta)
        logits = X @ W.T + b
        losses = F.cross_entropy(logits, y, reduction="none")
        coef = torch.softmax(logits, dim=1)
        coef[torch.arange(y.shape[0]), y] -= 1.0
        coef = coef / X.shape[0] if w is None else coef * w[:, None]
        return _weighted_mean(losses, w), torch.cat([(coef.T @ X).reshape(-1), coef.sum(0)])

    def predict(self, theta: Tensor, X: Tensor) -> Tensor:
        W, b = self._split(theta)
        return (X @ W.T + b).argmax(1)


class MLP:
    """One-hidden-layer perceptron p → h → C with tanh: logits = W₂ tanh(W₁a + b₁) + b₂,
    cross-entropy loss, gradient by autograd. θ = (W₁, b₁, W₂, b₂) flattened in that order.
    Initialised with PyTorch's default uniform(−1/√fan_in, 1/√fan_in) from the seeded generator."""

    convex = False

    def __init__(self, n_features: int, n_classes: int, hidden: int) -> None:
        self.p, self.h, self.c = n_features, hidden, n_classes
        self.shapes = [(hidden, n_features), (hidden,), (n_classes, hidden), (n_classes,)]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.dim = sum(self.sizes)

    def init(self, gen: torch.Generator) -> Tensor:
        parts = []
        for shape, fan_in in zip(self.shapes, (self.p, self.p, self.h, self.h)):
            bound = 1.0 / math.sqrt(fan_in)
            parts.append((torch.rand(shape, generator=gen) * 2 - 1).mul_(bound).reshape(-1))
        return torch.cat(parts)

    def _logits(self, theta: Tensor, X: Tensor) -> Tensor:
        W1, b1, W2, b2 = (t.view(s) for t, s in zip(torch.split(theta, self.sizes), self.shapes))
        out: Tensor = torch.tanh(X @ W1.T + b1) @ W2.T + b2
        return out

    def loss(self, theta: Tensor, X: Tensor, y: Tensor, w: Tensor | None = None) -> Tensor:
        return _weighted_mean(F.cross_entropy(self._logits(theta, X), y, reduction="none"), w)

    def loss_grad(self, theta: Tensor, X: Tensor, y: Tensor, w: Tensor | None = None) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            value = self.loss(th, X, y, w)
            (grad,) = torch.autograd.grad(value, th)
        return value.detach(), grad

    def predict(self, theta: Tensor, X: Tensor) -> Tensor:
        return self._logits(theta, X).argmax(1)
