"""End to end (one MPI launch): ``byzmpi run`` on a crafted checkpoint exits 2 with one line naming
the field, from the host rank that would load it, before any round; and nothing is written over
the trace. The in-process battery is tests/core/test_checkpoint_hostile.py."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from byzmpi.config import load_config
from byzmpi.runner.setup import setup
from tests.core.test_checkpoint_hostile import NAN6, Templates, _set_row, raw_config, write_good
from tests.mpi import byzmpi

pytestmark = pytest.mark.mpi


def _toml(raw: dict) -> str:
    lines = []
    for section, fields in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def test_run_on_a_crafted_checkpoint_exits_2_with_one_line(tmp_path: Path) -> None:
    raw = raw_config(tmp_path)
    raw["run"]["progress"] = "none"
    path = tmp_path / "hx.toml"
    path.write_text(_toml(raw))
    cfg = load_config(path)
    s = setup(cfg, 3, 0)
    write_good(cfg, Templates(s.method.init_server(s.x0), {c: s.method.init_client(c) for c in range(4)}))
    _set_row("clients/momentum", 1, NAN6)(cfg.checkpoint_path)  # client 1 lives on rank 1
    trace_before = cfg.trace_path.read_bytes()

    res = byzmpi(3, "run", str(path), timeout=240, cwd=tmp_path)

    assert res.returncode == 2, (res.stdout[-2000:], res.stderr[-2000:])
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("byzmpi:")]
    assert len(errors) == 1, res.stderr[-3000:]
    assert "clients/momentum" in errors[0] and "client 1" in errors[0] and "non-finite" in errors[0]
    assert "Traceback" not in res.stderr and "resuming" not in res.stdout
    assert cfg.trace_path.read_bytes() == trace_before
    with h5py.File(cfg.checkpoint_path, "r") as f:
        assert np.isnan(f["clients/momentum"][1]).any()  # left as it was, for inspection
