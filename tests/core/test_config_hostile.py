"""Malformed configs and plugins from the red-team run (issue 13 item 8): each is one ConfigError
naming the field (exit 2, one line), found before any collective."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from byzmpi.aggregators import RULES
from byzmpi.config import load_config
from byzmpi.errors import ConfigError
from byzmpi.runner.setup import setup

OK = """
[run]
name = "hostile"
trace = "{trace}"

[clients]
n = 6
byzantine = 1
"""


def _config(tmp_path: Path, extra: str = "", trace: str | None = None) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(OK.format(trace=trace or str(tmp_path / "t.h5")) + extra)
    return path


def _error(path: Path, overrides: list[str] = (), *, full: bool = False) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cfg = load_config(path, list(overrides))
        if full:
            setup(cfg, world_size=2, rank=1)
    assert "\n" not in str(info.value)
    return info.value


def test_non_utf8_config_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[run]\nname = "caf\xe9"\n'.encode("latin-1"))
    assert "not UTF-8" in str(_error(path))


@pytest.mark.parametrize("template", ["{name.nope}.h5", "{seed.x}.h5", "{name.__class__}.h5", "{name!r}.h5", "{0}.h5"])
def test_only_the_documented_placeholders(tmp_path, template):
    err = _error(_config(tmp_path), [f"run.trace={tmp_path}/{template}"])
    assert err.field == "run.trace" and "only the placeholders" in str(err)


def test_run_name_cannot_escape_the_trace_folder(tmp_path):
    for name in ("../../../x", ".hidden", "a/b", "x" * 300):
        assert _error(_config(tmp_path), [f"run.name={name}"]).field == "run.name"


def test_unwritable_trace_paths_are_found_before_launch(tmp_path):
    long = tmp_path / ("y" * 300 + ".h5")
    for trace, why in (
        (str(long), "bytes long"),
        (str(tmp_path), "is a directory"),
        ("/proc/t.h5", "pseudo file system"),
    ):
        err = _error(_config(tmp_path, trace=trace), full=True)
        assert err.field == "run.trace" and why in str(err), trace


def test_plugin_raising_systemexit_is_a_config_error(tmp_path):
    (tmp_path / "exit3.py").write_text("raise SystemExit(3)\n")
    err = _error(_config(tmp_path), ["run.plugins=['exit3.py']"])
    assert err.field == "run.plugins" and "SystemExit" in str(err)


def test_plugin_rule_whose_condition_raises(tmp_path):
    name = f"raising_{uuid.uuid4().hex[:8]}"
    (tmp_path / "bad_rule.py").write_text(
        "from byzmpi.aggregators import rule\nfrom byzmpi.registry import Condition\n"
        f"@rule({name!r}, condition=Condition('never', lambda m, f, **_: 1 / 0), doc='raises')\n"
        "def r(x, *, f):\n    return x.mean(0)\n"
    )
    try:
        err = _error(_config(tmp_path), ["run.plugins=['bad_rule.py']", f"aggregator.name={name}"])
        assert err.field == "aggregator.f" and "needs never" in str(err)
    finally:
        RULES.pop(name, None)


def test_multi_krum_k_too_large_blames_k(tmp_path):
    err = _error(_config(tmp_path), ["aggregator.name=multi_krum", "aggregator.k=100"])
    assert err.field == "aggregator.k"


def test_bad_config_through_the_cli_is_one_line_and_exit_2(tmp_path):
    path = _config(tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", "byzmpi", "validate", str(path), "--set", "run.trace={name.__class__}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
