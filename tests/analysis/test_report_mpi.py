"""End to end: a short real MPI run of the quickstart, then report, watch and compare on its trace."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from byzmpi.analysis.markdown import parse_number, parse_tables
from byzmpi.cli import main
from tests.mpi import byzmpi

pytestmark = pytest.mark.mpi
ROOT = Path(__file__).resolve().parents[2]


def test_report_of_a_real_mpi_run(tmp_path, capsys):
    trace = tmp_path / "quick.h5"
    res = byzmpi(
        3,
        "run",
        str(ROOT / "configs" / "quickstart.toml"),
        "--set",
        "run.rounds=40",
        "--set",
        f"run.trace={trace}",
        "--set",
        "run.progress=none",
        timeout=180,
        cwd=tmp_path,
    )
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])
    out = tmp_path / "report"
    assert main(["report", str(trace), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    tables = parse_tables(md)
    with h5py.File(trace, "r") as f:
        ev, r = f["eval"][...], f["rounds"][...]
    final = {row["metric"]: parse_number(row["final"]) for row in tables["Metrics"]}
    assert final["loss"] == pytest.approx(ev["loss"][-1], rel=2e-5)
    assert final["accuracy"] == pytest.approx(ev["accuracy"][-1], rel=2e-5)
    byz = {int(row["Byzantine sampled"]): int(row["rounds"]) for row in tables["Byzantine impact (oracle)"]}
    assert byz == {int(b): int((r["byzantine"] == b).sum()) for b in np.unique(r["byzantine"])}
    assert sum(byz.values()) == 40
    # the quickstart's trimmed mean gives no weights and sgd does not clip: said, not drawn
    assert "gives no per-message weights" in md and "No clipping" in md
    assert {p.name for p in out.glob("*.png")} == {"convergence.png", "byzantine_impact.png", "time_split.png"}
    capsys.readouterr()
    assert main(["watch", str(trace), "--once"]) == 0
    assert "finished  40/40 rounds" in capsys.readouterr().out
    assert main(["compare", str(trace), "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "heatmap_gap.png").exists()
