"""A training task: data, its partition over clients, a model and a regulariser.

Client i minimises f_i(θ) = (1/|D_i|) Σ_{j∈D_i} ℓ(θ; a_j, y_j) + r(θ). The objective byzmpi reports
is the honest average f(θ) = (1/G) Σ_{i honest} f_i(θ), evaluated in float64 on rank 0 as one
weighted sum over the distinct samples the honest clients hold.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

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


class Batch(NamedTuple):
    """A client's minibatch: the global sample indices and the client whose view of the data they
    are read through (a label-flipping Byzantine client sees flipped labels)."""

    client: int
    samples: Tensor


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
        self.flipped: frozenset[int] = frozenset()  # clients that see flipped labels (set by the run)
        self.eval_samples: int | None = None  # evaluate f on a fixed subset of this many samples (deep models)
        self.eval_dtype = torch.float64

    def to(self, device: torch.device) -> Task:
        """This task with its data on ``device`` (in place; a no-op on the CPU)."""
        if device.type == "cpu":
            return self
        ds = self.dataset
        self.dataset = dataclasses.replace(
            ds,
            X=ds.X.to(device),
            y=ds.y.to(device),
            X_test=None if ds.X_test is None else ds.X_test.to(device),
            y_test=None if ds.y_test is None else ds.y_test.to(device),
        )
        self.shards = [s.to(device) for s in self.shards]
        self._eval = None
        return self

    def flip_labels_of(self, clients: Iterable[int]) -> None:
        """Give ``clients`` a label-flipped view of their data (the LF attack: the client runs the
        honest protocol, on y → C − 1 − y, or y → −y for ±1 labels)."""
        self.flipped = frozenset(int(c) for c in clients)

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

    def init_params(self, kind: str = "model", scale: float = 1.0) -> Tensor:
        """x^0 (``task.init``): the model's seeded init, zeros, N(0, scale²) seeded, or x* + scale·𝟙
        with x* the full-batch L-BFGS point of the honest objective (as the Byz-DASHA-PAGE code)."""
        gen = rng.torch_generator(self.seed, rng.SETUP_ROUND, "init")
        if kind == "zeros":
            return torch.zeros(self.dim)
        if kind == "normal":
            return torch.randn(self.dim, generator=gen) * scale
        if kind == "optimum":
            from .optimum import minimizer

            return (minimizer(self) + scale).to(torch.float32)
        return self.model.init(gen)

    def batch(self, client: int, round_: int, purpose: str = "batch") -> Batch:
        """Global sample indices of client ``client``'s minibatch in round ``round_`` (without
        replacement, stream (seed, round, purpose, client)); the whole shard when batch_size is 0
        or at least the shard size."""
        shard = self.shards[client]
        if self.batch_size <= 0 or self.batch_size >= shard.numel():
            return Batch(client, shard)
        pos = rng.generator(self.seed, round_, purpose, client).choice(shard.numel(), self.batch_size, replace=False)
        return Batch(client, shard[torch.from_numpy(pos)])

    def gradient(self, theta: Tensor, batch: Batch | Tensor) -> Tensor:
        """∇ of (mean loss over the batch's samples) + r at θ, through the batch's client's view of
        the data (flipped labels for a label-flipping client); plain indices read the true labels."""
        idx = batch.samples if isinstance(batch, Batch) else batch
        y = self.dataset.y[idx]
        if isinstance(batch, Batch) and batch.client in self.flipped:
            y = flip_labels(y, self.n_classes)
        _, grad = self.model.loss_grad(theta, self.dataset.X[idx], y)
        if self.regularizer.kind == "none":  # no zero vector of d floats to allocate and add
            return grad
        return grad.add_(self.regularizer.grad(theta))

    def local_gradient(self, theta: Tensor, client: int) -> Tensor:
        """The full local gradient ∇f_i(θ) (through client i's view of its data)."""
        return self.gradient(theta, Batch(client, self.shards[client]))

    # ---- what the server evaluates ------------------------------------------------------------
    def _eval_set(self) -> tuple[Tensor, Tensor, Tensor]:
        """Distinct honest samples (in the evaluation dtype) and weights w_j = Σ_{i honest ∋ j}
        1/(G|D_i|). With ``eval_samples`` set (deep models), a fixed subset of that many of them,
        drawn with probability ∝ w_j from the (seed, setup, "eval") stream, with uniform weights: an
        unbiased estimate of f and ∇f, the same on every rank and at every evaluation."""
        if self._eval is None:
            n = self.dataset.n_samples
            w = np.zeros(n)
            for i in self.honest_ids:
                s = self.shards[i].cpu().numpy()
                np.add.at(w, s, 1.0 / (len(self.honest_ids) * s.size))
            idx = np.flatnonzero(w)
            weights = w[idx]
            if self.eval_samples is not None and idx.size > self.eval_samples:
                gen = rng.generator(self.seed, rng.SETUP_ROUND, "eval")
                pick = np.sort(gen.choice(idx.size, self.eval_samples, replace=False, p=weights / weights.sum()))
                idx, weights = idx[pick], np.full(pick.size, 1.0 / pick.size)
            X = self.dataset.X[torch.from_numpy(idx)].to(self.eval_dtype)
            self._eval = (X, self.dataset.y[torch.from_numpy(idx)], torch.from_numpy(weights).to(self.eval_dtype))
        return self._eval

    def objective(self, theta: Tensor) -> tuple[float, Tensor]:
        """f(θ) and ∇f(θ) in the evaluation dtype (float64, float32 for deep models)."""
        X, y, w = self._eval_set()
        th = theta.to(self.eval_dtype)
        y = y.to(self.eval_dtype) if y.is_floating_point() else y
        value, grad = self.model.loss_grad(th, X, y, w)
        return float(value + self.regularizer.value(th)), grad + self.regularizer.grad(th)

    def accuracy(self, theta: Tensor) -> float:
        if self.dataset.X_test is not None and self.dataset.y_test is not None:
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
            h.update(t.contiguous().cpu().numpy().tobytes())
        name = getattr(self.model, "name", type(self.model).__name__)
        h.update(f"{type(self.model).__name__}|{name}|{self.model.dim}|{self.regularizer}|{self.eval_samples}".encode())
        return h.hexdigest()[:32]
