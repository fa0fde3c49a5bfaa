"""Datasets: a synthetic heterogeneous generator (no files), LIBSVM files, scikit-learn's digits.

Every loader returns a :class:`Dataset` of float32 features. Binary labels are ±1 (for logistic
regression); multi-class labels are int64 class ids 0..C−1.

Data files are not trusted: a feature value or label that is NaN, ±Inf or outside float32's
range is refused (naming the file and line), and so is a feature index above task.features, or
above :data:`MAX_INFERRED_FEATURES` when task.features is not given (a line ``1 3000000000:1``
would otherwise allocate a dense array of 3·10⁹ columns), and a dense matrix above
:data:`MAX_DENSE_BYTES`.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .. import rng
from ..errors import SetupError

#: the most features inferred from a LIBSVM file's largest index; task.features allows more
MAX_INFERRED_FEATURES = 1 << 20
#: the largest dense feature matrix a loader builds (bytes)
MAX_DENSE_BYTES = 32 << 30
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: rows of the synthetic generator's per-sample arithmetic done at a time (bounds its temporaries)
SYNTHETIC_BLOCK = 1 << 14


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
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs type **kwds as allow_pickle
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
    the raw float64 labels. Raises SetupError naming the file and line on malformed input, on a
    value or label that is not a finite float32, and on a feature index above ``n_features``
    (above :data:`MAX_INFERRED_FEATURES` when it is None), before allocating X."""
    rows, cols, vals, labels = [], [], [], []
    limit = n_features if n_features is not None else MAX_INFERRED_FEATURES
    try:
        with open(path, encoding="ascii", errors="strict") as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    label = float(parts[0])
                    if not _finite32(label):
                        raise SetupError(f"task.path: {path}:{lineno}: label {parts[0]} is not a finite number")
                    labels.append(label)
                    for tok in parts[1:]:
                        idx, _, val = tok.partition(":")
                        index, value = int(idx), float(val)
                        if index < 1:
                            raise ValueError(f"feature index {idx} (indices must be >= 1)")
                        if index > limit:
                            raise _too_many_features(path, lineno, index, n_features)
                        if not _finite32(value):
                            raise SetupError(
                                f"task.path: {path}:{lineno}: feature {index} has value {val}, not a finite float32 "
                                f"(|x| <= {FLOAT32_MAX:.4g}, no NaN or Inf)"
                            )
                        cols.append(index - 1)
                        vals.append(value)
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
    check_dense_size(path, len(labels), d)
    X = np.zeros((len(labels), d), dtype=np.float32)
    X[np.asarray(rows, dtype=np.int64), cols_a] = np.asarray(vals, dtype=np.float32)
    return X, np.asarray(labels)


def _finite32(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= FLOAT32_MAX


def _too_many_features(path: str | Path, lineno: int, index: int, n_features: int | None) -> SetupError:
    if n_features is not None:
        return SetupError(f"task.features: {path}:{lineno} has feature index {index} > features = {n_features}")
    return SetupError(
        f"task.path: {path}:{lineno}: feature index {index} is above {MAX_INFERRED_FEATURES}, the most byzmpi "
        "infers from a file; set task.features to the real feature count to allow more"
    )


def check_dense_size(path: str | Path, n_samples: int, n_features: int) -> None:
    """Refuse a dense float32 matrix above :data:`MAX_DENSE_BYTES` before allocating it."""
    need = 4 * n_samples * n_features
    if need > MAX_DENSE_BYTES:
        raise SetupError(
            f"task.path: {path}: a dense {n_samples} x {n_features} float32 matrix needs {need / 2**30:.1f} GiB, "
            f"more than the {MAX_DENSE_BYTES / 2**30:.0f} GiB byzmpi allocates; check task.features"
        )


def check_finite_data(where: str, X: np.ndarray, y: np.ndarray) -> None:
    """Raise ValueError unless X is a 2-d float32 matrix of finite values and y finite labels, one per row."""
    if X.ndim != 2 or X.dtype != np.float32 or y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"{where}: expected X (N, d) float32 and y (N,), got {X.dtype} {X.shape}, {y.dtype} {y.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{where}: non-finite feature values")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{where}: non-finite labels")


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
        check_finite_data(str(cached), X, raw)  # a cache written before this check, or damaged
    except (OSError, KeyError, ValueError):
        X, raw = parse_libsvm(path, n_features)
        try:
            atomic_save_npz(cached, X=X, y=raw)
        except OSError:
            pass  # a read-only cache is not an error
    y, n_classes = _binary_or_classes(raw)
    return _split(path.name, X, y, n_classes, test_fraction, seed)


def held_out(ds: Dataset, test_fraction: float, seed: int) -> Dataset:
    """``ds`` with a seeded share ``test_fraction`` of its samples moved to a test split, when it has
    none of its own; a data set that brings its own test split (MNIST's t10k files, CIFAR-10's
    test_batch, an .npz with X_test/y_test, a user loader's (X, y, X_test, y_test)) is returned as
    it is, as is any data set for ``test_fraction = 0``. The held-out samples are a permutation
    drawn from (seed, setup, "test-split"), kept in file order."""
    if ds.X_test is not None or test_fraction <= 0:
        return ds
    perm = rng.generator(seed, rng.SETUP_ROUND, "test-split").permutation(ds.n_samples)
    n_test = int(round(test_fraction * ds.n_samples))
    test, train = torch.from_numpy(np.sort(perm[:n_test])), torch.from_numpy(np.sort(perm[n_test:]))
    return replace(
        ds,
        X=ds.X[train],
        y=ds.y[train],
        X_test=ds.X[test],
        y_test=ds.y[test],
        groups=None if ds.groups is None else ds.groups[train.numpy()],
    )


def _split(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    test_fraction: float,
    seed: int,
    groups: np.ndarray | None = None,
) -> Dataset:
    return held_out(
        Dataset(name, torch.from_numpy(X), torch.from_numpy(y), n_classes, groups=groups), test_fraction, seed
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
    # a_j = z_j + μ_{g(j)}, z_j ~ N(0, I), and the margin ⟨w_{g(j)}, a_j⟩, in blocks of rows: the
    # same draws (consecutive blocks of one stream) and the same float64 values as whole-array
    # expressions, with only (block, d) float64 temporaries; X holds the float32 rounding of a_j
    X = np.empty((samples, d + 1), dtype=np.float32)
    margin = np.empty(samples)
    for lo in range(0, samples, SYNTHETIC_BLOCK):
        hi = min(lo + SYNTHETIC_BLOCK, samples)
        a = gen.normal(size=(hi - lo, d))
        a += centres[groups[lo:hi]]
        margin[lo:hi] = np.einsum("nd,nd->n", a, w_client[groups[lo:hi]])
        X[lo:hi, :d] = a
    X[:, d] = 1.0
    margin += label_noise * gen.normal(size=samples)
    y = np.where(margin > 0, 1.0, -1.0).astype(np.float32)
    return _split("synthetic", X, y, 2, test_fraction, seed, groups)


def digits(*, seed: int, test_fraction: float) -> Dataset:
    """scikit-learn's bundled 8×8 digits (1797 × 64, 10 classes), pixels scaled to [0, 1].

    The arrays are cached as .npz so that ranks do not each import scikit-learn.
    """
    cached = cache_dir() / "digits.npz"
    try:
        with np.load(cached) as z:
            X, y = z["X"], z["y"]
        check_finite_data(str(cached), X, y)
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
