"""Statistics of ``byzmpi compare`` and ``report``: replicate means with bands, mean ± std and n in
the tables and cells.csv, the final metric over the last k evaluations, the worst run being the
really worst replicate, colour-blind-safe colours, titles that fit their figures; and a sweep
named by ``byzmpi.grid`` understood without configuration."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from byzmpi import grid as G
from byzmpi.analysis import compare as C
from byzmpi.analysis import figures as F
from byzmpi.analysis import metrics as M
from byzmpi.analysis import report as R
from byzmpi.analysis import sweep as S
from byzmpi.analysis.markdown import parse_number, parse_tables
from byzmpi.cli import main

from .synth import config, write_trace

ROOT = Path(__file__).resolve().parents[2]
RULES = ("median", "krum")
ATTACKS = ("none", "alie")
SEEDS = (1, 2, 3)


def planned_gap(rule: str, attack: str, seed: int) -> float:
    """krum is worst at seed 3, median at seed 1 (so the worst replicate is not always the first)."""
    base = {"median": 0.02, "krum": 0.03}[rule] * (1.0 if attack == "none" else 5.0)
    noise = {1: 0.3, 2: 0.1, 3: 0.0} if rule == "median" else {1: 0.0, 2: 0.1, 3: 0.4}
    return base * (1.0 + noise[seed])


@pytest.fixture(scope="module")
def reps(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("reps")
    for rule in RULES:
        for attack in ATTACKS:
            for seed in SEEDS:
                name = f"{rule}-{attack}-s{seed}"
                cfg = config(
                    run={"name": name, "seed": seed, "rounds": 40}, aggregator={"name": rule}, attack={"name": attack}
                )
                gap = planned_gap(rule, attack, seed)
                write_trace(d / f"{name}.h5", cfg, seed=seed, final_gap=gap, final_accuracy=0.9 - gap, messages=False)
    return d


def evals(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["eval"][...]


def test_worst_run_names_the_worst_replicate(reps):
    comp = C.build(reps)
    wc = comp.worst["gap"].set_index("defence")
    # krum's worst cell is alie, and its worst replicate is seed 3 (not the first seed)
    assert wc.loc["krum", "worst_attack"] == "alie"
    assert wc.loc["krum", "worst_run"] == "krum-alie-s3" and wc.loc["krum", "worst_seed"] == "seed=3"
    assert wc.loc["median", "worst_run"] == "median-alie-s1"
    for rule in RULES:
        direct = {s: evals(reps / f"{rule}-alie-s{s}.h5")["gap"][-1] for s in SEEDS}
        assert wc.loc[rule, "worst_run"] == f"{rule}-alie-s{max(direct, key=direct.get)}"
    # accuracy: higher is better, so the worst replicate is the lowest accuracy
    acc = comp.worst["accuracy"].set_index("defence")
    assert acc.loc["krum", "worst_run"] == "krum-alie-s3"


def test_cells_mean_std_n_match_direct_reads(reps, tmp_path):
    comp = C.build(reps, tmp_path / "cmp")
    c = comp.cells["gap"]
    for _, row in c.iterrows():
        v = np.array([evals(reps / f"{row['defence']}-{row['attack']}-s{s}.h5")["gap"][-1] for s in SEEDS], float)
        assert row["mean"] == pytest.approx(v.mean(), rel=1e-12) and row["value"] == pytest.approx(v.mean(), rel=1e-12)
        assert row["std"] == pytest.approx(v.std(ddof=1), rel=1e-9)
        assert (row["n"], row["runs"], row["diverged"]) == (3, 3, 0)
        assert (row["min"], row["max"]) == (pytest.approx(v.min()), pytest.approx(v.max()))
    csv = pd.read_csv(tmp_path / "cmp" / "cells.csv")
    assert {"mean", "std", "n", "min", "max", "worst_run", "worst_seed", "metric", "last_k"} <= set(csv.columns)
    assert set(csv["metric"]) == {"gap", "accuracy"} and set(csv["last_k"]) == {1}
    tables = parse_tables((tmp_path / "cmp" / "compare.md").read_text())
    cells_md = tables["Cells: gap, mean ± std over replicates"]
    assert len(cells_md) == len(RULES) * len(ATTACKS)
    row = next(r for r in cells_md if (r["defence"], r["attack"]) == ("krum", "alie"))
    want = c[(c["defence"] == "krum") & (c["attack"] == "alie")].iloc[0]
    assert parse_number(row["mean"]) == pytest.approx(want["mean"], rel=1e-5)
    assert parse_number(row["std"]) == pytest.approx(want["std"], rel=1e-5) and row["n"] == "3"
    worst_md = {r["setting"]: r for r in tables["Worst case over attacks: gap"]}
    assert worst_md["krum"]["worst run"] == "krum-alie-s3" and worst_md["krum"]["n"] == "3"
    assert parse_number(worst_md["krum"]["std"]) == pytest.approx(want["std"], rel=1e-5)


def test_diverged_replicate_counts_and_is_the_worst_run(tmp_path):
    for seed, gap in ((1, 0.01), (2, math.inf), (3, 0.02)):
        cfg = config(run={"name": f"m-s{seed}", "seed": seed}, aggregator={"name": "mean"})
        write_trace(tmp_path / f"m-s{seed}.h5", cfg, seed=seed, final_gap=gap, messages=False)
    sw = S.analyse(C.load_runs(C.read_traces(tmp_path)))
    (row,) = S.cells(sw, "gap").to_dict("records")
    assert row["value"] == math.inf and (row["n"], row["runs"], row["diverged"]) == (2, 3, 1)
    assert row["mean"] == pytest.approx(0.015) and row["worst_run"] == "m-s2" and row["worst_seed"] == "seed=2"


def test_last_k_averages_the_last_evaluations(reps, tmp_path):
    ev = evals(reps / "krum-alie-s2.h5")
    frame = pd.DataFrame(ev)
    assert M.final_value(frame, "gap", 1) == pytest.approx(ev["gap"][-1])
    assert M.final_value(frame, "gap", 3) == pytest.approx(ev["gap"][-3:].mean())
    assert M.final_value(frame, "gap", 100) == pytest.approx(ev["gap"].mean())
    comp = C.build(reps, tmp_path / "cmp", last_k=3)
    c = comp.cells["gap"].set_index(["defence", "attack"])
    direct = np.mean([evals(reps / f"krum-alie-s{s}.h5")["gap"][-3:].mean() for s in SEEDS])
    assert c.loc[("krum", "alie"), "mean"] == pytest.approx(direct, rel=1e-9)
    assert set(pd.read_csv(tmp_path / "cmp" / "cells.csv")["last_k"]) == {3}
    assert "mean of its last 3 evaluations" in comp.markdown
    # the report's metric table gets the same column
    rep = R.build(reps / "krum-alie-s2.h5", tmp_path / "rep", last_k=3)
    rows = {r["metric"]: r for r in parse_tables((tmp_path / "rep" / "report.md").read_text())["Metrics"]}
    assert parse_number(rows["gap"]["mean of last 3"]) == pytest.approx(ev["gap"][-3:].mean(), rel=2e-5)
    assert "last_k_mean" in rep.tables["metrics"] and "last_k_mean" not in M.metric_table(frame).columns


@pytest.mark.parametrize("band", ["minmax", "std", "none"])
def test_curves_are_replicate_means_with_a_band(reps, band):
    comp = C.build(reps, select=["attack.name=alie"], band=band)
    assert [len(names) for _, names in comp.curve_groups] == [3, 3]
    assert all(label.endswith("(n=3)") for label, _ in comp.curve_groups)
    traces = {t.label: t for t in C.read_traces(reps)}
    fig = C.curves(traces, comp.curve_groups, band)
    gap_ax = fig.axes[1]
    assert len(gap_ax.lines) == 2
    bands = [c for c in gap_ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == (0 if band == "none" else 2)
    for line, (_, names) in zip(gap_ax.lines, comp.curve_groups):
        stack = np.stack([evals(reps / f"{n}.h5")["gap"] for n in names])
        assert np.allclose(line.get_ydata(), stack.mean(axis=0), rtol=1e-6)
    if band != "none":
        (_, names) = comp.curve_groups[0]
        stack = np.stack([evals(reps / f"{n}.h5")["gap"] for n in names]).astype(float)
        lo, hi = (
            (stack.min(0), stack.max(0))
            if band == "minmax"
            else (stack.mean(0) - stack.std(0, ddof=1), stack.mean(0) + stack.std(0, ddof=1))
        )
        ys = bands[0].get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(lo[lo > 0].min() if band == "std" else lo.min(), rel=1e-6)
        assert ys.max() == pytest.approx(hi.max(), rel=1e-6)


def test_default_curves_are_every_replicate_of_each_worst_cell(reps):
    comp = C.build(reps)
    assert sorted(comp.curves) == sorted(f"{r}-alie-s{s}" for r in RULES for s in SEEDS)
    assert [label for label, _ in comp.curve_groups] == ["median vs alie (n=3)", "krum vs alie (n=3)"]


def test_band_and_last_k_flags(reps, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", str(reps), "--band", "std", "--last-k", "2", "--out", str(out)]) == 0
    assert "mean of its last 2 evaluations" in (out / "compare.md").read_text()
    assert main(["compare", str(reps), "--last-k", "0"]) == 2
    assert "--last-k 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["compare", str(reps), "--band", "bogus"])
    assert e.value.code == 2
    assert main(["compare", str(reps)]) == 0
    assert " ± " in capsys.readouterr().out  # the text tables carry the spread too


# -- colours ---------------------------------------------------------------------------------------
#: Machado et al. (2009) full-severity simulation matrices (linear RGB)
CVD = {
    "protanopia": np.array(
        [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]
    ),
    "deuteranopia": np.array(
        [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]
    ),
}


def _simulate(rgb: np.ndarray, m: np.ndarray) -> np.ndarray:
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    out = np.clip(lin @ m.T, 0, 1)
    return np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055)


def _min_distance(colors) -> float:
    rgb = np.array([matplotlib.colors.to_rgb(c) for c in colors])
    worst = np.inf
    for m in CVD.values():
        sim = _simulate(rgb, m)
        d = np.linalg.norm(sim[:, None] - sim[None], axis=-1)
        worst = min(worst, d[np.triu_indices(len(rgb), 1)].min())
    return worst


def test_categorical_colours_stay_apart_for_red_green_colour_blindness():
    assert _min_distance(F.CATEGORICAL) > 0.15
    assert _min_distance(list(F.TIME_COLORS.values())) > 0.15
    assert _min_distance([F.HONEST, F.BYZANTINE]) > 0.3
    # the old red/green pair would fail this test
    assert _min_distance(["tab:red", "tab:green"]) < 0.15


def test_figures_use_colour_blind_safe_maps(reps, tmp_path):
    comp = C.build(reps, tmp_path / "cmp")
    for name in ("heatmap_gap", "heatmap_accuracy"):
        fig = comp.figures[name][1]
        maps = {im.get_cmap().name for ax in fig.axes for im in ax.get_images()}
        assert maps and maps <= {"cividis", "cividis_r", "viridis", "viridis_r"}
    texts = [t.get_text() for ax in comp.figures["heatmap_gap"][1].axes for t in ax.texts]
    assert any("\n±" in t for t in texts)  # cells print mean and std
    rep = R.build(
        write_trace(tmp_path / "r.h5", config(run={"rounds": 60, "eval_every": 20}), seed=2), tmp_path / "rep"
    )
    for info in rep.figures.values():
        for ax in info.figure.axes:
            for coll in ax.collections:
                cmap = getattr(coll, "get_cmap", lambda: None)()
                assert cmap is None or coll.get_array() is None or cmap.name.startswith(("cividis", "viridis"))


# -- titles ----------------------------------------------------------------------------------------
def _titles(fig: Figure):
    sup = getattr(fig, "_suptitle", None)
    out = [sup] if sup is not None and sup.get_text() else []
    return out + [ax.title for ax in fig.axes if ax.title.get_text()]


def _assert_titles_fit(fig: Figure) -> None:
    rend = F.renderer(fig)
    fig.draw_without_rendering()
    width = fig.get_figwidth() * fig.dpi
    for t in [*_titles(fig), *fig.legends]:
        box = t.get_window_extent(rend)
        assert box.width <= width and box.x0 >= -1 and box.x1 <= width + 1, (t, box, width)


def test_fit_text_wraps_then_shrinks_to_the_width():
    fig = Figure(figsize=(3, 2))
    t = fig.suptitle("Final optimality gap f(x) - f* (lower is better; framed: worst attack per defence)")
    rend = F.renderer(fig)
    assert t.get_window_extent(rend).width > fig.get_figwidth() * fig.dpi  # too wide before
    F.fit_titles(fig)
    assert "\n" in t.get_text() and t.get_window_extent(rend).width <= fig.get_figwidth() * fig.dpi
    assert (
        " ".join(t.get_text().split())
        == "Final optimality gap f(x) - f* (lower is better; framed: worst attack per defence)"
    )


def test_titles_fit_their_figures(tmp_path):
    # one defence x one attack, long facet titles: the narrowest figures with the longest titles
    d = tmp_path / "narrow"
    d.mkdir()
    for lr in (0.1, 0.5):
        for mom in (0.0, 0.9):
            for batch in (8, 16):
                name = f"n-{lr}-{mom}-{batch}"
                cfg = config(
                    run={"name": name, "rounds": 20},
                    method={"lr": lr, "momentum": mom, "momentum_form": "heavy_ball_with_a_long_name"},
                    task={"batch_size": batch, "heterogeneity": 0.5 + lr},
                )
                write_trace(d / f"{name}.h5", cfg, final_gap=0.01 + lr, messages=False)
    comp = C.build(d, tmp_path / "cmp")
    assert comp.figures
    for _, fig in comp.figures.values():
        _assert_titles_fit(fig)
    rep = R.build(d / "n-0.1-0.0-8.h5", tmp_path / "rep")
    for info in rep.figures.values():
        _assert_titles_fit(info.figure)


# -- a grid's runs, compared without configuration ---------------------------------------------------
def test_compare_understands_a_grid_sweep(tmp_path):
    runs = G.expand(
        [ROOT / "configs" / "quickstart.toml"], ["aggregator.name=krum,median", "attack.name=alie,ipm"], "1..3"
    )
    out = tmp_path / "runs"
    out.mkdir()
    for r in runs:
        v = r.values
        seed = int(v["run.seed"])
        cfg = config(
            run={"name": r.name, "seed": seed, "rounds": 20},
            aggregator={"name": v["aggregator.name"]},
            attack={"name": v["attack.name"]},
        )
        write_trace(out / f"{r.name}.h5", cfg, seed=seed, final_gap=0.01 * seed, messages=False)
    comp = C.build(out)
    sw = comp.sweep
    assert sw.swept == ["attack.name", "aggregator.name"] and sw.replicates == ["run.seed"]
    assert set(sw.runs["run"]) == {r.name for r in runs}
    assert set(comp.cells["gap"]["n"]) == {3} and len(comp.cells["gap"]) == 4
    assert set(comp.worst["gap"]["worst_run"]) <= {r.name for r in runs if r.values["run.seed"] == "3"}
