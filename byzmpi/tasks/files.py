"""Loaders for the data files users already have, read from a local folder (nothing is downloaded).

* :func:`load_mnist`: MNIST / Fashion-MNIST IDX files, plain or gzip-compressed
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each optionally ``.gz``; the ``train-images.idx3-ubyte`` spelling too).
  The IDX format (LeCun et al.): magic ``00 00 <type> <ndim>``, ndim big-endian uint32 sizes, the data.
* :func:`load_cifar10`: CIFAR-10 "python version" batches as distributed (``cifar-10-batches-py/``
  with ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``). These are pickles; byzmpi never
  unpickles untrusted data, so they are read by :class:`SafeUnpickler`, which resolves no global but
  the four names a numpy uint8 array and a byte string need, to inert stand-ins of its own: no code
  from the file runs, and anything else in the stream is refused.
* :func:`load_npz`: NumPy ``.npz`` with arrays ``X`` (N, ...) and ``y`` (N,) (and optionally
  ``X_test``, ``y_test``), read with ``allow_pickle=False``.
* :func:`load_csv`: CSV, one sample a row, the label in a configurable column (default the last),
  an optional header line (detected: a first row that is not all numbers), numeric or string labels.

Every loader returns a :class:`~byzmpi.tasks.datasets.Dataset`. Images are kept as **uint8** rows of
C·H·W values (channel-major, the files' own order) with ``input_shape = (C, H, W)`` and the training
set's per-channel ``input_norm = (mean, std)`` in pixel units; :class:`TorchModel` converts and
normalises each batch, so memory is one byte per pixel (MNIST 47 MB, CIFAR-10 153 MB per rank,
against 188 MB and 614 MB as float32). :func:`to_float32` gives normalised float32 features for the
flat models (softmax, mlp). Labels: MNIST and CIFAR-10 are class ids 0..9; npz and CSV labels are
mapped like LIBSVM's (two distinct values: ±1, the larger +1; more: class ids in sorted order).

Every missing or malformed file is a one-line :class:`~byzmpi.errors.SetupError` naming the config
field (``task.path``) and the file; non-finite feature values are refused.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import pickle
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ..errors import SetupError
from .datasets import Dataset, _binary_or_classes

FIELD = "task.path"

# ---- IDX (MNIST, Fashion-MNIST) ---------------------------------------------------------------

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _fail(path: Path | str, message: str, field: str = FIELD) -> SetupError:
    return SetupError(f"{field}: {path}: {message}")


def _read_bytes(path: Path, field: str = FIELD) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SetupError(f"{field}: cannot read {path}: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise _fail(path, f"corrupt gzip data ({exc})", field) from None
    return raw


def read_idx(path: str | Path, field: str = FIELD) -> np.ndarray:
    """The array stored in an IDX file (plain or .gz), in native byte order."""
    path = Path(path)
    raw = _read_bytes(path, field)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise _fail(path, "not an IDX file (bad magic number)", field)
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise _fail(path, f"truncated IDX header ({len(raw)} bytes for {ndim} dimensions)", field)
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise _fail(
            path,
            f"IDX size mismatch: header says {shape} of {dtype.name} ({expected} bytes), file has {len(raw)}",
            field,
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def _find(folder: Path, stems: Sequence[str], field: str) -> Path | None:
    for stem in stems:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


_MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _idx_pair(images: Path, labels: Path, n_classes: int, field: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = read_idx(images, field), read_idx(labels, field)
    if X.ndim not in (3, 4) or X.dtype != np.uint8:
        raise _fail(images, f"expected uint8 images of shape (N, H, W), found {X.dtype.name} {X.shape}", field)
    if y.ndim != 1 or y.dtype != np.uint8:
        raise _fail(labels, f"expected uint8 labels of shape (N,), found {y.dtype.name} {y.shape}", field)
    if y.shape[0] != X.shape[0]:
        raise _fail(labels, f"{y.shape[0]} labels for {X.shape[0]} images in {images.name}", field)
    if y.size and int(y.max()) >= n_classes:
        raise _fail(labels, f"label {int(y.max())} is not a class id 0..{n_classes - 1}", field)
    return X.reshape(X.shape[0], -1), y.astype(np.int64)


def load_mnist(path: str | Path, *, n_classes: int = 10, name: str = "mnist", field: str = FIELD) -> Dataset:
    """MNIST or Fashion-MNIST from a folder of IDX files (see the module docstring for the names).

    The training pair is required; the ``t10k`` pair, when present (both files), is the test split.
    X is uint8 (N, 784) with ``input_shape = (1, 28, 28)``; y int64 class ids < ``n_classes``."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise SetupError(f"{field}: {folder} is not a folder (expected the MNIST IDX files in it)")
    found = {key: _find(folder, stems, field) for key, stems in _MNIST_FILES.items()}
    for key in ("train_images", "train_labels"):
        if found[key] is None:
            raise SetupError(f"{field}: {folder / _MNIST_FILES[key][0]}[.gz] not found")
    X, y = _idx_pair(found["train_images"], found["train_labels"], n_classes, field)  # type: ignore[arg-type]
    side = read_idx(found["train_images"], field).shape[1:]  # type: ignore[arg-type]
    shape = (1, *side) if len(side) == 2 else tuple(side)
    Xt = yt = None
    if (found["test_images"] is None) != (found["test_labels"] is None):
        missing = "test_images" if found["test_images"] is None else "test_labels"
        raise SetupError(f"{field}: {folder / _MNIST_FILES[missing][0]}[.gz] not found (its pair is there)")
    if found["test_images"] is not None:
        Xt, yt = _idx_pair(found["test_images"], found["test_labels"], n_classes, field)  # type: ignore[arg-type]
        if Xt.shape[1] != X.shape[1]:
            raise _fail(
                found["test_images"], f"images of {Xt.shape[1]} pixels, training images have {X.shape[1]}", field
            )
    return _image_dataset(name, X, y, n_classes, shape, Xt, yt)


# ---- CIFAR-10 python batches ------------------------------------------------------------------


class _Array:
    """Inert stand-in for ``numpy.core.multiarray._reconstruct(ndarray, shape, typecode)``: records
    the state that pickle's BUILD hands to ``__setstate__``."""

    def __init__(self, cls: object, shape: object, typecode: object) -> None:
        self.state: tuple[Any, ...] | None = None

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.state = state


class _Dtype:
    """Inert stand-in for ``numpy.dtype(spec, align, copy)``."""

    def __init__(self, spec: object, align: object = False, copy: object = True) -> None:
        self.spec = spec.decode("latin1") if isinstance(spec, bytes) else spec
        self.state: tuple[Any, ...] | None = None

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.state = state


class _NDArrayType:
    """Stand-in for the class object ``numpy.ndarray`` (only passed to ``_reconstruct``)."""


def _codecs_encode(text: object, encoding: object = "latin1") -> bytes:
    """Python 3's protocol-2 spelling of bytes: ``_codecs.encode(str, 'latin1')``; nothing else."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode is only allowed as bytes(str, 'latin1')")
    return text.encode("latin1")


class SafeUnpickler(pickle.Unpickler):
    """An unpickler for data files: builds dicts, lists, tuples, str, bytes, numbers, None, and
    numpy arrays only as inert :class:`_Array` records (converted by :func:`_to_array`). Every other
    global (any class or function, hence any code execution) raises UnpicklingError."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _Array,
        ("numpy._core.multiarray", "_reconstruct"): _Array,
        ("numpy", "ndarray"): _NDArrayType,
        ("numpy", "dtype"): _Dtype,
        ("_codecs", "encode"): _codecs_encode,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file") from None

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("persistent ids are not allowed in a data file")


def safe_unpickle(raw: bytes) -> object:
    """Unpickle ``raw`` with :class:`SafeUnpickler` (Python-2 strings come back as bytes)."""
    return SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()


def _to_array(obj: object, what: str) -> np.ndarray:
    """The numpy array an :class:`_Array` record describes (plain dtypes only, no object arrays)."""
    if not isinstance(obj, _Array) or obj.state is None or len(obj.state) != 5:
        raise ValueError(f"{what} is not a numpy array")
    _version, shape, dtype, fortran, data = obj.state
    if not isinstance(dtype, _Dtype) or not isinstance(dtype.spec, str):
        raise ValueError(f"{what} has no plain dtype")
    order = "<"
    if dtype.state is not None and len(dtype.state) > 1:
        bo = dtype.state[1]
        order = bo.decode("latin1") if isinstance(bo, bytes) else bo
    if dtype.spec not in ("u1", "i1", "i2", "i4", "i8", "u2", "u4", "u8", "f4", "f8") or order not in "<>|=":
        raise ValueError(f"{what} has dtype {dtype.spec!r}, not a plain number type")
    if isinstance(data, str):
        data = data.encode("latin1")
    if (
        not isinstance(data, bytes | bytearray)
        or not isinstance(shape, tuple)
        or not all(isinstance(s, int) for s in shape)
    ):
        raise ValueError(f"{what} has a malformed array state")
    dt = np.dtype(dtype.spec).newbyteorder(cast(Any, "<" if order in "|=" else order))
    if len(data) != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
        raise ValueError(f"{what}: {len(data)} bytes for shape {shape} of {dt.name}")
    arr = np.frombuffer(bytes(data), dtype=dt).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(arr.astype(dt.newbyteorder("=")))


def _get(d: dict[Any, Any], key: str) -> object:
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise KeyError(key)


def read_cifar_batch(
    path: str | Path, *, label_key: str = "labels", field: str = FIELD
) -> tuple[np.ndarray, np.ndarray]:
    """(X uint8 (N, 3072), y int64 (N,)) of one CIFAR python batch, parsed by :class:`SafeUnpickler`."""
    path = Path(path)
    raw = _read_bytes(path, field)
    try:
        obj = safe_unpickle(raw)
    except Exception as exc:  # UnpicklingError, EOFError, ... : the file is not a CIFAR batch
        raise _fail(
            path, f"not a CIFAR python batch ({type(exc).__name__}: {' '.join(str(exc).split())})", field
        ) from None
    try:
        if not isinstance(obj, dict):
            raise ValueError(f"holds a {type(obj).__name__}, not a dict")
        X = _to_array(_get(obj, "data"), "'data'")
        labels = _get(obj, label_key)
        if isinstance(labels, _Array):
            labels = _to_array(labels, f"{label_key!r}").tolist()
        if not isinstance(labels, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
            raise ValueError(f"{label_key!r} is not a list of integers")
    except KeyError as exc:
        raise _fail(path, f"not a CIFAR python batch (no {exc.args[0]!r} entry)", field) from None
    except ValueError as exc:
        raise _fail(path, f"not a CIFAR python batch ({exc})", field) from None
    if X.dtype != np.uint8 or X.ndim != 2 or X.shape[1] != 3072:
        raise _fail(path, f"'data' is {X.dtype.name} {X.shape}, expected uint8 (N, 3072)", field)
    y = np.asarray(labels, dtype=np.int64)
    if y.shape[0] != X.shape[0]:
        raise _fail(path, f"{y.shape[0]} labels for {X.shape[0]} images", field)
    return X, y


def load_cifar10(path: str | Path, *, n_classes: int = 10, field: str = FIELD) -> Dataset:
    """CIFAR-10 from ``cifar-10-batches-py`` (``path`` is that folder or the one holding it).

    Training: every ``data_batch_<k>`` present, k = 1, 2, ... in order (the distribution has 5; at least
    ``data_batch_1`` is required); test: ``test_batch`` when present. X uint8 (N, 3072), channel-major
    (1024 red, 1024 green, 1024 blue values, each 32×32 row-major) with ``input_shape = (3, 32, 32)``."""
    folder = Path(path).expanduser()
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    if not folder.is_dir():
        raise SetupError(f"{field}: {folder} is not a folder (expected cifar-10-batches-py)")
    batches = []
    k = 1
    while (folder / f"data_batch_{k}").is_file():
        batches.append(folder / f"data_batch_{k}")
        k += 1
    if not batches:
        raise SetupError(f"{field}: {folder / 'data_batch_1'} not found")
    parts = [read_cifar_batch(b, field=field) for b in batches]
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    Xt = yt = None
    if (folder / "test_batch").is_file():
        Xt, yt = read_cifar_batch(folder / "test_batch", field=field)
    for arr, where in ((y, batches[-1]), (yt, folder / "test_batch")):
        if arr is not None and arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise _fail(
                where,
                f"label {int(arr.min() if arr.min() < 0 else arr.max())} is not a class id 0..{n_classes - 1}",
                field,
            )
    return _image_dataset("cifar10", X, y, n_classes, (3, 32, 32), Xt, yt)


# ---- npz and CSV ------------------------------------------------------------------------------


def _labels(raw_train: np.ndarray, raw_test: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, int]:
    """LIBSVM's label mapping applied jointly to the training and test labels."""
    if raw_test is None:
        y, c = _binary_or_classes(raw_train)
        return y, None, c
    y, c = _binary_or_classes(np.concatenate([raw_train, raw_test]))
    return y[: raw_train.shape[0]], y[raw_train.shape[0] :], c


def _features(X: np.ndarray, path: Path, key: str, field: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    if X.dtype.kind not in "biuf" or X.ndim < 2 or X.shape[0] == 0:
        raise _fail(
            path, f"{key!r} must be a non-empty numeric array of shape (N, ...), found {X.dtype} {X.shape}", field
        )
    shape = tuple(int(s) for s in X.shape[1:]) if X.ndim > 2 else None
    X = X.reshape(X.shape[0], -1)
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise _fail(path, f"{key!r} has a non-finite value (sample {row})", field)
    return np.ascontiguousarray(X, dtype=np.float32), shape


def load_npz(
    path: str | Path, *, x_key: str = "X", y_key: str = "y", name: str | None = None, field: str = FIELD
) -> Dataset:
    """A NumPy .npz with ``X`` (N, ...) and ``y`` (N,), optionally ``X_test``/``y_test`` (a test split).

    Read with ``allow_pickle=False`` (object arrays are refused). X becomes float32 (N, prod(...));
    when X has more than two dimensions its per-sample shape is kept as ``input_shape``."""
    path = Path(path).expanduser()
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except OSError as exc:
        raise SetupError(f"{field}: cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise _fail(path, f"not a NumPy .npz of plain arrays ({' '.join(str(exc).split())})", field) from None
    if not isinstance(arrays, dict):
        raise _fail(path, "not a NumPy .npz archive", field)
    for key in (x_key, y_key):
        if key not in arrays:
            raise _fail(path, f"no array {key!r} (has: {', '.join(sorted(arrays)) or 'none'})", field)
    X, shape = _features(arrays[x_key], path, x_key, field)
    raw_y = _raw_labels(arrays[y_key], X.shape[0], path, y_key, field)
    Xt = raw_yt = None
    tx, ty = f"{x_key}_test", f"{y_key}_test"
    if (tx in arrays) != (ty in arrays):
        raise _fail(path, f"has only one of {tx!r} and {ty!r}", field)
    if tx in arrays:
        Xt, shape_t = _features(arrays[tx], path, tx, field)
        if Xt.shape[1] != X.shape[1] or shape_t != shape:
            raise _fail(
                path,
                f"{tx!r} samples have shape {arrays[tx].shape[1:]}, {x_key!r} samples {arrays[x_key].shape[1:]}",
                field,
            )
        raw_yt = _raw_labels(arrays[ty], Xt.shape[0], path, ty, field)
    y, yt, c = _labels(raw_y, raw_yt)
    return Dataset(
        name or path.stem,
        torch.from_numpy(X),
        torch.from_numpy(y),
        c,
        None if Xt is None else torch.from_numpy(Xt),
        None if yt is None else torch.from_numpy(yt),
        input_shape=shape,
    )


def _raw_labels(y: np.ndarray, n: int, path: Path, key: str, field: str) -> np.ndarray:
    if y.dtype.kind not in "biuf" or y.shape != (n,):
        raise _fail(path, f"{key!r} must be numeric of shape ({n},), found {y.dtype} {y.shape}", field)
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise _fail(path, f"{key!r} has a non-finite label", field)
    return y.astype(np.float64)


def load_csv(
    path: str | Path,
    *,
    label_column: int | str = -1,
    header: bool | None = None,
    delimiter: str = ",",
    name: str | None = None,
    field: str = FIELD,
) -> Dataset:
    """A CSV file: one sample a row, numeric features, the label in ``label_column`` (an index, negative
    from the end, or a header name). ``header`` None detects it (a first row with a non-number in a
    feature column, or a named label column). Numeric labels are mapped like LIBSVM's; string labels
    become class ids in sorted order (±1 when there are two). Parsed by numpy's C reader; on any
    problem the file is re-read line by line to name the offending line."""
    path = Path(path).expanduser()
    first_line, first = _first_row(path, delimiter, field)
    width = len(first)
    if width < 2:
        raise _fail(path, f"line {first_line}: needs a label and at least one feature column", field)
    if header is None:
        col0 = _col_index(label_column, width, None)
        header = isinstance(label_column, str) or not all(_is_number(v) for j, v in enumerate(first) if j != col0)
    names = [v.strip() for v in first] if header else None
    col = _col_index(label_column, width, names)
    if col is None:
        listing = ", ".join(names) if names else f"{width} columns"
        raise SetupError(f"task.label_column: {path}: no column {label_column!r} ({listing})")
    try:
        with warnings.catch_warnings(), np.errstate(over="ignore"):
            warnings.simplefilter("ignore")  # "input contained no data": handled below
            data = np.loadtxt(
                path,
                delimiter=delimiter,
                skiprows=first_line if header else 0,
                dtype=np.float64,
                ndmin=2,
                comments=None,
                encoding="utf-8",
            )
    except (ValueError, UnicodeDecodeError):
        data = None
    if data is not None and data.shape[0] > 0 and data.shape[1] == width and np.isfinite(data).all():
        y, c = _binary_or_classes(data[:, col])
        with np.errstate(over="ignore"):
            X = np.ascontiguousarray(np.delete(data, col, axis=1), dtype=np.float32)
        if np.isfinite(X).all():  # a value beyond float32's range becomes inf
            return Dataset(name or path.stem, torch.from_numpy(X), torch.from_numpy(y), c)
    X, y, c = _parse_csv_slowly(path, delimiter, width, col, first_line if header else 0, field)
    return Dataset(name or path.stem, torch.from_numpy(X), torch.from_numpy(y), c)


def _first_row(path: Path, delimiter: str, field: str) -> tuple[int, list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for lineno, row in enumerate(csv.reader(fh, delimiter=delimiter), 1):
                if row and any(v.strip() for v in row):
                    return lineno, row
    except OSError as exc:
        raise SetupError(f"{field}: cannot read {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _fail(path, f"not a text CSV file ({exc})", field) from None
    raise _fail(path, "holds no rows", field)


def _parse_csv_slowly(
    path: Path, delimiter: str, width: int, col: int, skip: int, field: str
) -> tuple[np.ndarray, np.ndarray, int]:
    rows: list[np.ndarray] = []
    raw: list[str] = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for lineno, row in enumerate(csv.reader(fh, delimiter=delimiter), 1):
                if lineno <= skip or not row or not any(v.strip() for v in row):
                    continue
                if len(row) != width:
                    raise _fail(path, f"line {lineno}: {len(row)} columns, expected {width}", field)
                try:
                    with np.errstate(over="ignore"):
                        vals = np.asarray([float(v) for j, v in enumerate(row) if j != col], dtype=np.float32)
                except ValueError as exc:
                    raise _fail(path, f"line {lineno}: {exc}", field) from None
                if not np.isfinite(vals).all():
                    raise _fail(path, f"line {lineno}: non-finite feature value", field)
                label = row[col].strip()
                if _is_number(label) and not np.isfinite(float(label)):
                    raise _fail(path, f"line {lineno}: non-finite label", field)
                rows.append(vals)
                raw.append(label)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _fail(path, f"not a text CSV file ({exc})", field) from None
    if not rows:
        raise _fail(path, "holds a header but no data rows", field)
    X = np.stack(rows)
    if all(_is_number(v) for v in raw):
        y, c = _binary_or_classes(np.asarray([float(v) for v in raw]))
    else:
        classes = np.asarray(sorted(set(raw)))
        ids = np.searchsorted(classes, np.asarray(raw)).astype(np.int64)
        y, c = _binary_or_classes(ids) if classes.size <= 2 else (ids, int(classes.size))
    return X, y, c


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _col_index(label_column: int | str, width: int, names: list[str] | None) -> int | None:
    if isinstance(label_column, str):
        return names.index(label_column) if names is not None and label_column in names else None
    col = label_column + width if label_column < 0 else label_column
    return col if 0 <= col < width else None


# ---- shared -----------------------------------------------------------------------------------


def _channel_stats(X: np.ndarray, shape: tuple[int, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation (population) of uint8 images, in pixel units."""
    C = shape[0]
    per = X.reshape(X.shape[0], C, -1)
    mean, std = [], []
    for c in range(C):
        v = per[:, c, :]
        hist = np.bincount(v.reshape(-1), minlength=256).astype(np.float64)  # exact, no float32 sums
        values = np.arange(256, dtype=np.float64)
        n = hist.sum()
        m = float((hist * values).sum() / n)
        s = float(np.sqrt((hist * (values - m) ** 2).sum() / n))
        mean.append(m)
        std.append(s if s > 0 else 1.0)
    return tuple(mean), tuple(std)


def _image_dataset(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    shape: tuple[int, ...],
    Xt: np.ndarray | None,
    yt: np.ndarray | None,
) -> Dataset:
    return Dataset(
        name,
        torch.from_numpy(np.ascontiguousarray(X)),
        torch.from_numpy(y),
        n_classes,
        None if Xt is None else torch.from_numpy(np.ascontiguousarray(Xt)),
        None if yt is None else torch.from_numpy(yt),
        input_shape=tuple(int(s) for s in shape),
        input_norm=_channel_stats(X, shape),
    )


def to_float32(ds: Dataset) -> Dataset:
    """The dataset with float32 features (x − mean)/std per channel (``input_norm`` applied and
    cleared), for the flat models; a dataset without ``input_norm`` is returned as float32 as is."""

    def conv(X: torch.Tensor) -> torch.Tensor:
        out = X.to(torch.float32)
        if ds.input_norm is None:
            return out
        C = ds.input_shape[0] if ds.input_shape else 1
        mean, std = (torch.tensor(v, dtype=torch.float32) for v in ds.input_norm)
        per = out.view(out.shape[0], C, -1)
        return ((per - mean[None, :, None]) / std[None, :, None]).reshape(out.shape[0], -1)

    X_test = None if ds.X_test is None else conv(ds.X_test)
    return dataclasses.replace(ds, X=conv(ds.X), X_test=X_test, input_norm=None)


# ---- a user's tensors or torch Dataset ---------------------------------------------------------


def from_tensors(
    X: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    *,
    n_classes: int | None = None,
    X_test: torch.Tensor | np.ndarray | None = None,
    y_test: torch.Tensor | np.ndarray | None = None,
    input_norm: tuple[Sequence[float], Sequence[float]] | None = None,
    name: str = "tensors",
    field: str = "task.data",
) -> Dataset:
    """A Dataset from a user's arrays: X (N, ...) numeric (uint8 stays uint8, other types become
    float32; more than two dimensions keep their per-sample shape as ``input_shape``), y (N,) int class
    ids 0..C−1 kept as given (C = ``n_classes`` or max + 1), or float ±1 labels (binary)."""

    def feats(A: torch.Tensor | np.ndarray, what: str) -> torch.Tensor:
        t = torch.as_tensor(A)
        if t.ndim < 2 or t.shape[0] == 0 or t.dtype == torch.bool or t.is_complex():
            raise SetupError(
                f"{field}: {what} must be a non-empty numeric array of shape (N, ...), found {tuple(t.shape)}"
            )
        t = t.reshape(t.shape[0], -1)
        if t.dtype != torch.uint8:
            t = t.to(torch.float32)
            if not bool(torch.isfinite(t).all()):
                raise SetupError(f"{field}: {what} has a non-finite value")
        return t.contiguous()

    def labels(v: torch.Tensor | np.ndarray, n: int, what: str) -> torch.Tensor:
        t = torch.as_tensor(v).reshape(-1)
        if t.shape[0] != n:
            raise SetupError(f"{field}: {what} has {t.shape[0]} labels for {n} samples")
        if t.is_floating_point():
            if not bool(((t == 1) | (t == -1)).all()):
                raise SetupError(f"{field}: {what}: float labels must be ±1 (binary); use int class ids")
            return t.to(torch.float32)
        if t.dtype == torch.bool or t.is_complex() or (t.numel() and int(t.min()) < 0):
            raise SetupError(f"{field}: {what} must be class ids 0..C-1")
        return t.to(torch.int64)

    Xt_ = feats(X, "X")
    yt_ = labels(y, Xt_.shape[0], "y")
    Xs = ys = None
    if (X_test is None) != (y_test is None):
        raise SetupError(f"{field}: give both X_test and y_test, or neither")
    if X_test is not None and y_test is not None:
        Xs = feats(X_test, "X_test")
        ys = labels(y_test, Xs.shape[0], "y_test")
        if Xs.shape[1] != Xt_.shape[1] or Xs.dtype != Xt_.dtype or ys.dtype != yt_.dtype:
            raise SetupError(f"{field}: X_test/y_test do not match X/y in sample size or type")
    shape = tuple(int(s) for s in torch.as_tensor(X).shape[1:])
    if yt_.is_floating_point():
        c = 2
    else:
        top = max(int(yt_.max()), int(ys.max()) if ys is not None and ys.numel() else 0) + 1
        c = top if n_classes is None else int(n_classes)
        if top > c:
            raise SetupError(f"{field}: label {top - 1} is not a class id 0..{c - 1}")
    norm = None if input_norm is None else (tuple(map(float, input_norm[0])), tuple(map(float, input_norm[1])))
    return Dataset(name, Xt_, yt_, c, Xs, ys, input_shape=shape if len(shape) > 1 else None, input_norm=norm)


def from_torch_dataset(train: object, test: object | None = None, **kwargs: object) -> Dataset:
    """A Dataset from map-style ``torch.utils.data.Dataset`` objects yielding (x, label) pairs,
    materialised once (``len`` and ``[i]``); keyword arguments go to :func:`from_tensors`."""

    def stack(ds: object) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for i in range(len(ds)):  # type: ignore[arg-type]
            x, label = ds[i]  # type: ignore[index]
            xs.append(torch.as_tensor(x))
            ys.append(int(label))
        if not xs:
            raise SetupError(f"{kwargs.get('field', 'task.data')}: the dataset is empty")
        return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)

    X, y = stack(train)
    Xt, yt = stack(test) if test is not None else (None, None)
    return from_tensors(X, y, X_test=Xt, y_test=yt, **kwargs)  # type: ignore[arg-type]
