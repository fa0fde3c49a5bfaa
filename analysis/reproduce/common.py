"""Shared plumbing of the reproduction scripts (analysis/reproduce/tX_*.py).

* configs: a base TOML from configs/paper/ plus per-variant overrides (``{"method.lr": 0.1}``),
  written out as standalone TOML files (committed next to the results, so a run can be repeated
  with ``byzmpi run -n P FILE``);
* one batched MPI job per sweep (``byzmpi run -n P A.toml B.toml ...``: the ranks pay the torch
  import once), with a timeout that kills the whole process group, and a log file;
* trace reading through ``byzmpi.analysis.read_trace`` and small plotting/table helpers.

Nothing here imports mpi4py or byzmpi's runtime: the scripts only talk to the venv's ``byzmpi``.
"""

from __future__ import annotations

import copy
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from byzmpi.launch import run_session

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
BYZMPI = Path(sys.executable).parent / "byzmpi"
if not BYZMPI.exists():  # running from a different interpreter: use the project's venv
    BYZMPI = ROOT / ".venv" / "bin" / "byzmpi"
CONFIGS = ROOT / "configs" / "paper"
RESULTS = ROOT / "analysis" / "results"
A9A = ROOT / "data" / "a9a"  # shipped with the repository (data/README.md)

SECTION_ORDER = ("run", "clients", "task", "method", "compressor", "aggregator", "attack", "checkpoint", "debug")


# ---- configs ------------------------------------------------------------------------------------
def load_toml(path: str | Path) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def with_overrides(base: Mapping, overrides: Mapping[str, Any]) -> dict:
    """A deep copy of ``base`` with ``{"section.key": value}`` (or ``section.sub.key``) applied;
    a value of None removes the key."""
    cfg = copy.deepcopy(dict(base))
    for dotted, value in overrides.items():
        path = dotted.split(".")
        node = cfg
        for key in path[:-1]:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return cfg


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def dump_toml(cfg: Mapping, header: str = "") -> str:
    """A config dict as TOML: one [section] per top-level table, sub-tables inline."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    order = [s for s in SECTION_ORDER if s in cfg] + [s for s in cfg if s not in SECTION_ORDER]
    for section in order:
        if lines:
            lines.append("")
        lines.append(f"[{section}]")
        for key, value in cfg[section].items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def rebase_inputs(cfg: Mapping, src: Path, dst: Path) -> dict:
    """``cfg`` (read from a file in folder ``src``) with its relative input paths (``task.path``,
    ``run.plugins`` files) rewritten for a file in folder ``dst``: inputs resolve relative to the
    config's folder (docs/design.md, "Data paths"). Relative inside the repository, absolute outside
    it; a path that does not exist from ``src`` (e.g. one meant for ``$BYZMPI_DATA``) is kept."""

    def rebase(value: str) -> str:
        path = Path(value).expanduser()
        if path.is_absolute() or not (src / path).exists():
            return value
        target = (src / path).resolve()
        if dst.resolve().is_relative_to(ROOT) and target.is_relative_to(ROOT):
            return os.path.relpath(target, dst.resolve())
        return str(target)

    out = copy.deepcopy(dict(cfg))
    task, run = out.get("task", {}), out.get("run", {})
    if isinstance(task.get("path"), str):
        task["path"] = rebase(task["path"])
    if isinstance(run.get("plugins"), list):
        run["plugins"] = [rebase(p) if isinstance(p, str) and p.endswith(".py") else p for p in run["plugins"]]
    return out


def write_variants(
    base: str | Path | Mapping,
    variants: Sequence[tuple[str, Mapping[str, Any]]],
    config_dir: Path,
    trace_dir: Path,
    header: str = "",
) -> list[Path]:
    """One TOML per (name, overrides) in ``config_dir``; each traces to ``trace_dir/NAME.h5``."""
    base_cfg = load_toml(base) if not isinstance(base, Mapping) else base
    if not isinstance(base, Mapping):
        base_cfg = rebase_inputs(base_cfg, Path(base).parent, config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    trace_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, overrides in variants:
        trace = (
            os.path.relpath(trace_dir / f"{name}.h5", ROOT)
            if trace_dir.is_relative_to(ROOT)
            else str(trace_dir / f"{name}.h5")
        )
        cfg = with_overrides(base_cfg, {**overrides, "run.name": name, "run.trace": trace, "run.progress": "none"})
        path = config_dir / f"{name}.toml"
        text = dump_toml(
            cfg,
            header
            + ("\n" if header else "")
            + f"variant {name}: "
            + (", ".join(f"{k}={v}" for k, v in overrides.items()) or "the base config"),
        )
        path.write_text(text)
        paths.append(path)
    return paths


# ---- running ------------------------------------------------------------------------------------
def run_batch(
    configs: Sequence[Path], ranks: int, timeout: float, log: Path | None = None, extra: Sequence[str] = ()
) -> float:
    """``byzmpi run -n RANKS CONFIGS...`` in one MPI job (cwd = repo root); kills the process
    group at ``timeout``. Returns the wall time; raises SystemExit on failure or timeout."""
    cmd = [str(BYZMPI), "run", "-n", str(ranks), *(os.path.relpath(p, ROOT) for p in configs), *extra]
    print(
        f"[reproduce] {len(configs)} config(s) on {ranks} ranks, timeout {timeout:.0f} s"
        + (f", log {log}" if log else ""),
        flush=True,
    )
    out = open(log, "w") if log else None
    try:
        res = run_session(cmd, timeout=timeout, cwd=ROOT, capture=False, log=out)
    finally:
        if out:
            out.close()
    if res.returncode is None:
        raise SystemExit(f"[reproduce] timed out after {timeout:.0f} s")
    if res.returncode != 0:
        raise SystemExit(
            f"[reproduce] byzmpi run failed with exit status {res.returncode}" + (f" (see {log})" if log else "")
        )
    print(f"[reproduce] done in {res.seconds:.0f} s", flush=True)
    return res.seconds


def finished(trace: Path, config: Path | None = None) -> bool:
    """The trace exists and its run finished; with ``config``, also with that config's rounds and seed
    (a finished trace of a shorter smoke run, ``--rounds 20``, is not the run the config asks for)."""
    try:
        import json

        import h5py

        with h5py.File(trace, "r") as f:
            if str(f.attrs.get("status", "")) != "finished":
                return False
            if config is None:
                return True
            want = load_toml(config).get("run", {})
            got = json.loads(f.attrs["config"]).get("run", {})
            return int(f.attrs.get("rounds_done", -1)) == int(want.get("rounds", -2)) and int(
                got.get("seed", -1)
            ) == int(want.get("seed", -2))
    except (OSError, KeyError, ValueError):
        return False


def run_missing(
    configs: Sequence[Path],
    traces: Sequence[Path],
    ranks: int,
    timeout: float,
    log: Path | None = None,
    only_missing: bool = False,
) -> None:
    """``run_batch`` of every config, or with ``only_missing`` of those whose trace is not a finished run."""
    todo = [c for c, t in zip(configs, traces) if not (only_missing and finished(t, c))]
    if not todo:
        print("[reproduce] every trace is already there", flush=True)
        return
    run_batch(todo, ranks, timeout, log)


# ---- reading ------------------------------------------------------------------------------------
def read(path: str | Path, messages: bool = False):
    """A trace as ``byzmpi.analysis.TraceData`` (rounds/evals DataFrames, attrs, config)."""
    from byzmpi.analysis import read_trace

    return read_trace(path, messages=messages)


def floats_per_client_round(rounds) -> float:
    """Mean uplink float32 values per sampled client per round: bytes_up / sampled / 4."""
    r = rounds[rounds["sampled"] > 0]
    return float((r["bytes_up"] / r["sampled"] / 4.0).mean())


def majority_rounds(rounds) -> int:
    """Rounds where sampled Byzantines were a strict majority of the sample (oracle)."""
    return int((2 * rounds["byzantine"] > rounds["sampled"]).sum())


def fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a" if x is None or math.isnan(x) else ("inf" if x > 0 else "-inf")
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def md_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    rows = list(rows)
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |")
    return "\n".join(out)


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 6.0, height: float = 4.2):
    """A headless matplotlib Figure with a grid of axes (no pyplot)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, path: Path) -> Path:
    from byzmpi.analysis.figures import save

    return save(fig, path)


def parse_args(doc: str, argv: list[str] | None, *, ranks: int, timeout: float):
    """The command line every reproduction script shares."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=ranks, help="MPI ranks (server + hosts)")
    parser.add_argument("--timeout", type=float, default=timeout, help="seconds before the MPI job is killed")
    parser.add_argument("--no-run", action="store_true", help="only re-read existing traces and redraw")
    parser.add_argument("--rounds", type=int, default=None, help="override run.rounds for every variant")
    parser.add_argument(
        "--only-missing", action="store_true", help="run only the variants whose trace is missing or unfinished"
    )
    return parser.parse_args(argv)


def run_variants(
    base: str | Path | Mapping,
    variants: Sequence[tuple[str, Mapping[str, Any]]],
    out: Path,
    traces: Path,
    args,
    *,
    header: str,
    messages: bool = False,
) -> dict:
    """Write the variants' configs under ``out/configs``, run them in one MPI job (unless
    ``--no-run``; only the unfinished ones with ``--only-missing``), and read every trace."""
    configs = write_variants(base, variants, out / "configs", traces, header=header)
    paths = [traces / f"{name}.h5" for name, _ in variants]
    if not args.no_run:
        run_missing(configs, paths, args.ranks, args.timeout, traces / "log.txt", args.only_missing)
    return {name: read(path, messages=messages) for (name, _), path in zip(variants, paths)}


def write_outputs(out: Path, table_md: str, meta: Mapping[str, Any], rows: Any) -> None:
    """``table.md`` and ``summary.json`` next to the figure; the table is printed too."""
    import json

    (out / "table.md").write_text(table_md)
    (out / "summary.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1))
    print(table_md)


# ---- seeds, statistics, bands and computed verdicts --------------------------------------------
SEEDS_MALINOVSKY = (1, 2, 3)  # Malinovsky et al. (T3-T6): 3 seeds
SEEDS_ROSDHB = (1, 2, 3, 4, 5)  # RoSDHB / DASHA (T7-T9): 5 seeds


def seeded(variants: Sequence[tuple[str, Mapping[str, Any]]], seeds: Sequence[int]) -> list[tuple[str, dict]]:
    """Every variant once per seed: ``NAME_sSEED`` with ``run.seed = SEED`` (data split, sampling,
    attack noise and initialisation all derive from it)."""
    return [(f"{name}_s{s}", {**ov, "run.seed": int(s)}) for name, ov in variants for s in seeds]


def by_variant(traces: Mapping[str, Any]) -> dict[str, list]:
    """``{"NAME_sSEED": trace}`` grouped as ``{"NAME": [trace per seed, in seed order]}``."""
    out: dict[str, list] = {}
    for key, t in traces.items():
        name, _, seed = key.rpartition("_s")
        if not name or not seed.isdigit():
            name = key
        out.setdefault(name, []).append(t)
    return out


def stats(values: Iterable[float]) -> dict:
    """mean, std (ddof = 1; 0 for one value), min, max and n of the finite values; ``n_nonfinite``
    counts the others (a diverged seed is reported, not averaged)."""
    import numpy as np

    v = np.asarray(list(values), float)
    ok = v[np.isfinite(v)]
    if ok.size == 0:
        return {
            "mean": float("nan"),
            "std": float("nan"),
            "min": float("nan"),
            "max": float("nan"),
            "n": 0,
            "n_nonfinite": int(v.size),
        }
    return {
        "mean": float(ok.mean()),
        "std": float(ok.std(ddof=1)) if ok.size > 1 else 0.0,
        "min": float(ok.min()),
        "max": float(ok.max()),
        "n": int(ok.size),
        "n_nonfinite": int(v.size - ok.size),
    }


def pm(values: Iterable[float], digits: int = 3, log: bool = False) -> str:
    """``mean ± std (n = k)``; with ``log`` the geometric mean and the min-max range (for quantities
    spanning orders of magnitude, e.g. a final optimality gap)."""
    import numpy as np

    v = np.asarray(list(values), float)
    s = stats(v)
    extra = f", {s['n_nonfinite']} non-finite" if s["n_nonfinite"] else ""
    if s["n"] == 0:
        return f"n/a (n = 0{extra})"
    if log and s["min"] > 0:
        g = float(np.exp(np.log(v[np.isfinite(v)]).mean()))
        return f"{fmt(g, digits)} [{fmt(s['min'], 2)}, {fmt(s['max'], 2)}] (geo. mean, n = {s['n']}{extra})"
    return f"{fmt(s['mean'], digits)} ± {fmt(s['std'], 2)} (n = {s['n']}{extra})"


def stack(runs: Sequence[Any], column: str, x: str = "round", frame: str = "evals"):
    """(x, Y): the ``column`` of each run's ``frame`` (evals or rounds) on the x values all runs share,
    Y of shape (runs, len(x))."""
    import numpy as np

    frames = [getattr(t, frame) for t in runs]
    common = sorted(set.intersection(*(set(f[x].to_numpy().tolist()) for f in frames)))
    xs = np.asarray(common, float)
    ys = np.stack([f.set_index(x).loc[common, column].to_numpy(float) for f in frames])
    return xs, ys


def band(ax, xs, ys, label: str | None = None, color=None, log: bool = False, **kw):
    """Mean line (geometric mean with ``log``) and a min-max band over the runs (rows of ``ys``)."""
    import numpy as np

    ys = np.asarray(ys, float)
    with np.errstate(all="ignore"):
        if log:
            pos = np.where(ys > 0, ys, np.nan)
            mid = np.exp(np.nanmean(np.log(pos), axis=0))
            lo, hi = np.nanmin(pos, axis=0), np.nanmax(pos, axis=0)
        else:
            mid, lo, hi = np.nanmean(ys, axis=0), np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)
    (line,) = ax.plot(xs, mid, label=(f"{label} (n = {len(ys)})" if label else None), color=color, **kw)
    ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.18, lw=0)
    return line


def log_slope(x, y, per: float = 1000.0, tail: float = 0.5) -> float:
    """Least-squares slope of log10(y) per ``per`` units of x over the last ``tail`` of the x range
    (finite positive y only); negative = decreasing. NaN with fewer than 3 points."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size == 0:
        return float("nan")
    ok = np.isfinite(y) & (y > 0) & (x >= x.max() - tail * (x.max() - x.min()))
    if ok.sum() < 3:
        return float("nan")
    return float(np.polyfit(x[ok], np.log10(y[ok]), 1)[0] * per)


def first_at(x, y, level: float, above: bool = True) -> float:
    """The first x where y >= level (``above``) or y <= level; NaN when never."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    hit = np.flatnonzero(np.isfinite(y) & ((y >= level) if above else (y <= level)))
    return float(x[hit[0]]) if hit.size else float("nan")


class Verdict:
    """A paper's claim checked against byzmpi's traces with a stated criterion.

    ``holds`` is computed by the caller from the numbers (a bool, or None when the criterion could
    not be evaluated, e.g. a missing trace); the text is never typed as an outcome."""

    def __init__(self, target: str, claim: str, criterion: str, measured: str, holds: bool | None):
        self.target, self.claim, self.criterion, self.measured = target, claim, criterion, measured
        self.holds = None if holds is None else bool(holds)

    @property
    def word(self) -> str:
        return {True: "**holds**", False: "**does not hold**", None: "not evaluated"}[self.holds]

    def as_dict(self) -> dict:
        return {
            "target": self.target,
            "claim": self.claim,
            "criterion": self.criterion,
            "measured": self.measured,
            "holds": self.holds,
        }


def verdict_table(verdicts: Sequence[Verdict]) -> str:
    """The verdicts as a markdown table (claim, criterion, measured, verdict)."""
    return md_table(
        [
            {
                "claim (paper)": v.claim,
                "criterion (computed from the traces)": v.criterion,
                "byzmpi (mean ± std over seeds)": v.measured,
                "verdict": v.word,
            }
            for v in verdicts
        ],
        ["claim (paper)", "criterion (computed from the traces)", "byzmpi (mean ± std over seeds)", "verdict"],
    )


def write_verdicts(out: Path, table_md: str, meta: Mapping[str, Any], rows: Any, verdicts: Sequence[Verdict]) -> None:
    """``write_outputs`` with the verdicts in ``summary.json`` (``verdicts``: claim, criterion,
    measured, holds) and a one-line count at the end of ``table.md``."""
    import json

    n_hold = sum(v.holds is True for v in verdicts)
    n_not = sum(v.holds is False for v in verdicts)
    table_md = (
        table_md.rstrip("\n") + f"\n\nVerdicts: {n_hold} hold, {n_not} do not hold, "
        f"{len(verdicts) - n_hold - n_not} not evaluated (computed by the script from the traces).\n"
    )
    (out / "table.md").write_text(table_md)
    (out / "summary.json").write_text(
        json.dumps({"meta": meta, "verdicts": [v.as_dict() for v in verdicts], "runs": rows}, indent=1, default=float)
    )
    print(table_md)


# ---- the shared skeleton of the seeded target scripts -------------------------------------------
def run_target(
    doc: str,
    argv: list[str] | None,
    base: Path,
    out: Path,
    traces_dir: Path,
    make_variants,
    header: str,
    *,
    ranks: int = 3,
    timeout: float = 1800,
    messages: bool = False,
):
    """Parse the shared command line, write ``make_variants(args.rounds)`` as configs under
    ``out/configs`` (inputs rebased from ``base``'s folder), run them in one MPI job, read the
    traces. Returns ``(args, traces, groups, cfg)``: ``groups`` = :func:`by_variant` of the traces,
    ``cfg`` = the first trace's resolved config."""
    args = parse_args(doc, argv, ranks=ranks, timeout=timeout)
    base_cfg = rebase_inputs(load_toml(base), base.parent, out / "configs")
    traces = run_variants(base_cfg, make_variants(args.rounds), out, traces_dir, args, header=header, messages=messages)
    return args, traces, by_variant(traces), next(iter(traces.values())).config


def wall_seconds(traces: Mapping[str, Any]) -> float:
    """The summed run time of every trace's segment (trace attr ``wall_seconds``; start-up excluded)."""
    return float(sum(float(t.attrs.get("wall_seconds", float("nan"))) for t in traces.values()))


def seeds_of(runs: Sequence[Any]) -> list[int]:
    return [int(t.config["run"]["seed"]) for t in runs]


def gap_columns(runs: Sequence[Any], column: str = "gap") -> dict[str, list[float]]:
    """Per seed: start, final, smallest and largest value of the eval ``column``, final/start, orders of
    magnitude log10(start/min) and the log10 slope per 1000 rounds over the last half (:func:`log_slope`)."""
    import numpy as np

    out: dict[str, list[float]] = {
        k: [] for k in ("start", "final", "min", "max", "final_over_start", "orders", "slope_per_1000")
    }
    for t in runs:
        y = t.evals[column].to_numpy(float)
        x = t.evals["round"].to_numpy(float)
        fin = np.where(np.isfinite(y), y, np.nan)
        lo = float(np.nanmin(fin)) if np.isfinite(fin).any() else float("nan")
        out["start"].append(float(y[0]))
        out["final"].append(float(y[-1]))
        out["min"].append(lo)
        out["max"].append(float(np.nanmax(fin)) if np.isfinite(fin).any() else float("nan"))
        out["final_over_start"].append(float(y[-1] / y[0]))
        out["orders"].append(float(np.log10(y[0] / lo)) if lo > 0 else float("inf"))
        out["slope_per_1000"].append(log_slope(x, y))
    return out


def report(
    title: str,
    paragraphs: Sequence[str],
    body: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    verdicts: Sequence[Verdict],
    notes: Sequence[str] = (),
) -> str:
    """A target's table.md: ``# title``, the setup paragraphs, the results table, notes, and the computed
    verdicts (``write_verdicts`` appends the count line)."""
    lines = [f"# {title}", ""]
    for p in paragraphs:
        lines += [p, ""]
    lines += [md_table(body, columns), ""]
    for n in notes:
        lines += [n, ""]
    lines += ["## Verdicts (computed)", "", verdict_table(verdicts)]
    return "\n".join(lines) + "\n"


def style_axes(ax, xlabel: str, ylabel: str, title: str, *, log: bool = True, legend_size: int = 7, **legend) -> None:
    """Labels, title, grid and legend of one panel (log y-axis by default)."""
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=legend_size, **legend)


def on_common_x(xs: Sequence[Any], ys: Sequence[Any], points: int = 200, log_x: bool = False):
    """Runs whose x differs per seed (e.g. uplink bits with random full rounds) resampled onto one
    grid over the x range they all cover (linear interpolation, in log10 y for positive y): (grid, Y)."""
    import numpy as np

    xs = [np.asarray(x, float) for x in xs]
    lo = max(float(x[0]) for x in xs)
    hi = min(float(x[-1]) for x in xs)
    if log_x:
        lo = max(lo, max(float(x[x > 0][0]) if (x > 0).any() else hi for x in xs))
        grid = np.logspace(np.log10(lo), np.log10(hi), points) if hi > lo > 0 else np.asarray([hi])
    else:
        grid = np.linspace(lo, hi, points)
    rows = []
    for x, y in zip(xs, ys):
        y = np.asarray(y, float)
        with np.errstate(all="ignore"):
            ly = np.where(y > 0, np.log10(y), np.nan)
        rows.append(10 ** np.interp(grid, np.asarray(x, float), ly))
    return grid, np.stack(rows)
