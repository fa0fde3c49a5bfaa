"""Datasets: the LIBSVM parser and loader, the synthetic generator."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from byzmpi.config import parse_config
from byzmpi.errors import SetupError
from byzmpi.tasks import build_task
from byzmpi.tasks.datasets import load_libsvm, parse_libsvm, synthetic

A9A = Path(__file__).resolve().parents[2] / "data" / "a9a"  # shipped with the repository

SMALL = "+1 1:0.5 3:2\n-1 2:1.5\n+1 3:-1 4:0.25\n"


def svm(tmp_path, text: str, name: str = "small.svm") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_small_file_by_hand(tmp_path):
    X, y = parse_libsvm(svm(tmp_path, SMALL))
    assert X.dtype == np.float32
    assert np.array_equal(X, np.array([[0.5, 0, 2, 0], [0, 1.5, 0, 0], [0, 0, -1, 0.25]], dtype=np.float32))
    assert y.tolist() == [1.0, -1.0, 1.0]


def test_blank_lines_are_skipped(tmp_path):
    X, y = parse_libsvm(svm(tmp_path, "\n1 2:1\n\n   \n0 1:3\n"))
    assert X.tolist() == [[0, 1], [3, 0]] and y.tolist() == [1, 0]


def test_forced_feature_count(tmp_path):
    path = svm(tmp_path, SMALL)
    X, _ = parse_libsvm(path, n_features=6)
    assert X.shape == (3, 6) and np.all(X[:, 4:] == 0)
    with pytest.raises(SetupError, match="task.features"):
        parse_libsvm(path, n_features=3)


@pytest.mark.parametrize(
    "labels, expected",
    [
        ("1 -1 1", [1, -1, 1]),
        ("1 0 1", [1, -1, 1]),  # 0/1 labels map to -1/+1
        ("2 1 2", [1, -1, 1]),  # the larger of two values is +1
    ],
)
def test_binary_labels_become_plus_minus_one(tmp_path, labels, expected):
    text = "".join(f"{lab} 1:1\n" for lab in labels.split())
    ds = load_libsvm(svm(tmp_path, text))
    assert ds.n_classes == 2 and ds.y.dtype.is_floating_point
    assert ds.y.tolist() == expected


@pytest.mark.parametrize("label", ["-1", "0"])
def test_single_class_file_keeps_its_sign(tmp_path, label):
    ds = load_libsvm(svm(tmp_path, f"{label} 1:1\n{label} 2:1\n"))
    assert ds.y.tolist() == [-1.0, -1.0]


def test_multiclass_labels_become_class_ids(tmp_path):
    ds = load_libsvm(svm(tmp_path, "3 1:1\n1 1:2\n7 1:3\n3 1:4\n"))
    assert ds.n_classes == 3 and ds.y.tolist() == [1, 0, 2, 1]


@pytest.mark.parametrize("bad", ["1 2:abc", "abc 1:1", "1 2", "1 x:1", "1 2:1:3"])
def test_malformed_line_names_file_and_line(tmp_path, bad):
    path = svm(tmp_path, f"1 1:1\n\n{bad}\n-1 1:2\n")
    with pytest.raises(SetupError) as info:
        parse_libsvm(path)
    assert f"{path}:3" in str(info.value)
    assert "\n" not in info.value.line()


def test_zero_index_names_the_line(tmp_path):
    path = svm(tmp_path, "1 1:1\n-1 0:2\n")
    with pytest.raises(SetupError, match=f"{path}:2"):
        parse_libsvm(path)


def test_zero_or_negative_index_is_refused(tmp_path):
    for bad in ("1 0:2", "1 -3:2"):
        with pytest.raises(SetupError, match=">= 1"):
            parse_libsvm(svm(tmp_path, f"1 1:1\n{bad}\n"))


def test_unreadable_and_empty_files(tmp_path):
    with pytest.raises(SetupError, match="cannot read"):
        parse_libsvm(tmp_path / "missing.svm")
    with pytest.raises(SetupError, match="cannot read"):
        load_libsvm(tmp_path / "missing.svm")
    with pytest.raises(SetupError, match="no samples"):
        parse_libsvm(svm(tmp_path, "\n\n"))


def test_load_uses_the_cache_and_notices_changes(tmp_path):
    path = svm(tmp_path, SMALL)
    a = load_libsvm(path)
    cached = list((Path(os.environ["BYZMPI_CACHE"]) / "libsvm").glob("*.npz"))
    assert cached
    b = load_libsvm(path)
    assert np.array_equal(a.X.numpy(), b.X.numpy()) and np.array_equal(a.y.numpy(), b.y.numpy())
    path.write_text(SMALL + "-1 5:1\n")  # size and mtime change: parsed again
    c = load_libsvm(path)
    assert c.X.shape == (4, 5)


def test_test_split_is_disjoint_seeded_and_sized(tmp_path):
    text = "".join(f"{1 if i % 3 else -1} 1:{i}\n" for i in range(40))
    ds = load_libsvm(svm(tmp_path, text), test_fraction=0.25, seed=2)
    assert ds.n_samples == 30 and ds.X_test.shape == (10, 1)
    assert sorted(ds.X[:, 0].tolist() + ds.X_test[:, 0].tolist()) == list(range(40))
    again = load_libsvm(svm(tmp_path, text), test_fraction=0.25, seed=2)
    assert np.array_equal(ds.X_test.numpy(), again.X_test.numpy())
    other = load_libsvm(svm(tmp_path, text), test_fraction=0.25, seed=3)
    assert not np.array_equal(ds.X_test.numpy(), other.X_test.numpy())


def test_task_features_forces_the_libsvm_feature_count(tmp_path):
    path = svm(tmp_path, "".join(f"{1 if i % 2 else -1} 1:{i} 3:1\n" for i in range(8)))
    cfg = parse_config({"clients": {"n": 2}, "task": {"name": "libsvm", "path": str(path), "features": 10}})
    assert build_task(cfg).dim == 10


@pytest.mark.skipif(not A9A.exists(), reason="a9a not available")
def test_a9a_matches_sklearn():
    X, raw = parse_libsvm(A9A)
    assert X.shape == (32561, 123)
    assert set(np.unique(raw)) == {-1.0, 1.0}
    ds = load_libsvm(A9A)
    assert ds.n_classes == 2 and ds.n_samples == 32561 and ds.n_features == 123
    from sklearn.datasets import load_svmlight_file

    Xs, ys = load_svmlight_file(str(A9A), n_features=123)
    assert np.array_equal(X, Xs.toarray().astype(np.float32))
    assert np.array_equal(ds.y.numpy(), ys.astype(np.float32))
    assert int((ds.y == 1).sum()) == int((ys == 1).sum())


def test_synthetic_is_seeded_and_shaped():
    kw = dict(n_clients=4, samples=100, features=3, heterogeneity=0.5, label_noise=0.1, test_fraction=0.2)
    a, b, c = synthetic(seed=1, **kw), synthetic(seed=1, **kw), synthetic(seed=2, **kw)
    assert a.X.shape == (80, 4) and a.X_test.shape == (20, 4)
    assert np.all(a.X[:, -1].numpy() == 1.0)  # the bias feature
    assert set(np.unique(a.y.numpy())) == {-1.0, 1.0}
    assert np.array_equal(a.X.numpy(), b.X.numpy()) and not np.array_equal(a.X.numpy(), c.X.numpy())
    assert a.groups.shape == (80,) and set(a.groups.tolist()) <= {0, 1, 2, 3}
    full = synthetic(seed=1, **{**kw, "test_fraction": 0.0})
    assert np.bincount(full.groups).tolist() == [25, 25, 25, 25]
