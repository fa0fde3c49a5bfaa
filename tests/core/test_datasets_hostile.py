"""Hostile data files (issue 13, item 7): non-finite or float32-overflowing values and labels, and
feature indices that would make the loader allocate a huge dense matrix, are refused with one
line naming task.path (or task.features) and the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import byzmpi.tasks.datasets as datasets
from byzmpi.config import parse_config
from byzmpi.errors import SetupError
from byzmpi.tasks import build_task
from byzmpi.tasks.datasets import cache_dir, load_libsvm, parse_libsvm

GOOD = "+1 1:0.5 3:2\n-1 2:1.5\n"

#: a bad line (appended to GOOD) -> what the one-line error must contain
BAD_VALUES = {
    "nan": ("+1 1:nan", "feature 1"),
    "NaN capitalised": ("+1 2:NaN", "feature 2"),
    "inf": ("-1 1:inf", "feature 1"),
    "minus infinity": ("-1 3:-Infinity", "feature 3"),
    "1e39 overflows float32": ("+1 1:1e39", "1e39"),
    "-1e39 overflows float32": ("+1 2:-1e39", "-1e39"),
    "1e309 overflows float64": ("+1 1:1e309", "1e309"),
    "nan label": ("nan 1:1", "label"),
    "inf label": ("inf 1:1", "label"),
}


def svm(tmp_path: Path, text: str, name: str = "bad.svm") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def one_line(exc: BaseException) -> str:
    assert isinstance(exc, SetupError) and exc.exit_code == 2
    line = str(exc)
    assert "\n" not in line
    return line


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_non_finite_values_are_refused(case: str, tmp_path: Path) -> None:
    bad, what = BAD_VALUES[case]
    path = svm(tmp_path, GOOD + bad + "\n")
    with pytest.raises(SetupError) as info:
        parse_libsvm(path)
    line = one_line(info.value)
    assert line.startswith("task.path: ") and f"{path}:3" in line and what in line, line


def test_float32_max_itself_is_accepted(tmp_path: Path) -> None:
    X, _ = parse_libsvm(svm(tmp_path, GOOD + "+1 1:3.4028234e38 2:-1e-45\n"))
    assert np.isfinite(X).all() and X[2, 0] == np.finfo(np.float32).max


@pytest.mark.parametrize("index", ["3000000000", "99999999999999999999999999", str(datasets.MAX_INFERRED_FEATURES + 1)])
def test_a_huge_feature_index_is_refused_before_allocating(index: str, tmp_path: Path, monkeypatch) -> None:
    path = svm(tmp_path, f"{GOOD}1 {index}:1\n")
    monkeypatch.setattr(datasets.np, "zeros", lambda *a, **k: pytest.fail(f"allocated {a}"))
    with pytest.raises(SetupError) as info:
        parse_libsvm(path)
    line = one_line(info.value)
    assert line.startswith("task.path: ") and f"{path}:3" in line and "task.features" in line, line


def test_the_inferred_limit_itself_is_accepted(tmp_path: Path) -> None:
    X, _ = parse_libsvm(svm(tmp_path, f"1 {datasets.MAX_INFERRED_FEATURES}:1\n"))
    assert X.shape == (1, datasets.MAX_INFERRED_FEATURES) and X[0, -1] == 1


def test_an_explicit_feature_count_allows_more_and_bounds_the_index(tmp_path: Path) -> None:
    n = datasets.MAX_INFERRED_FEATURES + 10
    X, _ = parse_libsvm(svm(tmp_path, f"1 {n}:2\n"), n_features=n)
    assert X.shape == (1, n) and X[0, -1] == 2
    with pytest.raises(SetupError) as info:
        parse_libsvm(svm(tmp_path, "1 3000000000:1\n", "big.svm"), n_features=n)
    line = one_line(info.value)
    assert line.startswith("task.features: ") and "big.svm:1" in line and "3000000000" in line


def test_a_dense_matrix_above_the_limit_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(datasets, "MAX_DENSE_BYTES", 1000)
    path = svm(tmp_path, "".join(f"1 {k}:1\n" for k in range(1, 41)))  # 40 x 40 float32 = 6400 bytes
    with pytest.raises(SetupError) as info:
        parse_libsvm(path)
    assert "task.path" in one_line(info.value) and "40 x 40" in str(info.value)


def test_a_poisoned_cache_is_not_trusted(tmp_path: Path) -> None:
    """The parse cache is re-checked on load: a cached NaN matrix makes the loader parse again."""
    path = svm(tmp_path, GOOD, "good.svm")
    first = load_libsvm(path)
    caches = list((cache_dir() / "libsvm").glob("*.npz"))
    assert caches
    for cached in caches:
        with np.load(cached) as z:
            X, y = z["X"].copy(), z["y"]
        X[:] = np.nan
        np.savez(cached, X=X, y=y)
    again = load_libsvm(path)
    assert np.isfinite(again.X.numpy()).all()
    assert np.array_equal(again.X.numpy(), first.X.numpy())


def test_build_task_names_task_path_and_the_file(tmp_path: Path) -> None:
    path = svm(tmp_path, GOOD + "+1 1:inf\n")
    cfg = parse_config(
        {
            "run": {"name": "bad", "rounds": 2, "trace": str(tmp_path / "t.h5")},
            "clients": {"n": 2, "byzantine": 0, "per_round": 2},
            "task": {"name": "libsvm", "path": str(path)},
            "method": {"name": "sgd", "lr": 0.1},
            "aggregator": {"name": "mean", "f": 0},
        }
    )
    with pytest.raises(SetupError) as info:
        build_task(cfg)
    line = one_line(info.value)
    assert line.startswith("task.path: ") and str(path) in line
