"""``byzmpi compare`` on a synthetic sweep whose results are known in advance."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from byzmpi.analysis import compare as C
from byzmpi.analysis import sweep as S
from byzmpi.analysis.markdown import parse_number, parse_tables
from byzmpi.cli import main

from .synth import config, write_trace

RULES = ("mean", "median", "krum")
ATTACKS = ("none", "sign_flip", "gaussian", "alie")
#: the attack each rule suffers most from in this synthetic sweep
WORST = {"mean": "sign_flip", "median": "alie", "krum": "gaussian"}


def planned_gap(rule: str, attack: str, lr: float, seed: int) -> float:
    """Final gap of a synthetic run: rule quality × attack damage × step size, seed noise; the mean
    under the Gaussian attack at lr=0.5, seed 2, diverges."""
    if (rule, attack, lr, seed) == ("mean", "gaussian", 0.5, 2):
        return math.inf
    base = {"mean": 0.01, "median": 0.02, "krum": 0.03}[rule]
    damage = 1.0 if attack == "none" else (8.0 if attack == WORST[rule] else 2.0 + ATTACKS.index(attack) * 0.1)
    return base * damage * (1.0 + 2.0 * (lr == 0.5)) * (1.0 + 0.05 * seed)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    for lr in (0.1, 0.5):
        for seed in (1, 2):
            for rule in RULES:
                for attack in ATTACKS:
                    name = f"{rule}-{attack}-lr{lr}-s{seed}"
                    att = {"name": attack, **({"std": 200.0} if attack == "gaussian" else {})}
                    cfg = config(
                        run={"name": name, "seed": seed, "rounds": 20},
                        aggregator={"name": rule},
                        attack=att,
                        method={"lr": lr},
                    )
                    gap = planned_gap(rule, attack, lr, seed)
                    write_trace(
                        d / f"{name}.h5",
                        cfg,
                        seed=seed,
                        final_gap=gap,
                        final_accuracy=0.95 - min(gap, 0.4),
                        messages=False,
                    )
    return d


def final_gap(path) -> float:
    with h5py.File(path, "r") as f:
        return float(f["eval"]["gap"][-1])


def test_swept_fields_and_labels(sweep_dir):
    comp = C.build(sweep_dir)
    sw = comp.sweep
    # attack.std is set only for gaussian (implied by the name); seeds are replicates
    assert sw.swept == ["attack.name", "method.lr", "aggregator.name"]
    assert sw.other_fields == ["method.lr"] and sw.replicates == ["run.seed"]
    assert sw.defences == list(RULES) and set(sw.attacks) == set(ATTACKS)
    assert [dict(f) for f in sw.facets()] == [{"method.lr": 0.1}, {"method.lr": 0.5}]
    assert comp.metrics == ["gap", "accuracy"]


def test_worst_case_and_ranking_match_direct_reads(sweep_dir):
    comp = C.build(sweep_dir)
    wc = comp.worst["gap"]
    for _, row in wc.iterrows():
        rule, lr = row["defence"], row["method.lr"]
        if (rule, lr) == ("mean", 0.5):
            assert row["worst_attack"] == "gaussian" and row["worst"] == math.inf  # a diverged replicate
            continue
        assert row["worst_attack"] == WORST[rule]
        direct = np.mean([final_gap(sweep_dir / f"{rule}-{WORST[rule]}-lr{lr}-s{s}.h5") for s in (1, 2)])
        assert row["worst"] == pytest.approx(direct, rel=1e-12)
        none = np.mean([final_gap(sweep_dir / f"{rule}-none-lr{lr}-s{s}.h5") for s in (1, 2)])
        assert row["no_attack"] == pytest.approx(none, rel=1e-12)
    # ranking: by worst-case gap, lower first; the diverged setting last
    expected = sorted(
        ((r, lr) for r in RULES for lr in (0.1, 0.5)),
        key=lambda k: (
            np.inf if k == ("mean", 0.5) else np.mean([planned_gap(k[0], WORST[k[0]], k[1], s) for s in (1, 2)])
        ),
    )
    assert list(zip(comp.ranking["defence"], comp.ranking["method.lr"])) == expected
    assert list(comp.ranking["rank"]) == list(range(1, 7))


def test_heatmap_cells_equal_replicate_means(sweep_dir):
    comp = C.build(sweep_dir)
    cells = comp.cells["gap"]
    for _, c in cells.iterrows():
        rule, attack, lr = c["defence"], c["attack"], c["method.lr"]
        vals = [final_gap(sweep_dir / f"{rule}-{attack}-lr{lr}-s{s}.h5") for s in (1, 2)]
        expect = np.inf if not np.isfinite(vals).all() else np.mean(vals)
        assert c["value"] == pytest.approx(expect, rel=1e-12) and c["runs"] == 2


def test_compare_folder_figures_and_markdown(sweep_dir, tmp_path):
    out = tmp_path / "cmp"
    comp = C.build(sweep_dir, out)
    assert {p.name for p in out.iterdir()} >= {
        "compare.md",
        "runs.csv",
        "cells.csv",
        "ranking.csv",
        "heatmap_gap.png",
        "heatmap_accuracy.png",
        "worst_gap.png",
        "curves.png",
    }
    heat = comp.figures["heatmap_gap"][1]
    data_axes = [ax for ax in heat.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in data_axes] == ["method.lr=0.1", "method.lr=0.5"]
    assert len(heat.axes) == 3  # two panels and one shared colorbar
    for ax, lr in zip(data_axes, (0.1, 0.5)):
        assert [t.get_text() for t in ax.get_yticklabels()] == list(RULES)
        texts = [t.get_text() for t in ax.texts]
        assert len(texts) == len(RULES) * len(ATTACKS)
        assert ("diverged" in texts) == (lr == 0.5)
    worst = comp.figures["worst_gap"][1]
    assert len([a for a in worst.axes]) == 2
    curves = comp.figures["curves"][1]
    assert len(curves.axes) == 3 and all(len(ax.lines) == len(RULES) for ax in curves.axes)
    img = imread(out / "heatmap_gap.png")
    assert img[..., :3].std() > 0.05
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 48 and {"defence", "attack", "final_gap", "method.lr"} <= set(runs.columns)
    tables = parse_tables((out / "compare.md").read_text())
    ranking = tables["Ranking by worst-case gap"]
    assert ranking[0]["setting"] == f"{comp.ranking['defence'].iloc[0]}, method.lr=0.1"
    assert parse_number(ranking[0]["worst gap"]) == pytest.approx(comp.ranking["worst_gap"].iloc[0], rel=1e-5)
    assert ranking[-1]["worst gap"] == "inf" and ranking[-1]["setting"] == "mean, method.lr=0.5"
    pivot = {r["defence / attack"]: r for r in tables["method.lr=0.1 (gap)"]}
    direct = np.mean([final_gap(sweep_dir / f"krum-alie-lr0.1-s{s}.h5") for s in (1, 2)])
    assert parse_number(pivot["krum"]["alie"]) == pytest.approx(direct, rel=1e-5)


def test_select_chooses_curves_and_cli(sweep_dir, tmp_path, capsys):
    comp = C.build(sweep_dir, select=["attack.name=alie", "method.lr=0.1", "run.seed=1"])
    assert sorted(comp.curves) == sorted(f"{r}-alie-lr0.1-s1" for r in RULES)
    assert main(["compare", str(sweep_dir), "--metric", "accuracy"]) == 0
    text = capsys.readouterr().out
    assert "swept: attack.name, method.lr, aggregator.name" in text and "ranking by worst-case accuracy" in text
    assert main(["compare", str(sweep_dir), "--select", "nonsense"]) == 2


def test_mirrored_and_implied_fields_are_not_swept():
    runs = pd.DataFrame(
        {
            "run": list("abcd"),
            "clients.byzantine": [1, 1, 2, 2],
            "aggregator.f": [1, 1, 2, 2],
            "aggregator.name": ["krum"] * 4,
            "attack.name": ["gaussian", "alie", "gaussian", "alie"],
            "attack.std": [200.0, np.nan, 200.0, np.nan],
            "run.seed": [0, 0, 0, 0],
            "run.name": list("abcd"),
            "run.trace": list("abcd"),
        }
    )
    assert S.swept_fields(runs) == ["attack.name", "clients.byzantine"]
    runs.loc[2, "attack.std"] = 100.0  # now the std itself varies within gaussian
    sw = S.analyse(runs)
    assert "attack.std" in sw.attack_fields
    assert sorted(set(sw.runs["attack"])) == ["alie", "gaussian(std=100)", "gaussian(std=200)"]


def test_boolean_fields_are_labelled_as_in_toml():
    runs = pd.DataFrame(
        {
            "run": list("abcd"),
            "aggregator.name": ["krum", "krum", "mean", "mean"],
            "attack.name": ["alie"] * 4,
            "method.clip": [False, True, False, True],
            "final_gap": [0.1, 0.2, 0.3, 0.4],
            "status": ["finished"] * 4,
        }
    )
    sw = S.analyse(runs)
    assert [S.facet_title(f) for f in sw.facets()] == ["method.clip=false", "method.clip=true"]
    assert set(sw.runs["setting"]) == {
        "krum, method.clip=false",
        "krum, method.clip=true",
        "mean, method.clip=false",
        "mean, method.clip=true",
    }
    assert sorted(S.select(sw.runs, ["method.clip=true"])["run"]) == ["b", "d"]
    wc = S.worst_case(sw, "gap")
    assert list(wc["setting"]) == [
        "krum, method.clip=false",
        "krum, method.clip=true",
        "mean, method.clip=false",
        "mean, method.clip=true",
    ]
