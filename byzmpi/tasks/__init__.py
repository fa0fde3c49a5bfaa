"""Tasks: datasets, partitions over clients, models and regularisers."""

from __future__ import annotations

import numpy as np

from .. import rng
from ..schema import Config
from .datasets import Dataset, digits, load_libsvm, synthetic
from .models import MLP, LogisticRegression, SoftmaxRegression
from .partition import partition
from .regularizers import Regularizer
from .task import Evaluation, Task, flip_labels


__all__ = ["Dataset", "Evaluation", "Task", "build_task", "flip_labels"]


def load_dataset(cfg: Config) -> Dataset:
    t = cfg.task
    if t.name == "synthetic":
        return synthetic(
            seed=t.seed,
            n_clients=cfg.clients.n,
            samples=t.samples,
            features=t.features or 20,
            heterogeneity=t.heterogeneity,
            label_noise=t.label_noise,
            test_fraction=t.test_fraction,
        )
    if t.name == "libsvm":
        return load_libsvm(t.path, t.features, t.test_fraction, t.seed)
    return digits(seed=t.seed, test_fraction=t.test_fraction)


def build_model(name: str, dataset: Dataset, hidden: int):
    if name == "logreg":
        if dataset.n_classes != 2:
            from ..errors import ConfigError

            raise ConfigError(
                "task.model",
                f"logreg needs binary labels; {dataset.name} has {dataset.n_classes} classes (use softmax or mlp)",
            )
        return LogisticRegression(dataset.n_features)
    if name == "softmax":
        return SoftmaxRegression(dataset.n_features, max(dataset.n_classes, 2))
    return MLP(dataset.n_features, max(dataset.n_classes, 2), hidden)


def build_task(cfg: Config) -> Task:
    """The configured task, identical on every rank (data, shards and init are seeded)."""
    t = cfg.task
    dataset = load_dataset(cfg)
    if dataset.n_classes == 2 and t.model in ("softmax", "mlp"):
        # class ids for the multi-class models
        y = ((dataset.y > 0).long(), None if dataset.y_test is None else (dataset.y_test > 0).long())
        dataset = Dataset(dataset.name, dataset.X, y[0], 2, dataset.X_test, y[1], dataset.groups)
    labels = dataset.y.numpy()
    shards = partition(
        t.partition,
        n_samples=dataset.n_samples,
        n_clients=cfg.clients.n,
        labels=labels,
        groups=dataset.groups,
        alpha=t.alpha,
        gen=rng.generator(t.seed, rng.SETUP_ROUND, "partition"),
    )
    honest = np.setdiff1d(np.arange(cfg.clients.n), np.asarray(cfg.byzantine_ids, dtype=np.int64))
    return Task(
        dataset=dataset,
        shards=shards,
        model=build_model(t.model, dataset, t.hidden),
        regularizer=Regularizer(t.regularizer, t.lam),
        batch_size=t.batch_size,
        seed=cfg.run.seed,
        honest_ids=honest,
    )
