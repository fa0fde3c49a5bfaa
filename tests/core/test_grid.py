"""Sweep descriptions (byzmpi/grid.py): order, names, seeds syntax, [sweep] tables, grid files and
folders, one-line errors; ``byzmpi grid`` on the command line (no MPI)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from byzmpi import grid as G
from byzmpi.cli import main
from byzmpi.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "quickstart.toml"
SAFE = re.compile(r"^[A-Za-z0-9._+-]+$")


@pytest.fixture()
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "base.toml"
    p.write_text(QUICK.read_text())
    return p


def names(runs: list[G.GridRun]) -> list[str]:
    return [r.name for r in runs]


def test_cartesian_order_last_axis_fastest_and_seeds_innermost(cfg):
    runs = G.expand([cfg], ["aggregator.name=krum,median,trimmed_mean", "attack.name=alie,ipm"], "1..2")
    assert len(runs) == 12 and [r.index for r in runs] == list(range(12))
    combos = [(r.values["aggregator.name"], r.values["attack.name"], r.values["run.seed"]) for r in runs]
    assert combos == [
        (a, b, s) for a in ("krum", "median", "trimmed_mean") for b in ("alie", "ipm") for s in ("1", "2")
    ]
    assert runs[0].name == "quickstart_krum_alie_s1" and runs[-1].name == "quickstart_trimmed_mean_ipm_s2"
    assert runs[3].overrides == [
        "aggregator.name=krum",
        "attack.name=ipm",
        "run.seed=2",
        "run.name=quickstart_krum_ipm_s2",
    ]
    assert runs[3].argv()[:3] == [str(cfg), "--set", "aggregator.name=krum"]


def test_names_unique_stable_and_filesystem_safe(cfg):
    axes = ["method.lr=0.1,0.5,1e-3", 'aggregator.pre=[],["bucketing"]', "method.clip=true,false"]
    a = G.expand([cfg], axes, "1,2,7")
    b = G.expand([cfg], axes, "1,2,7")
    assert names(a) == names(b)  # stable across invocations
    assert len(set(names(a))) == len(a) == 36
    assert all(SAFE.match(n) for n in names(a))
    assert a[0].name == "quickstart_lr0.1_pre-empty_clip-true_s1"
    assert "quickstart_lr1e-3_pre-bucketing_clip-false_s7" in names(a)
    # a run's name does not depend on what else is in the grid
    sub = G.expand([cfg], ["method.lr=0.5,1e-3", 'aggregator.pre=[],["bucketing"]', "method.clip=true,false"], "2,7")
    assert set(names(sub)) <= set(names(a))


def test_one_value_axes_are_not_in_the_name_and_a_lone_run_is_untouched(cfg):
    (one,) = G.expand([cfg], ["aggregator.name=krum"], "3")
    assert one.name == "quickstart" and one.overrides == ["aggregator.name=krum", "run.seed=3"]
    (lone,) = G.expand([cfg], [], None, ["run.rounds=5"])
    assert lone.name == "quickstart" and lone.overrides == ["run.rounds=5"]


def test_set_run_name_is_the_base_and_conflicts_are_errors(cfg):
    runs = G.expand([cfg], ["attack.name=alie,ipm"], None, ["run.name=study", "run.rounds=5"])
    assert names(runs) == ["study_alie", "study_ipm"]
    assert runs[0].overrides == ["run.rounds=5", "attack.name=alie", "run.name=study_alie"]
    with pytest.raises(ConfigError, match="swept by the grid and also set by --set"):
        G.expand([cfg], ["attack.name=alie,ipm"], None, ["attack.name=none"])
    with pytest.raises(ConfigError, match="seeds given twice"):
        G.expand([cfg], ["run.seed=1,2"], "1..3")


@pytest.mark.parametrize(
    ("spec", "seeds"),
    [("1..5", [1, 2, 3, 4, 5]), ("1,2,7", [1, 2, 7]), ("1..3,10", [1, 2, 3, 10]), ("4", [4]), (" 0 .. 2 ", [0, 1, 2])],
)
def test_seed_specs(spec, seeds):
    assert G.parse_seeds(spec).values == [str(s) for s in seeds]


@pytest.mark.parametrize("spec", ["", "1..", "a", "1,,2", "5..1", "1,1", "1.5", "1..x"])
def test_bad_seed_specs(spec):
    with pytest.raises(ConfigError) as e:
        G.parse_seeds(spec)
    assert "\n" not in e.value.line() and e.value.line().startswith("byzmpi: config error: --seeds")


@pytest.mark.parametrize(
    "text",
    ["aggregator.name=", "aggregator.name", "aggregator=krum,median", "a.b=1,,2", "=krum", "a..b=1", "run.name=a,b"],
)
def test_malformed_grid_is_one_line_config_error_exit_2(text, cfg, capsys):
    with pytest.raises(ConfigError):
        G.parse_axis(text)
    assert main(["grid", str(cfg), "--grid", text]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"byzmpi: config error: --grid {text}") and "\n" not in err


def test_values_split_outside_brackets_and_quotes_and_ranges():
    assert G.split_values('a,[1, 2],"x,y"') == ["a", "[1, 2]", '"x,y"']
    axis = G.parse_axis("clients.byzantine=0..2,4")
    assert axis.values == ["0", "1", "2", "4"]
    assert G.parse_axis('task.name="syn,thetic",digits').labels == ["syn,thetic", "digits"]


def test_sweep_table_in_the_config(cfg):
    cfg.write_text(
        cfg.read_text()
        + '\n[sweep]\n"aggregator.name" = ["krum", "median"]\nattack.name = ["alie", "ipm"]\n'
        + 'method.lr = [0.1, 0.5]\nseeds = "1..2"\n'
    )
    runs = G.expand([cfg])
    assert len(runs) == 16
    assert runs[0].name == "quickstart_krum_alie_lr0.1_s1"
    assert runs[0].overrides[:4] == ['aggregator.name="krum"', 'attack.name="alie"', "method.lr=0.1", "run.seed=1"]
    # --grid replaces the table's axis in place, --seeds the table's seeds
    runs = G.expand([cfg], ["attack.name=none,alie,ipm"], "3,4,5")
    assert len(runs) == 2 * 3 * 2 * 3 and runs[0].name == "quickstart_krum_none_lr0.1_s3"
    # seeds as a list
    cfg.write_text(cfg.read_text().replace('seeds = "1..2"', "seeds = [1, 2, 7]"))
    assert [r.values["run.seed"] for r in G.expand([cfg])[:3]] == ["1", "2", "7"]


def test_sweep_table_is_removed_before_the_config_parser(cfg):
    pytest.importorskip("torch")
    cfg.write_text(cfg.read_text() + '\n[sweep]\n"aggregator.name" = ["krum", "median"]\nseeds = [1, 2]\n')
    runs = G.expand([cfg])
    c = runs[3].load()
    assert (c.aggregator.name, c.run.seed, c.run.name) == ("median", 2, "quickstart_median_s2")
    assert main(["validate", str(cfg)]) == 0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('"aggregator.name" = "krum"', "non-empty list"),
        ('"aggregator.name" = []', "non-empty list"),
        ("krum = [1, 2]", "section.key"),
        ('seeds = "x"', "seeds are integers"),
        ('"aggregator.name" = ["krum", "krum"]', "given twice"),
    ],
)
def test_bad_sweep_tables(cfg, table, message):
    cfg.write_text(cfg.read_text() + f"\n[sweep]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        G.expand([cfg])


def test_grid_file_keeps_its_names_and_takes_axes(tmp_path, cfg):
    grid = tmp_path / "grid.txt"
    grid.write_text(
        "# aggregator x attack\n"
        f"{cfg} --set aggregator.name=median\n"
        "\n"
        f"{cfg} --set 'aggregator.name=trimmed_mean' --set attack.name=ipm\n"
        "   # an indented comment\n"
        f'{cfg} --set=aggregator.name=mean --set "run.name=own"\n'
    )
    runs = G.expand([grid], [], None, ["run.rounds=40"])
    assert names(runs) == ["grid_0", "grid_1", "own"]
    assert runs[1].overrides == ["aggregator.name=trimmed_mean", "attack.name=ipm", "run.rounds=40", "run.name=grid_1"]
    assert names(G.expand([grid], [], None, ["run.name=fold"])) == ["fold_0", "fold_1", "own"]
    runs = G.expand([grid], [], "1,2")
    assert names(runs) == ["grid_0_s1", "grid_0_s2", "grid_1_s1", "grid_1_s2", "own_s1", "own_s2"]
    with pytest.raises(ConfigError, match="its grid line"):
        G.expand([grid], ["aggregator.name=krum,mean"])
    (tmp_path / "bad.txt").write_text(f"{cfg} --fresh\n")
    with pytest.raises(ConfigError, match="bad.txt run 0: unexpected '--fresh'"):
        G.expand([tmp_path / "bad.txt"])


def test_folder_of_configs(tmp_path, cfg):
    d = tmp_path / "grid.d"
    d.mkdir()
    for n in ("b_median", "a_mean"):
        (d / f"{n}.toml").write_text(cfg.read_text())
    (d / "notes.txt").write_text("not a config\n")
    runs = G.expand([d])
    assert names(runs) == ["grid.d_0", "grid.d_1"] and [r.config.name for r in runs] == ["a_mean.toml", "b_median.toml"]
    assert names(G.expand([d], [], None, ["run.name=fold"])) == ["fold_0", "fold_1"]


def test_colliding_names_get_a_stable_hash(tmp_path, cfg):
    other = tmp_path / "other"
    other.mkdir()
    (other / "base.toml").write_text(cfg.read_text())
    runs = G.expand([cfg, other / "base.toml"], ["attack.name=alie,ipm"])
    assert len(set(names(runs))) == 4
    assert all(re.fullmatch(r"quickstart_(alie|ipm)-[0-9a-f]{8}", n) for n in names(runs))
    assert names(runs) == names(G.expand([cfg, other / "base.toml"], ["attack.name=alie,ipm"]))
    assert runs[0].overrides[-1] == f"run.name={runs[0].name}"


def test_index_picks_one_run(cfg):
    runs = G.expand([cfg], ["attack.name=alie,ipm"], "1..3")
    assert G.pick(runs, 4, "x") == [runs[4]]
    with pytest.raises(ConfigError, match="6, but x has 6 runs"):
        G.pick(runs, 6, "x")


def test_byzmpi_grid_command(cfg, capsys):
    base = [
        "grid",
        str(cfg),
        "--grid",
        "aggregator.name=krum,median",
        "--grid",
        "attack.name=alie,ipm",
        "--seeds",
        "1..5",
    ]
    assert main([*base, "--count"]) == 0
    assert capsys.readouterr().out.strip() == "20"
    assert main([*base, "--index", "7"]) == 0
    index, name, command = capsys.readouterr().out.rstrip("\n").split("\t")
    assert (index, name) == ("7", "quickstart_krum_ipm_s3")
    assert shlex.split(command) == G.expand([cfg], base[3:7:2], "1..5")[7].argv()
    assert main([*base, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == names(
        G.expand([cfg], ["aggregator.name=krum,median", "attack.name=alie,ipm"], "1..5")
    )
    assert rows[0]["values"] == {"aggregator.name": "krum", "attack.name": "alie", "run.seed": "1"}
    assert main([*base, "--names"]) == 0
    assert capsys.readouterr().out.split() == [r["name"] for r in rows]


def test_byzmpi_grid_runs_without_torch_or_mpi(cfg):
    code = (
        "import sys; from byzmpi.cli import main; rc = main(['grid', sys.argv[1], '--seeds', '1..3', '--count']); "
        "assert 'torch' not in sys.modules and 'mpi4py' not in sys.modules, sorted(sys.modules); sys.exit(rc)"
    )
    res = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "3"


def test_unsafe_bases_are_sanitised_but_a_lines_own_name_is_kept(tmp_path, cfg):
    cfg.write_text(cfg.read_text().replace('name = "quickstart"', 'name = "my run"', 1))
    assert names(G.expand([cfg], ["attack.name=alie,ipm"])) == ["my-run_alie", "my-run_ipm"]
    assert names(G.expand([cfg], ["attack.name=alie,ipm"], None, ["run.name=a b"])) == ["a-b_alie", "a-b_ipm"]
    (lone,) = G.expand([cfg])
    assert lone.name == "my run" and lone.overrides == []


def test_grid_check_names_the_failing_run(cfg, capsys):
    pytest.importorskip("torch")
    assert main(["grid", str(cfg), "--grid", "aggregator.name=median,no_such_rule", "--check", "--count"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("byzmpi: config error: run 1 (quickstart_no_such_rule): ") and "\n" not in err
    assert main(["grid", str(cfg), "--grid", "aggregator.name=median,trimmed_mean", "--check", "--count"]) == 0
    assert capsys.readouterr().out.strip() == "2"
