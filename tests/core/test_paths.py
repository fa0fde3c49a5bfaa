"""Data paths: ``task.path`` resolves relative to the config's folder, then ``$BYZMPI_DATA``
(byzmpi/paths.py), so that ``configs/paper/*.toml`` run from any clone of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from byzmpi.paths import DATA_ENV, data_path_candidates, resolve_data_path

ROOT = Path(__file__).resolve().parents[2]
SMALL = "+1 1:0.5 3:2\n-1 2:1.5\n+1 3:-1 4:0.25\n"


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


def test_absolute_path_is_kept(tmp_path):
    target = tmp_path / "x.svm"
    assert resolve_data_path(str(target), tmp_path / "elsewhere") == target.resolve()
    assert data_path_candidates(str(target), None) == [target]


def test_relative_path_starts_at_the_config_folder(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.svm").write_text(SMALL)
    monkeypatch.chdir(tmp_path / "data")  # the working folder has an x.svm: it must not win
    assert resolve_data_path("../data/x.svm", tmp_path / "cfg") == (tmp_path / "data" / "x.svm").resolve()
    assert resolve_data_path("x.svm", tmp_path / "cfg") == (tmp_path / "cfg" / "x.svm").resolve()  # missing: named


def test_byzmpi_data_is_the_fallback(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "x.svm").write_text(SMALL)
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "store"))
    assert resolve_data_path("x.svm", tmp_path / "cfg") == (tmp_path / "store" / "x.svm").resolve()
    (tmp_path / "cfg" / "x.svm").write_text(SMALL)  # the config's folder comes first
    assert resolve_data_path("x.svm", tmp_path / "cfg") == (tmp_path / "cfg" / "x.svm").resolve()
    assert data_path_candidates("x.svm", tmp_path / "cfg") == [tmp_path / "cfg" / "x.svm", tmp_path / "store" / "x.svm"]


def test_no_config_file_means_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_data_path("x.svm", None) == (tmp_path / "x.svm").resolve()


def test_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_path("~/x.svm", Path("/nonexistent")) == (tmp_path / "x.svm").resolve()


def test_loaded_config_records_the_resolved_file(tmp_path, monkeypatch):
    from byzmpi.config import load_config

    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "small.svm").write_text(SMALL)
    (tmp_path / "cfg" / "c.toml").write_text(
        '[task]\nname = "libsvm"\npath = "small.svm"\n[clients]\nn = 2\n[method]\nname = "sgd"\n'
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder
    cfg = load_config(tmp_path / "cfg" / "c.toml")
    assert cfg.task.path == str((tmp_path / "cfg" / "small.svm").resolve())
    cfg = load_config(Path("cfg") / "c.toml", ["task.path=small.svm"])  # --set follows the same rule
    assert cfg.task.path == str((tmp_path / "cfg" / "small.svm").resolve())


def test_loaded_config_falls_back_to_byzmpi_data(tmp_path, monkeypatch):
    from byzmpi.config import load_config

    (tmp_path / "cfg").mkdir()
    (tmp_path / "store" / "sets").mkdir(parents=True)
    (tmp_path / "store" / "sets" / "small.svm").write_text(SMALL)
    (tmp_path / "cfg" / "c.toml").write_text(
        '[task]\nname = "libsvm"\npath = "sets/small.svm"\n[clients]\nn = 2\n[method]\nname = "sgd"\n'
    )
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "store"))
    cfg = load_config(tmp_path / "cfg" / "c.toml")
    assert cfg.task.path == str((tmp_path / "store" / "sets" / "small.svm").resolve())


def test_paper_config_validates_from_a_clone_elsewhere(tmp_path):
    """configs/paper/t3_marina.toml names the repository's data/a9a by a relative path: a copy of the
    repository in another folder validates it unchanged, from a third working folder."""
    clone = tmp_path / "clone"
    (clone / "configs" / "paper").mkdir(parents=True)
    (clone / "data").mkdir()
    shutil.copy(ROOT / "configs" / "paper" / "t3_marina.toml", clone / "configs" / "paper")
    shutil.copy(ROOT / "data" / "a9a", clone / "data")
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != DATA_ENV}
    cmd = [sys.executable, "-m", "byzmpi", "validate", str(clone / "configs" / "paper" / "t3_marina.toml"), "--print"]
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr + res.stdout
    start = res.stdout.index("{")
    resolved, _ = json.JSONDecoder().raw_decode(res.stdout[start:])
    assert Path(resolved["task"]["path"]) == (clone / "data" / "a9a").resolve()
    from byzmpi.tasks.datasets import load_libsvm  # and the file it names parses (a9a: 32,561 x 123)

    ds = load_libsvm(resolved["task"]["path"])
    assert tuple(ds.X.shape) == (32561, 123)
