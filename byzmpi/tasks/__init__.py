"""Tasks: datasets, partitions over clients, models and regularisers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .. import rng
from ..errors import ConfigError
from ..schema import Config
from . import files
from .datasets import Dataset, digits, held_out, load_libsvm, synthetic
from .deep_models import MODELS, model_factory
from .models import MLP, LogisticRegression, Model, SoftmaxRegression
from .partition import partition
from .regularizers import Regularizer
from .task import Evaluation, Task, flip_labels
from .torch_model import TorchModel

#: honest samples a deep model is evaluated on (loss, ‖∇f‖², BatchNorm statistics)
DEEP_EVAL_SAMPLES = 2048

__all__ = ["Dataset", "Evaluation", "Task", "build_task", "flip_labels"]


def load_dataset(cfg: Config) -> Dataset:
    """The configured data set (every loader refuses a missing or malformed file with one line
    naming task.path and the file)."""
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
    if t.name == "digits":
        return digits(seed=t.seed, test_fraction=t.test_fraction)
    if t.name in ("mnist", "fashion_mnist"):
        ds = files.load_mnist(t.path, name=t.name)
    elif t.name == "cifar10":
        ds = files.load_cifar10(t.path)
    elif t.name == "npz":
        ds = files.load_npz(t.path)
    elif t.name == "csv":
        ds = files.load_csv(t.path, label_column=t.label_column)
    else:
        ds = user_dataset(t.data)
    return held_out(ds, t.test_fraction, t.seed)  # a file's own test split wins


def user_dataset(spec: str) -> Dataset:
    """``task.data = "module:function"``: the function's result as a Dataset (a Dataset as is; a
    torch ``Dataset``; (X, y) or (X, y, X_test, y_test) tensors or arrays)."""
    from .torch_model import import_object

    source = import_object(spec, field="task.data")
    try:
        made = source() if callable(source) else source
    except Exception as exc:  # the user's loader: one line naming the field
        raise ConfigError(
            "task.data", f"{spec} raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        ) from None
    if isinstance(made, Dataset):
        return made
    if isinstance(made, tuple) and len(made) in (2, 4):
        extra = {} if len(made) == 2 else {"X_test": made[2], "y_test": made[3]}
        return files.from_tensors(made[0], made[1], name=spec, **extra)
    if hasattr(made, "__getitem__") and hasattr(made, "__len__"):
        return files.from_torch_dataset(made, name=spec)
    raise ConfigError(
        "task.data", f"{spec} returned {type(made).__name__}: expected a Dataset, (X, y) or a torch Dataset"
    )


def is_torch_model(name: str) -> bool:
    return name in MODELS or ":" in name


def build_model(name: str | None, dataset: Dataset, hidden: int, norm: str = "group") -> Model:
    """The configured model for this data (``None``: logreg for binary labels, softmax otherwise)."""
    if name is None:
        name = "logreg" if dataset.n_classes == 2 else "softmax"
    if is_torch_model(name):
        return torch_model(name, dataset, norm)
    if name == "logreg":
        if dataset.n_classes != 2:
            raise ConfigError(
                "task.model",
                f"logreg needs binary labels; {dataset.name} has {dataset.n_classes} classes (use softmax or mlp)",
            )
        return LogisticRegression(dataset.n_features)
    if name == "softmax":
        return SoftmaxRegression(dataset.n_features, max(dataset.n_classes, 2))
    return MLP(dataset.n_features, max(dataset.n_classes, 2), hidden)


def torch_model(name: str, dataset: Dataset, norm: str) -> TorchModel:
    """A built-in CNN / ResNet-18 or a user's nn.Module factory over the flat parameter vector."""
    from .torch_model import import_object

    n_classes = max(dataset.n_classes, 2)
    if name in MODELS:
        factory = model_factory(name, n_classes=n_classes, norm=norm)
        shape: tuple[int, ...] = MODELS[name][1]
    else:
        obj = import_object(name, field="task.model")
        if not callable(obj):
            raise ConfigError("task.model", f"{name} is not callable (a class or a function returning an nn.Module)")
        factory = obj
        shape = tuple(dataset.input_shape or (dataset.n_features,))
    have = dataset.input_shape or (dataset.n_features,)
    if math.prod(have) != math.prod(shape):
        raise ConfigError(
            "task.model",
            f"{name} takes inputs of shape {tuple(shape)}, but {dataset.name} has samples of shape {tuple(have)}",
        )
    try:
        return TorchModel(factory, input_shape=shape, input_norm=dataset.input_norm, name=name)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError("task.model", f"{name}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None


def build_task(cfg: Config) -> Task:
    """The configured task, identical on every rank (data, shards and init are seeded)."""
    t = cfg.task
    dataset = load_dataset(cfg)
    torch_based = t.model is not None and is_torch_model(t.model)
    if not torch_based and dataset.X.dtype != torch.float32:  # uint8 images for the flat-vector models
        dataset = files.to_float32(dataset)
    if dataset.n_classes == 2 and (t.model in ("softmax", "mlp") or torch_based) and dataset.y.is_floating_point():
        # class ids for the multi-class models
        y = ((dataset.y > 0).long(), None if dataset.y_test is None else (dataset.y_test > 0).long())
        dataset = dataclasses.replace(dataset, y=y[0], y_test=y[1])
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
    task = Task(
        dataset=dataset,
        shards=shards,
        model=build_model(t.model, dataset, t.hidden, t.norm),
        regularizer=Regularizer(t.regularizer, t.lam),
        batch_size=t.batch_size,
        seed=cfg.run.seed,
        honest_ids=honest,
    )
    if isinstance(task.model, TorchModel):
        # a deep model's f and ∇f on the server: a fixed seeded subset of honest samples, in float32
        # (float64 over all of CIFAR-10 with ResNet-18 would take hours per evaluation on a CPU)
        task.eval_samples, task.eval_dtype = DEEP_EVAL_SAMPLES, torch.float32
        if task.model.has_batchnorm:  # BatchNorm statistics for evaluation: from that honest subset
            task.model.set_reference(task._eval_set()[0])
    return task
