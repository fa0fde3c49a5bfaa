"""A training task: data, its partition over clients, a model and a regulariser.

Client i minimises f_i(θ) = (1/|D_i|) Σ_{j∈D_i} ℓ(θ; a_j, y_j) + r(θ). The objective byzmpi reports
is the honest average f(θ) = (1/G) Σ_{i honest} f_i(θ), evaluated in float64 on rank 0 as one
weighted sum over the distinct samples the honest clients hold.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .. import rng
from ..errors import SetupError
from .datasets import Dataset
from .models import Model
from .regularizers import Regularizer


def flip_labels(y: Tensor, n_classes: int) -> Tensor:
    """Label flipping: y → −y for ±1 labels, y → C − 1 − y for class ids."""
    return -y if n_classes == 2 and y.is_floating_point() else (n_classes - 1) - y


@dataclass(frozen=True)
class Evaluation:
    loss: float  # f(θ), honest objective including the regulariser
    accuracy: float  # on the test split when there is one, else on the honest training data
    gap: float  # f(θ) − f*, NaN when f* is not defined (non-convex tasks)
    grad_norm_sq: float  # ‖∇f(θ)‖²


class Task:
    def __init__(
        self,
        *,
        dataset: Dataset,
        shards: list[np.ndarray],
        model: Model,
        regularizer: Regularizer,
        batch_size: int,
        seed: int,
        honest_ids: np.ndarray,
    ) -> None:
        for i, shard in enumerate(shards):
            if shard.size == 0:
                raise SetupError(f"task.partition: client {i} received no samples; use fewer clients or more data")
        self.dataset, self.model, self.regularizer = dataset, model, regularizer
        self.batch_size, self.seed = batch_size, seed
        self.shards = [torch.from_numpy(np.ascontiguousarray(s, dtype=np.int64)) for s in shards]
        self.honest_ids = np.asarray(honest_ids, dtype=np.int64)
        self._eval: tuple[Tensor, Tensor, Tensor] | None = None
        self._test: tuple[Tensor, Tensor] | None = None
        self.f_star: float | None = None

    # ---- what clients compute -------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.model.dim

    @property
    def n_classes(self) -> int:
        return self.dataset.n_classes

    @property
    def has_optimum(self) -> bool:
        """f* is attained and found by a local solver: convex model, strongly convex regulariser."""
        return self.model.convex and self.regularizer.strongly_convex

    def init_params(self) -> Tensor:
        return self.model.init(rng.torch_generator(self.seed, rng.SETUP_ROUND, "init"))

    def batch(self, client: int, round_: int, purpose: str = "batch") -> Tensor:
        """Global sample indices of client ``client``'s minibatch in round ``round_`` (without
        replacement, stream (seed, round, purpose, client)); the whole shard when batch_size is 0
        or at least the shard size."""
        shard = self.shards[client]
        if self.batch_size <= 0 or self.batch_size >= shard.numel():
            return shard
        pos = rng.generator(self.seed, round_, purpose, client).choice(shard.numel(), self.batch_size, replace=False)
        return shard[torch.from_numpy(pos)]

    def gradient(self, theta: Tensor, idx: Tensor, *, flip: bool = False) -> Tensor:
        """∇ of (mean loss over samples ``idx``) + r at θ; ``flip`` uses flipped labels."""
        y = self.dataset.y[idx]
        if flip:
            y = flip_labels(y, self.n_classes)
        _, grad = self.model.loss_grad(theta, self.dataset.X[idx], y)
        return grad.add_(self.regularizer.grad(theta))

    def local_gradient(self, theta: Tensor, client: int, *, flip: bool = False) -> Tensor:
        """The full local gradient ∇f_i(θ)."""
        return self.gradient(theta, self.shards[client], flip=flip)

    # ---- what the server evaluates ------------------------------------------------------------
    def _eval_set(self) -> tuple[Tensor, Tensor, Tensor]:
        """Distinct honest samples (float64) and weights w_j = Σ_{i honest ∋ j} 1/(G|D_i|)."""
        if self._eval is None:
            n = self.dataset.n_samples
            w = np.zeros(n)
            for i in self.honest_ids:
                s = self.shards[i].numpy()
                np.add.at(w, s, 1.0 / (len(self.honest_ids) * s.size))
            idx = np.flatnonzero(w)
            X = self.dataset.X[torch.from_numpy(idx)].double()
            self._eval = (X, self.dataset.y[torch.from_numpy(idx)], torch.from_numpy(w[idx]))
        return self._eval

    def objective(self, theta: Tensor) -> tuple[float, Tensor]:
        """f(θ) and ∇f(θ) in float64."""
        X, y, w = self._eval_set()
        th = theta.double()
        y = y.double() if y.is_floating_point() else y
        value, grad = self.model.loss_grad(th, X, y, w)
        return float(value + self.regularizer.value(th)), grad + self.regularizer.grad(th)

    def accuracy(self, theta: Tensor) -> float:
        if self.dataset.X_test is not None:
            X, y = self.dataset.X_test, self.dataset.y_test
        else:
            X, y, _ = self._eval_set()
            X = X.float()
        pred = self.model.predict(theta.float(), X.float())
        return float((pred == y.to(pred.dtype)).double().mean())

    def evaluate(self, theta: Tensor) -> Evaluation:
        loss, grad = self.objective(theta)
        gap = loss - self.f_star if self.f_star is not None else float("nan")
        return Evaluation(loss, self.accuracy(theta), gap, float(grad.dot(grad)))

    def fingerprint(self) -> str:
        """A hash of everything f depends on (honest samples, weights, model, regulariser)."""
        X, y, w = self._eval_set()
        h = hashlib.sha256()
        for t in (X, y, w):
            h.update(t.contiguous().numpy().tobytes())
        h.update(f"{type(self.model).__name__}|{self.model.dim}|{self.regularizer}".encode())
        return h.hexdigest()[:32]
