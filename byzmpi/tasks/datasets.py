"""Datasets: a synthetic heterogeneous generator (no files), LIBSVM files, scikit-learn's digits.

Every loader returns a :class:`Dataset` of float32 features. Binary labels are ±1 (for logistic
regression); multi-class labels are int64 class ids 0..C−1.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .. import rng
from ..errors import SetupError


@dataclass(frozen=True)
class Dataset:
    name: str
    X: Tensor  # (N, d) float32
    y: Tensor  # (N,) float32 ±1 (binary) or int64 class ids
    n_classes: int
    X_test: Tensor | None = None
    y_test: Tensor | None = None
    groups: np.ndarray | None = None  # natural client of each training sample (synthetic data)
    # images (byzmpi.tasks.files): each row of X is one sample of this shape, flattened (C, H, W order),
    # possibly kept as uint8; a model maps it to its input as (x - mean) / std per channel
    input_shape: tuple[int, ...] | None = None
    input_norm: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (mean, std) in X's units

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])


def cache_dir() -> Path:
    """Where byzmpi caches parsed data and optima: $BYZMPI_CACHE, else $XDG_CACHE_HOME/byzmpi."""
    base = os.environ.get("BYZMPI_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "byzmpi"
    )
    return Path(base)


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz atomically (temp file in the same folder + os.replace), so concurrent ranks
    either see the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def _binary_or_classes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    values = np.unique(labels)
    if values.size == 1:
        # one class present: keep its sign (-1 and 0 are the negative class, anything else +1)
        return np.full(labels.shape, -1.0 if values[0] <= 0 else 1.0, dtype=np.float32), 2
    if values.size == 2:
        # two classes: the larger value is +1 (covers {-1, 1}, {0, 1}, {1, 2})
        return np.where(labels == values.max(), 1.0, -1.0).astype(np.float32), 2
    return np.searchsorted(values, labels).astype(np.int64), int(values.size)


def parse_libsvm(path: str | Path, n_features: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Parse a LIBSVM text file (``label idx:val ...``, 1-based indices) into dense float32 X and
    the raw float64 labels. Raises SetupError naming the file and line on malformed input."""
    rows, cols, vals, labels = [], [], [], []
    try:
        with open(path, encoding="ascii", errors="strict") as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    labels.append(float(parts[0]))
                    for tok in parts[1:]:
                        idx, _, val = tok.partition(":")
                        if int(idx) < 1:
                            raise ValueError(f"feature index {idx} (indices must be >= 1)")
                        cols.append(int(idx) - 1)
                        vals.append(float(val))
                        rows.append(len(labels) - 1)
                except ValueError as exc:
                    raise SetupError(f"task.path: {path}:{lineno}: not LIBSVM format ({exc})") from None
    except OSError as exc:
        raise SetupError(f"task.path: cannot read {path}: {exc.strerror}") from None
    if not labels:
        raise SetupError(f"task.path: {path} holds no samples")
    cols_a = np.asarray(cols, dtype=np.int64)
    if cols_a.size and cols_a.min() < 0:
        raise SetupError(f"task.path: {path}: feature indices must be >= 1")
    d = int(cols_a.max()) + 1 if cols_a.size else 0
    if n_features is not None:
        if d > n_features:
            raise SetupError(f"task.features: {path} has feature index {d} > features = {n_features}")
        d = n_features
    X = np.zeros((len(labels), d), dtype=np.float32)
    X[np.asarray(rows, dtype=np.int64), cols_a] = np.asarray(vals, dtype=np.float32)
    return X, np.asarray(labels)


def load_libsvm(path: str | Path, n_features: int | None = None, test_fraction: float = 0.0, seed: int = 0) -> Dataset:
    """A LIBSVM file as a Dataset; the parse is cached (keyed by path, size and mtime)."""
    path = Path(path).expanduser()
    try:
        st = path.stat()
    except OSError as exc:
        raise SetupError(f"task.path: cannot read {path}: {exc.strerror}") from None
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{n_features}".encode()).hexdigest()[:24]
    cached = cache_dir() / "libsvm" / f"{key}.npz"
    try:
        with np.load(cached) as z:
            X, raw = z["X"], z["y"]
    except (OSError, KeyError, ValueError):
        X, raw = parse_libsvm(path, n_features)
        try:
            atomic_save_npz(cached, X=X, y=raw)
        except OSError:
            pass  # a read-only cache is not an error
    y, n_classes = _binary_or_classes(raw)
    return _split(path.name, X, y, n_classes, test_fraction, seed)


def _split(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    test_fraction: float,
    seed: int,
    groups: np.ndarray | None = None,
) -> Dataset:
    if test_fraction <= 0:
        return Dataset(name, torch.from_numpy(X), torch.from_numpy(y), n_classes, groups=groups)
    perm = rng.generator(seed, rng.SETUP_ROUND, "test-split").permutation(X.shape[0])
    n_test = int(round(test_fraction * X.shape[0]))
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    return Dataset(
        name,
        torch.from_numpy(X[train]),
        torch.from_numpy(y[train]),
        n_classes,
        torch.from_numpy(X[test]),
        torch.from_numpy(y[test]),
        groups=None if groups is None else groups[train],
    )


def synthetic(
    *,
    seed: int,
    n_clients: int,
    samples: int,
    features: int,
    heterogeneity: float,
    label_noise: float,
    test_fraction: float,
) -> Dataset:
    """Heterogeneous synthetic binary classification (needs no files).

    Client i draws features a ~ N(μ_i, I) with μ_i ~ N(0, h²I) (covariate shift) and labels
    y = sign(⟨w_i, a⟩ + ε), w_i = w* + h·u_i/√d, u_i ~ N(0, I), ε ~ N(0, noise²) (concept shift),
    w* ~ N(0, I)·(2/√d). A constant 1 is appended to every sample (bias). ``groups`` records the
    generating client of each sample, which the ``natural`` partition uses. h = 0 gives
    homogeneous (iid) clients.
    """
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
    return _split("synthetic", X, y, 2, test_fraction, seed, groups)


def digits(*, seed: int, test_fraction: float) -> Dataset:
    """scikit-learn's bundled 8×8 digits (1797 × 64, 10 classes), pixels scaled to [0, 1].

    The arrays are cached as .npz so that ranks do not each import scikit-learn.
    """
    cached = cache_dir() / "digits.npz"
    try:
        with np.load(cached) as z:
            X, y = z["X"], z["y"]
    except (OSError, KeyError, ValueError):
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise SetupError("task.name: 'digits' needs scikit-learn (pip install scikit-learn)") from None
        bunch = load_digits()
        X, y = (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)
        try:
            atomic_save_npz(cached, X=X, y=y)
        except OSError:
            pass
    return _split("digits", X, y, 10, test_fraction, seed)
