"""``byzmpi report``: every number in the report's tables equals what a direct h5py read of the
trace computes, and the figures have the panels they should."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
from matplotlib.image import imread

from byzmpi.analysis import report as R
from byzmpi.analysis.markdown import parse_number, parse_tables
from byzmpi.cli import main

from .synth import config, write_trace

REL = 2e-5  # cells carry 6 significant digits


def close(cell: str, expected: float) -> bool:
    got = parse_number(cell)
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(got)
    return got == pytest.approx(float(expected), rel=REL, abs=1e-12)


def raw(path):
    with h5py.File(path, "r") as f:
        return f["rounds"][...], f["messages"][...], f["eval"][...], dict(f.attrs)


@pytest.fixture(scope="module")
def clipped_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    path = write_trace(d / "run.h5", config(run={"rounds": 120, "eval_every": 20}), seed=3)
    rep = R.build(path, d / "out")
    return path, d / "out", rep, parse_tables((d / "out" / "report.md").read_text())


def test_metric_table_matches_eval_rows(clipped_run):
    path, _, _, tables = clipped_run
    _, _, ev, _ = raw(path)
    rows = {r["metric"]: r for r in tables["Metrics"]}
    assert set(rows) == {"loss", "accuracy", "gap", "grad_norm_sq"}
    for m, row in rows.items():
        v = ev[m]
        best = int(np.argmax(v)) if m == "accuracy" else int(np.argmin(v))
        assert close(row["initial"], v[0]) and close(row["final"], v[-1])
        assert close(row["best"], v[best]) and int(row["best at round"]) == ev["round"][best]


def test_sampling_and_byzantine_tables_match_rounds(clipped_run):
    path, _, _, tables = clipped_run
    r, _, _, _ = raw(path)
    (s,) = tables["Sampling"]
    assert close(s["sampled/round (mean)"], r["sampled"].mean())
    assert close(s["Byzantine/round (mean, oracle)"], r["byzantine"].mean())
    assert int(s["Byzantine max (oracle)"]) == r["byzantine"].max()
    assert int(s["rounds with Byzantine (oracle)"]) == (r["byzantine"] > 0).sum()
    assert int(s["rounds with Byzantine majority (oracle)"]) == (2 * r["byzantine"] > r["sampled"]).sum()
    rows = tables["Byzantine impact (oracle)"]
    assert [int(x["Byzantine sampled"]) for x in rows] == sorted(set(r["byzantine"].tolist()))
    for row in rows:
        sel = r["byzantine"] == int(row["Byzantine sampled"])
        d = r["dist_honest_mean"][sel].astype(np.float64)
        assert int(row["rounds"]) == sel.sum()
        assert close(row["share of rounds"], sel.mean())
        assert close(row["mean distance"], d.mean()) and close(row["median distance"], np.median(d))
        assert close(row["max distance"], d.max())
        assert close(row["mean relative distance"], (d / r["honest_mean_norm"][sel]).mean())


def test_kept_tables_match_message_weights(clipped_run):
    path, _, _, tables = clipped_run
    _, m, _, _ = raw(path)
    accepted_in_round = {k: int(((m["round"] == k) & (m["rejected"] == 0)).sum()) for k in np.unique(m["round"])}
    share = m["weight"].astype(np.float64) * np.array([accepted_in_round[k] for k in m["round"]])
    for row in tables["Aggregator: what it kept"]:
        sel = m["byzantine"] == (1 if row["group (oracle)"] == "Byzantine" else 0)
        assert int(row["messages"]) == sel.sum()
        assert int(row["kept"]) == (m["weight"][sel] > 0).sum()
        assert close(row["kept rate"], (m["weight"][sel] > 0).mean())
        assert close(row["mean share"], share[sel].mean())
    per_client = tables["Per client"]
    assert [int(x["client"]) for x in per_client] == sorted(set(m["client"].tolist()))
    for row in per_client:
        sel = m["client"] == int(row["client"])
        assert row["Byzantine (oracle)"] == ("yes" if m["byzantine"][sel].any() else "no")
        assert int(row["kept"]) == (m["weight"][sel] > 0).sum()
        assert close(row["kept rate"], (m["weight"][sel] > 0).mean())
        assert close(row["mean share"], share[sel].mean())
    # the hand-built rule keeps the two smallest norms: Byzantine messages are almost never kept
    rates = {r["group (oracle)"]: parse_number(r["kept rate"]) for r in tables["Aggregator: what it kept"]}
    assert rates["honest"] > 0.5 > 0.2 > rates["Byzantine"]


def test_clipping_validation_communication_and_time_tables(clipped_run):
    path, _, _, tables = clipped_run
    r, m, _, _ = raw(path)
    clip = {row["quantity"]: row["value"] for row in tables["Clipping"]}
    radius = r["clip_radius"].astype(np.float64)
    assert int(clip["rounds with clipping"]) == len(r)
    assert close(clip["radius min"], radius.min()) and close(clip["radius max"], radius.max())
    assert close(clip["radius median"], np.median(radius)) and close(clip["radius last"], radius[-1])
    assert int(clip["clipped messages"]) == r["clipped"].sum()
    assert close(clip["mean clipped fraction per round"], (r["clipped"] / (r["sampled"] - r["rejected"])).mean())
    traced = ~np.isnan(m["clipped"])  # NaN where the method did not clip (schema 3)
    for name, flag in (("honest", 0), ("Byzantine", 1)):
        sel = traced & (m["byzantine"] == flag)
        assert close(clip[f"clipped rate, {name} messages"], m["clipped"][sel].mean())
    for row in tables["Validation"]:
        sel = m["rejected"] == int(row["code"])
        assert (
            int(row["messages"]) == sel.sum() and int(row["of which Byzantine (oracle)"]) == m["byzantine"][sel].sum()
        )
    assert sum(int(row["messages"]) for row in tables["Validation"]) == len(m)
    comm = {row["direction"]: row for row in tables["Communication"]}
    for d in ("up", "down"):
        assert int(comm[d]["bytes"]) == r[f"bytes_{d}"].sum()
        assert close(comm[d]["bytes per round"], r[f"bytes_{d}"].sum() / len(r))
    time_rows = {row["trace column"]: row for row in tables["Time per round"]}
    total = r["t_round"].astype(np.float64).sum()
    parts = 0.0
    for col in ("t_compute", "t_comm", "t_aggregate", "t_io", "t_eval"):
        s = r[col].astype(np.float64).sum()
        parts += s
        assert close(time_rows[col]["total s"], s)
        assert close(time_rows[col]["ms per round"], 1e3 * s / len(r))
        assert close(time_rows[col]["share of round"], s / total)
    assert close(time_rows["t_round - parts"]["total s"], total - parts)
    assert close(time_rows["t_round"]["total s"], total)


def test_run_table_names_the_run(clipped_run):
    path, _, _, tables = clipped_run
    _, _, _, attrs = raw(path)
    run = {row["field"]: row["value"] for row in tables["Run"]}
    assert run["aggregator"] == "krum" and run["attack"] == "alie" and run["status"] == "finished"
    assert run["Byzantine ids"] == "4, 5" and int(run["rounds traced"]) == 120
    assert run["simulation (omniscient attack built by the server)"] == "yes"
    assert close(run["f* (optimum)"], attrs["f_star"])


def _has_data(ax) -> bool:
    return bool(ax.lines or ax.collections or ax.patches or ax.images)


def test_figures_have_their_panels_and_are_drawn(clipped_run):
    _, out, rep, _ = clipped_run
    assert set(rep.figures) == {"convergence", "byzantine_impact", "time_split", "clipping", "kept_rate"}
    expected = {
        "convergence": [
            "loss vs rounds",
            "optimality gap f(x) - f* vs rounds",
            "accuracy vs rounds",
            "loss vs bytes sent",
            "optimality gap f(x) - f* vs bytes sent",
            "accuracy vs bytes sent",
        ],
        "byzantine_impact": 2,
        "time_split": 2,
        "clipping": 2,
        "kept_rate": 2,
    }
    for name, info in rep.figures.items():
        want = expected[name]
        assert (info.panels == want) if isinstance(want, list) else (len(info.panels) == want), (name, info.panels)
        data_axes = [ax for ax in info.figure.axes if ax.get_label() != "<colorbar>"]
        assert all(_has_data(ax) for ax in data_axes), name
        img = imread(out / f"{name}.png")
        assert img.shape[0] > 300 and img.shape[1] > 600 and img[..., :3].std() > 0.05, name
        assert f"]({name}.png)" in rep.markdown
    # the oracle panels say so
    assert all("(oracle)" in t for t in rep.figures["byzantine_impact"].panels)
    # the convergence panels plot the eval rows: x of the bytes row = cumulative bytes before each eval
    ax = rep.figures["convergence"].figure.axes[3]
    r, _, ev, _ = raw(clipped_run[0])
    cum = np.concatenate([[0], np.cumsum(r["bytes_up"] + r["bytes_down"])])
    scale = {"bytes": 1, "KiB": 2**10, "MiB": 2**20}[ax.get_xlabel().split()[0]]
    np.testing.assert_allclose(ax.lines[0].get_xdata(), cum[ev["round"]] / scale)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), ev["loss"])


def test_without_clipping_or_weights_the_report_says_so(tmp_path):
    path = write_trace(tmp_path / "plain.h5", config(aggregator={"name": "median"}), clip=False, weights=False)
    rep = R.build(path, tmp_path / "out")
    assert "clipping" not in rep.figures and "kept_rate" not in rep.figures
    assert not (tmp_path / "out" / "clipping.png").exists()
    assert "No clipping" in rep.markdown
    assert "(median) gives no per-message weights" in rep.markdown
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["notes"]) == {"clipping", "kept"}


def test_without_message_table(tmp_path):
    path = write_trace(tmp_path / "nomsg.h5", messages=False)
    rep = R.build(path, tmp_path / "out")
    assert "no per-message table" in rep.markdown
    assert "kept_rate" not in rep.figures and "clipping" in rep.figures  # radius comes from rounds


def test_cli_report_text_and_folder(tmp_path, capsys):
    path = write_trace(tmp_path / "cli.h5")
    assert main(["report", str(path)]) == 0
    text = capsys.readouterr().out
    assert "krum vs alie" in text and "rounds     40 of 40" in text
    assert main(["report", str(path), "--out", str(tmp_path / "o")]) == 0
    assert "report.md" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "o").iterdir()} >= {"report.md", "summary.json", "convergence.png"}
    assert main(["report", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x")]) == 2
