"""Data file loaders: tiny files written in each format, values checked exactly, malformed variants.

Also: label flipping and the partitions on the loaded datasets, and a Task gradient through
TorchModel on IDX data."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import warnings

import numpy as np
import pytest
import torch

from byzmpi import rng
from byzmpi.errors import SetupError
from byzmpi.tasks.datasets import Dataset
from byzmpi.tasks.files import load_cifar10, load_csv, load_mnist, load_npz, read_idx, safe_unpickle, to_float32
from byzmpi.tasks.partition import partition
from byzmpi.tasks.regularizers import Regularizer
from byzmpi.tasks.task import Task, flip_labels
from byzmpi.tasks.torch_model import TorchModel

# ---- IDX ---------------------------------------------------------------------------------------


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    """IDX encoding by its definition: 00 00 type ndim, big-endian uint32 sizes, big-endian data."""
    dt = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    return head + arr.astype(dt).tobytes()


IMAGES = np.arange(5 * 3 * 4, dtype=np.uint8).reshape(5, 3, 4) * 4
LABELS = np.array([3, 0, 9, 3, 1], dtype=np.uint8)


def write_mnist(folder, *, gz_train=True, test=True, images=IMAGES, labels=LABELS):
    folder.mkdir(exist_ok=True)

    def put(name, payload, gz):
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)

    put("train-images-idx3-ubyte", idx_bytes(images), gz_train)
    put("train-labels-idx1-ubyte", idx_bytes(labels), gz_train)
    if test:
        put("t10k-images-idx3-ubyte", idx_bytes(images[:2][:, ::-1]), False)
        put("t10k-labels-idx1-ubyte", idx_bytes(labels[:2]), False)
    return folder


def test_read_idx_types(tmp_path):
    a = np.array([[1.5, -2.0], [3.25, 0.0]], dtype=np.float32)
    (tmp_path / "f").write_bytes(idx_bytes(a, 0x0D))
    out = read_idx(tmp_path / "f")
    assert out.dtype == np.float32 and np.array_equal(out, a)
    b = np.array([-300, 7, 12000], dtype=np.int16)
    (tmp_path / "s").write_bytes(idx_bytes(b, 0x0B))
    assert np.array_equal(read_idx(tmp_path / "s"), b)


def test_mnist_folder_gz_train_plain_test(tmp_path):
    ds = load_mnist(write_mnist(tmp_path / "mnist"))
    assert ds.n_classes == 10 and ds.input_shape == (1, 3, 4)
    assert ds.X.dtype == torch.uint8 and ds.X.shape == (5, 12)
    assert np.array_equal(ds.X.numpy(), IMAGES.reshape(5, 12))
    assert ds.y.dtype == torch.int64 and ds.y.tolist() == [3, 0, 9, 3, 1]
    assert np.array_equal(ds.X_test.numpy(), IMAGES[:2][:, ::-1].reshape(2, 12))
    assert ds.y_test.tolist() == [3, 0]
    pix = IMAGES.astype(np.float64)
    assert ds.input_norm[0] == pytest.approx((pix.mean(),), abs=1e-12)
    assert ds.input_norm[1] == pytest.approx((pix.std(),), abs=1e-12)


def test_mnist_without_test_pair_and_dotted_names(tmp_path):
    folder = write_mnist(tmp_path / "m", gz_train=False, test=False)
    os.rename(folder / "train-images-idx3-ubyte", folder / "train-images.idx3-ubyte")
    ds = load_mnist(folder, name="fashion")
    assert ds.X_test is None and ds.name == "fashion" and ds.n_samples == 5


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "train-labels-idx1-ubyte.gz").unlink(), r"train-labels-idx1-ubyte\[\.gz\] not found"),
        (lambda f: (f / "t10k-labels-idx1-ubyte").unlink(), r"t10k-labels-idx1-ubyte\[\.gz\] not found \(its pair"),
        (lambda f: (f / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00"), "truncated IDX header"),
        (lambda f: (f / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(IMAGES)[:-1]), "IDX size mismatch"),
        (lambda f: (f / "t10k-images-idx3-ubyte").write_bytes(b"PK\x03\x04junk"), "not an IDX file"),
        (lambda f: (f / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bnot gzip"), "corrupt gzip data"),
        (lambda f: (f / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(LABELS[:3])), "3 labels for 2 images"),
        (
            lambda f: (f / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(LABELS + 7))),
            "label 16 is not a class id 0..9",
        ),
        (
            lambda f: (f / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 3, 5), np.uint8))),
            "images of 15 pixels, training images have 12",
        ),
        (
            lambda f: (f / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros((2, 1), np.uint8))),
            r"expected uint8 labels of shape \(N,\)",
        ),
    ],
)
def test_mnist_malformed(tmp_path, damage, message):
    folder = write_mnist(tmp_path / "mnist")
    damage(folder)
    with pytest.raises(SetupError, match=message) as err:
        load_mnist(folder)
    text = str(err.value)
    assert text.startswith("task.path: ") and "\n" not in text
    assert str(folder) in text


def test_mnist_not_a_folder(tmp_path):
    with pytest.raises(SetupError, match="is not a folder"):
        load_mnist(tmp_path / "nothing")


# ---- CIFAR-10 ----------------------------------------------------------------------------------


def py2_pickle(obj) -> bytes:
    """A protocol-2 pickle as Python 2's cPickle wrote the CIFAR-10 batches: str as (SHORT_)BINSTRING,
    the array through numpy.core.multiarray._reconstruct + BUILD, its dtype through numpy.dtype."""
    out = bytearray(b"\x80\x02")

    def emit(o):
        if isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                emit(k)
                emit(v)
            out.extend(b"u")
        elif isinstance(o, bytes):
            out.extend((b"U" + bytes([len(o)])) if len(o) < 256 else (b"T" + struct.pack("<I", len(o))))
            out.extend(o)
        elif isinstance(o, list):
            out.extend(b"](")
            for v in o:
                emit(v)
            out.extend(b"e")
        elif isinstance(o, bool):
            out.extend(b"\x88" if o else b"\x89")
        elif isinstance(o, int):
            out.extend(b"J" + struct.pack("<i", o))
        elif o is None:
            out.extend(b"N")
        elif isinstance(o, tuple):
            out.extend(b"(")
            for v in o:
                emit(v)
            out.extend(b"t")
        elif isinstance(o, np.ndarray):
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            emit((0,))
            emit(b"b")
            out.extend(b"\x87R(")  # TUPLE3 REDUCE, then the state
            emit(1)
            emit(tuple(int(s) for s in o.shape))
            out.extend(b"cnumpy\ndtype\n")
            emit(o.dtype.str[1:].encode())
            out.extend(b"\x89\x88\x87R")  # (spec, False, True) REDUCE
            emit((3, b"|" if o.dtype.itemsize == 1 else b"<", None, None, None, -1, -1, 0))
            out.extend(b"b")  # BUILD the dtype
            emit(False)
            emit(np.ascontiguousarray(o).tobytes())
            out.extend(b"tb")  # close the array's state, BUILD
        else:
            raise TypeError(type(o))

    emit(obj)
    out.extend(b".")
    return bytes(out)


def cifar_batch(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    g = np.random.default_rng(seed)
    return g.integers(0, 256, size=(n, 3072), dtype=np.uint8), [int(v) for v in g.integers(0, 10, size=n)]


def write_cifar(root, batches=((3, 1), (2, 2)), test=(2, 3), writer=py2_pickle):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    parts = []
    for k, (n, seed) in enumerate(batches, 1):
        X, y = cifar_batch(n, seed)
        parts.append((X, y))
        payload = {
            b"batch_label": b"training batch %d of 5" % k,
            b"labels": y,
            b"data": X,
            b"filenames": [b"x.png"] * n,
        }
        (folder / f"data_batch_{k}").write_bytes(writer(payload))
    if test:
        X, y = cifar_batch(*test)
        parts.append((X, y))
        (folder / "test_batch").write_bytes(writer({b"batch_label": b"testing batch 1 of 1", b"labels": y, b"data": X}))
    return folder, parts


def test_py2_fixture_is_what_pickle_itself_reads():
    X, y = cifar_batch(2, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.core is a deprecated alias in numpy 2
        ref = pickle.loads(py2_pickle({b"data": X, b"labels": y}), encoding="bytes")
    assert np.array_equal(ref[b"data"], X) and ref[b"labels"] == y


@pytest.mark.parametrize(
    "writer", [py2_pickle, lambda o: pickle.dumps(o, protocol=2), lambda o: pickle.dumps(o, protocol=4)]
)
def test_cifar10_two_batches_and_test(tmp_path, writer):
    folder, parts = write_cifar(tmp_path, writer=writer)
    for where in (tmp_path, folder):  # the parent folder or cifar-10-batches-py itself
        ds = load_cifar10(where)
        assert ds.X.dtype == torch.uint8 and ds.X.shape == (5, 3072)
        assert np.array_equal(ds.X.numpy(), np.concatenate([parts[0][0], parts[1][0]]))
        assert ds.y.tolist() == parts[0][1] + parts[1][1]
        assert np.array_equal(ds.X_test.numpy(), parts[2][0]) and ds.y_test.tolist() == parts[2][1]
        assert ds.input_shape == (3, 32, 32) and ds.n_classes == 10
        pix = ds.X.numpy().reshape(5, 3, 1024).astype(np.float64)
        assert ds.input_norm[0] == pytest.approx(tuple(pix.mean(axis=(0, 2))), abs=1e-9)
        assert ds.input_norm[1] == pytest.approx(tuple(pix.std(axis=(0, 2))), abs=1e-9)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_cifar_pickle_with_code_is_refused_without_running_it(tmp_path):
    folder, _ = write_cifar(tmp_path, batches=((2, 0),), test=None)
    target = str(tmp_path / "pwned")
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil(target), b"labels": [1]}, protocol=2))
    with pytest.raises(SetupError, match=r"global posix\.makedirs is not allowed|global os\.makedirs is not allowed"):
        load_cifar10(tmp_path)
    assert not os.path.exists(target)
    with pytest.raises(pickle.UnpicklingError):
        safe_unpickle(pickle.dumps(_Evil(target)))
    assert not os.path.exists(target)


@pytest.mark.parametrize(
    "payload, message",
    [
        (lambda X, y: py2_pickle({b"data": X, b"labels": y})[:-40], "not a CIFAR python batch"),
        (lambda X, y: py2_pickle({b"labels": y}), "no 'data' entry"),
        (lambda X, y: py2_pickle({b"data": X[:, :3071], b"labels": y}), r"expected uint8 \(N, 3072\)"),
        (lambda X, y: py2_pickle({b"data": X.astype(np.float32), b"labels": y}), r"'data' is float32"),
        (lambda X, y: py2_pickle({b"data": X, b"labels": y[:1]}), "1 labels for 2 images"),
        (lambda X, y: py2_pickle({b"data": X, b"labels": [b"a", b"b"]}), "not a list of integers"),
        (lambda X, y: py2_pickle([X, y]), "holds a list, not a dict"),
        (lambda X, y: py2_pickle({b"data": X, b"labels": [10, 0]}), "label 10 is not a class id"),
        (lambda X, y: b"", "not a CIFAR python batch"),
    ],
)
def test_cifar_malformed(tmp_path, payload, message):
    folder, _ = write_cifar(tmp_path, batches=((2, 0),), test=None)
    X, y = cifar_batch(2, 0)
    (folder / "data_batch_1").write_bytes(payload(X, y))
    with pytest.raises(SetupError, match=message) as err:
        load_cifar10(tmp_path)
    assert str(err.value).startswith(f"task.path: {folder / 'data_batch_1'}: ") and "\n" not in str(err.value)


def test_cifar_missing_batch(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(SetupError, match=r"data_batch_1 not found"):
        load_cifar10(tmp_path)


# ---- npz ---------------------------------------------------------------------------------------


def test_npz_values_shape_and_test_split(tmp_path):
    X = np.arange(6 * 2 * 3, dtype=np.float64).reshape(6, 2, 3) / 7
    y = np.array([2, 0, 1, 2, 2, 1])
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=y, X_test=X[:2] + 1, y_test=np.array([0, 1]))
    ds = load_npz(path)
    assert ds.X.dtype == torch.float32 and np.array_equal(ds.X.numpy(), X.reshape(6, 6).astype(np.float32))
    assert ds.y.tolist() == [2, 0, 1, 2, 2, 1] and ds.n_classes == 3 and ds.input_shape == (2, 3)
    assert ds.y_test.tolist() == [0, 1] and np.array_equal(
        ds.X_test.numpy(), (X[:2] + 1).reshape(2, 6).astype(np.float32)
    )
    np.savez(path, X=X[:, 0], y=np.array([0, 1, 0, 1, 1, 0]))
    ds = load_npz(path)
    assert ds.y.dtype == torch.float32 and ds.y.tolist() == [-1, 1, -1, 1, 1, -1] and ds.n_classes == 2
    assert ds.input_shape is None


def _npz_config(tmp_path, arrays: dict, extra: str = ""):
    from byzmpi.config import load_config

    np.savez(tmp_path / "d.npz", **arrays)
    (tmp_path / "run.toml").write_text(f'task = {{ name = "npz", path = "d.npz", model = "softmax" {extra}}}\n')
    return load_config(tmp_path / "run.toml")


def test_npz_without_a_test_split_holds_out_test_fraction(tmp_path):
    """task.test_fraction (default 0.2) is held out of a file without a test split of its own
    (it used to be ignored: "test" accuracy was then measured on training data)."""
    from byzmpi.tasks import load_dataset

    X = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    y = np.arange(50) % 3
    cfg = _npz_config(tmp_path, dict(X=X, y=y))
    ds = load_dataset(cfg)
    assert ds.X_test is not None and ds.n_samples == 40 and ds.X_test.shape[0] == 10
    # every sample exactly once; the held-out ones are those the seeded permutation draws first
    perm = rng.generator(cfg.task.seed, rng.SETUP_ROUND, "test-split").permutation(50)
    held = (ds.X_test[:, 0] / 3).long().tolist()  # row i of X starts with 3 i
    assert sorted(held) == sorted(perm[:10].tolist())
    assert sorted(torch.cat([ds.X, ds.X_test])[:, 0].tolist()) == X[:, 0].tolist()
    assert load_dataset(_npz_config(tmp_path, dict(X=X, y=y), ", test_fraction = 0.0")).X_test is None
    # a file's own test split wins
    own = load_dataset(_npz_config(tmp_path, dict(X=X, y=y, X_test=X[:4], y_test=y[:4])))
    assert own.n_samples == 50 and own.X_test.shape[0] == 4


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(X=np.array([[1.0, np.nan]]), y=np.array([0])), r"'X' has a non-finite value \(sample 0\)"),
        (dict(X=np.ones((2, 2)), y=np.array([0, np.inf])), "'y' has a non-finite label"),
        (dict(X=np.ones((2, 2))), r"no array 'y' \(has: X\)"),
        (dict(X=np.ones((2, 2)), y=np.array([0, 1, 1])), r"'y' must be numeric of shape \(2,\)"),
        (dict(X=np.array([["a", "b"]]), y=np.array([0])), "'X' must be a non-empty numeric array"),
        (dict(X=np.array([[object(), 1]], dtype=object), y=np.array([0])), "not a NumPy .npz of plain arrays"),
        (dict(X=np.ones((2, 2)), y=np.array([0, 1]), X_test=np.ones((1, 2))), "has only one of 'X_test' and 'y_test'"),
        (dict(X=np.ones((2, 2)), y=np.array([0, 1]), X_test=np.ones((1, 3)), y_test=np.array([0])), "'X_test' samples"),
    ],
)
def test_npz_malformed(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(SetupError, match=message) as err:
        load_npz(path)
    assert str(err.value).startswith(f"task.path: {path}")


def test_npz_not_a_file(tmp_path):
    with pytest.raises(SetupError, match="cannot read"):
        load_npz(tmp_path / "missing.npz")
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(SetupError, match="task.path: .*x.npz"):
        load_npz(tmp_path / "x.npz")


# ---- CSV ---------------------------------------------------------------------------------------


def test_csv_header_label_by_name_and_default_last(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,label,b\n0.5,2,1\n-1,0,2.25\n\n3,1,0\n")
    ds = load_csv(path, label_column="label")
    assert np.array_equal(ds.X.numpy(), np.array([[0.5, 1], [-1, 2.25], [3, 0]], dtype=np.float32))
    assert ds.y.tolist() == [2, 0, 1] and ds.n_classes == 3
    ds = load_csv(path)  # label = last column; header detected
    assert np.array_equal(ds.X.numpy(), np.array([[0.5, 2], [-1, 0], [3, 1]], dtype=np.float32))
    assert ds.y.tolist() == [1, 2, 0] and ds.n_classes == 3  # values 1, 2.25, 0 in sorted order
    path.write_text("1,2,cat\n3,4,dog\n5,6,ant\n")  # no header, string labels
    ds = load_csv(path, header=False)
    assert ds.y.tolist() == [1, 2, 0] and ds.n_classes == 3
    assert np.array_equal(ds.X.numpy(), np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32))
    path.write_text("7;1.5\n8;2.5\n")
    ds = load_csv(path, label_column=0, delimiter=";")
    assert ds.X.numpy().ravel().tolist() == [1.5, 2.5] and ds.y.tolist() == [-1.0, 1.0]


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("1,2,0\n3,4\n", {}, "line 2: 2 columns, expected 3"),
        ("a,b,y\n1,2,0\n3,x,1\n", {}, "line 3: could not convert string to float: 'x'"),
        ("1,nan,0\n3,4,1\n", {}, "line 1: non-finite feature value"),
        ("1,2,0\n3,4,inf\n", {}, "line 2: non-finite label"),
        ("1,2,0\n", {"label_column": 5}, "task.label_column: .*no column 5"),
        ("a,b\n1,2\n", {"label_column": "y"}, r"task.label_column: .*no column 'y' \(a, b\)"),
        ("\n\n", {}, "holds no rows"),
        ("a,b,y\n", {}, "holds a header but no data rows"),
        ("5\n6\n", {}, "needs a label and at least one feature column"),
        ("1,1e39,0\n", {}, "non-finite feature value"),
    ],
)
def test_csv_malformed(tmp_path, text, kwargs, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(SetupError, match=message) as err:
        load_csv(path, **kwargs)
    assert str(bad := err.value) and "\n" not in str(bad)


# ---- flipping, partitions, a Task on the loaded data ---------------------------------------------


def test_flip_and_partitions_on_loaded_datasets(tmp_path):
    mnist = load_mnist(write_mnist(tmp_path / "m"))
    assert flip_labels(mnist.y, mnist.n_classes).tolist() == [6, 9, 0, 6, 8]  # 9 - y
    path = tmp_path / "b.csv"
    path.write_text("1,0\n2,1\n3,1\n4,0\n")
    binary = load_csv(path)
    assert flip_labels(binary.y, binary.n_classes).tolist() == [1.0, -1.0, -1.0, 1.0]
    folder, _ = write_cifar(tmp_path / "c", batches=((30, 4), (30, 5)), test=None)
    cifar = load_cifar10(tmp_path / "c")
    assert torch.equal(flip_labels(cifar.y, 10), 9 - cifar.y)
    for ds in (mnist, binary, cifar):
        for kind in ("iid", "strided", "dirichlet"):
            shards = partition(
                kind,
                n_samples=ds.n_samples,
                n_clients=2,
                labels=ds.y.numpy(),
                groups=ds.groups,
                alpha=1.0,
                gen=rng.generator(0, rng.SETUP_ROUND, "partition"),
            )
            assert len(shards) == 2
            assert np.array_equal(np.sort(np.concatenate(shards)), np.arange(ds.n_samples))


def test_task_gradient_through_torch_model_on_idx_data(tmp_path):
    from byzmpi.tasks.deep_models import LightNet

    images = np.random.default_rng(0).integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    ds = load_mnist(
        write_mnist(tmp_path / "m", images=images, labels=np.array([1, 2, 3, 4, 5, 6], np.uint8), test=False)
    )
    model = TorchModel(LightNet, input_shape=ds.input_shape, input_norm=ds.input_norm)
    task = Task(
        dataset=ds,
        shards=[np.arange(0, 3), np.arange(3, 6)],
        model=model,
        regularizer=Regularizer("none", 0.0),
        batch_size=2,
        seed=0,
        honest_ids=np.array([0, 1]),
    )
    theta = task.init_params()
    batch = task.batch(1, round_=4)
    task.flip_labels_of([1])
    g = task.gradient(theta, batch)
    Xf = to_float32(ds).X[batch.samples]
    _, ref = TorchModel(LightNet, input_shape=(1, 28, 28)).loss_grad(theta, Xf, 9 - ds.y[batch.samples])
    torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-6)
    assert 0.0 <= task.accuracy(theta) <= 1.0
    assert isinstance(ds, Dataset)


# ---- a user's tensors -------------------------------------------------------------------------


def test_from_tensors_and_torch_dataset():
    from torch.utils.data import TensorDataset

    from byzmpi.tasks.files import from_tensors, from_torch_dataset

    X = torch.randint(0, 256, (4, 3, 2, 2), dtype=torch.uint8)
    y = torch.tensor([0, 4, 2, 1])
    ds = from_tensors(X, y, n_classes=5, input_norm=((1, 2, 3), (4, 5, 6)))
    assert ds.X.dtype == torch.uint8 and torch.equal(ds.X, X.reshape(4, 12)) and ds.input_shape == (3, 2, 2)
    assert ds.n_classes == 5 and ds.y.tolist() == [0, 4, 2, 1] and ds.input_norm == ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0))
    assert flip_labels(ds.y, ds.n_classes).tolist() == [4, 0, 2, 3]
    ds2 = from_torch_dataset(TensorDataset(X.float(), y), TensorDataset(X[:2].float(), y[:2]))
    assert ds2.X.dtype == torch.float32 and torch.equal(ds2.X, X.reshape(4, 12).float())
    assert ds2.n_classes == 5 and ds2.y_test.tolist() == [0, 4]
    binary = from_tensors(np.ones((2, 3)), np.array([1.0, -1.0]))
    assert binary.n_classes == 2 and binary.input_shape is None
    for args, message in [
        ((X, y), "label 4 is not a class id 0..3"),
        ((X.float() * np.nan, y), "non-finite"),
        ((X, y[:3]), "3 labels for 4 samples"),
        ((X, y.float() / 2), "float labels must be ±1"),
        ((X, y - 1), "class ids 0..C-1"),
    ]:
        with pytest.raises(SetupError, match=message) as err:
            from_tensors(*args, n_classes=4)
        assert str(err.value).startswith("task.data: ")
