"""``byzmpi compare TRACES... --out DIR``: a sweep's heatmaps (defence × attack, one panel per
combination of the other swept fields), worst case over attacks per defence, a ranking of the
settings by worst-case result, and overlaid curves of chosen runs.

Writes ``compare.md`` linking the PNGs, ``runs.csv`` (one row per trace), ``cells.csv`` and
``ranking.csv``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from . import metrics as M
from . import sweep as S
from .figures import BYZANTINE, SEQUENTIAL, category_style, save
from .load import TraceData, load_runs, read_traces
from .markdown import fmt, table

MAX_FACETS = 12
MAX_CURVES = 16
BANDS = ("minmax", "std", "none")
BAND_TEXT = {"minmax": "min-max over replicates", "std": "mean ± one standard deviation", "none": "no band"}


@dataclass
class Comparison:
    sweep: S.Sweep
    metrics: list[str]
    cells: dict[str, pd.DataFrame] = field(default_factory=dict)
    worst: dict[str, pd.DataFrame] = field(default_factory=dict)
    ranking: pd.DataFrame = field(default_factory=pd.DataFrame)
    curves: list[str] = field(default_factory=list)
    curve_groups: list[tuple[str, list[str]]] = field(default_factory=list)
    default_curves: bool = True
    band: str = "minmax"
    last_k: int = 1
    figures: dict[str, tuple[Path, Figure]] = field(default_factory=dict)
    markdown: str = ""


def default_metrics(runs: pd.DataFrame) -> list[str]:
    """Gap first when the traces know f*, then accuracy."""
    has_gap = "final_gap" in runs and bool(np.isfinite(runs["final_gap"].to_numpy(dtype=float)).any())
    return ["gap", "accuracy"] if has_gap else ["accuracy", "loss"]


# -- figures -------------------------------------------------------------------------------------
def color_range(values: np.ndarray, metric: str, reach: float = 3.0) -> tuple[Normalize, str]:
    """Colour scale for a heatmap: log when a loss-like metric spans decades; clipped to the
    central values ± ``reach`` times their 10-90% spread, so one diverged cell does not flatten
    every other colour (cells beyond saturate; the numbers are printed). Returns (norm, extend)."""
    v = values[np.isfinite(values)]
    if not len(v):
        return Normalize(0, 1), "neither"
    lo, hi = float(v.min()), float(v.max())
    log = metric != "accuracy" and lo > 0 and hi / lo > 20
    t = np.log10(v) if log else v
    q1, q9 = np.quantile(t, [0.1, 0.9])
    spread = max(q9 - q1, 0.5 if log else 1e-12)
    tlo, thi = max(float(t.min()), q1 - reach * spread), min(float(t.max()), q9 + reach * spread)
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[
        (tlo > t.min(), thi < t.max())
    ]
    if log:
        return LogNorm(10**tlo, 10**thi), extend
    if tlo == thi:
        tlo, thi = tlo - 0.5 * abs(tlo or 1), thi + 0.5 * abs(thi or 1)
    return Normalize(tlo, thi), extend


def _text_color(rgba: tuple[float, ...]) -> str:
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def heatmaps(sweep: S.Sweep, cell_table: pd.DataFrame, metric: str) -> Figure:
    """Final ``metric`` over defence × attack, one panel per facet, colours shared across panels
    (cividis, colour-blind safe: bright = good); cells print the replicate mean (± std when there
    are several); black cells diverged, a frame marks each row's worst attack."""
    facets = sweep.facets()[:MAX_FACETS]
    mats = [S.pivot(cell_table, sweep, f) for f in facets]
    n_att = max(m.shape[1] for m in mats)
    n_def = max(m.shape[0] for m in mats)
    ncols = min(len(facets), 3 if n_att <= 5 else 2)
    nrows = math.ceil(len(facets) / ncols)
    fig = Figure(figsize=(ncols * (1.25 * n_att + 3.0) + 1.2, nrows * (0.55 * n_def + 1.9)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(facets) :]:
        fig.delaxes(ax)
    allv = np.concatenate([m.to_numpy(dtype=float).ravel() for m in mats])
    norm, extend = color_range(allv, metric)
    cmap = matplotlib_cmap(SEQUENTIAL if M.HIGHER_IS_BETTER[metric] else f"{SEQUENTIAL}_r")
    im = None
    for ax, facet, mat in zip(axes, facets, mats):
        v = mat.to_numpy(dtype=float)
        sd = S.pivot(cell_table, sweep, facet, "std").reindex(index=mat.index, columns=mat.columns).to_numpy(float)
        shown = np.ma.masked_invalid(v)
        im = ax.imshow(shown, cmap=cmap, norm=norm, aspect="auto")
        bad = S.badness(v.ravel(), metric).reshape(v.shape)
        for i in range(v.shape[0]):
            for j in range(v.shape[1]):
                x = v[i, j]
                if np.isnan(x):
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, color="0.85"))
                    ax.text(j, i, "not run", ha="center", va="center", fontsize=8, color="0.3")
                elif np.isinf(x):
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, color="black"))
                    ax.text(j, i, "diverged", ha="center", va="center", fontsize=8, color="white")
                else:
                    spread = f"\n±{fmt(sd[i, j], 2)}" if np.isfinite(sd[i, j]) else ""
                    ax.text(
                        j,
                        i,
                        fmt(x, 3) + spread,
                        ha="center",
                        va="center",
                        fontsize=8 if spread else 9,
                        color=_text_color(cmap(norm(x))),
                    )
            row = np.where(np.isnan(v[i]), -np.inf, bad[i])
            if np.isfinite(row).any() or np.isinf(row).any():
                j = int(np.argmax(row))
                ax.add_patch(Rectangle((j - 0.47, i - 0.47), 0.94, 0.94, fill=False, lw=2.0, ec="black"))
        ax.set_xticks(range(v.shape[1]), list(mat.columns), rotation=30, ha="right")
        ax.set_yticks(range(v.shape[0]), list(mat.index))
        ax.set_xlabel("attack")
        ax.set_ylabel("defence (aggregator)")
        ax.set_title(facet_title_short(facet), fontsize=10)
    if im is not None:
        fig.colorbar(
            im, ax=list(axes[: len(facets)]), label=f"final {M.METRIC_LABELS[metric]}", shrink=0.9, extend=extend
        )
    n = cell_table["runs"].max() if len(cell_table) else 1
    fig.suptitle(
        f"Final {M.METRIC_LABELS[metric]} ({'higher' if M.HIGHER_IS_BETTER[metric] else 'lower'} is "
        "better; framed: worst attack per defence" + (f"; mean ± std over up to {n} replicates" if n > 1 else "") + ")"
    )
    return fig


def matplotlib_cmap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name]


def facet_title_short(facet: tuple[Any, ...]) -> str:
    return S.facet_title(facet)


def worst_bars(sweep: S.Sweep, wc: pd.DataFrame, metric: str, band: str = "minmax") -> Figure:
    """Per defence: its worst case over attacks (vermillion, the attack named above the bar; error
    bars: the replicates' ``band``) next to its result without attack (grey), one panel per facet."""
    facets = sweep.facets()[:MAX_FACETS]
    ncols = min(len(facets), 3)
    nrows = math.ceil(len(facets) / ncols)
    n_def = len(sweep.defences)
    fig = Figure(figsize=(ncols * max(4.5, 1.1 * n_def + 1.5), nrows * 4.2), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(facets) :]:
        fig.delaxes(ax)
    reach = {"minmax": wc["worst_max"], "std": wc["worst"] + wc["worst_std"], "none": wc["worst"]}[band]
    finite = np.concatenate([wc[["worst", "no_attack"]].to_numpy(dtype=float).ravel(), reach.to_numpy(dtype=float)])
    finite = finite[np.isfinite(finite)]
    log = metric != "accuracy" and len(finite) and finite.min() > 0 and finite.max() / finite.min() > 20
    top = float(finite.max()) if len(finite) else 1.0
    for ax, facet in zip(axes, facets):
        part = wc
        for f, v in facet:
            part = part[part[f] == v]
        part = part.set_index("defence").reindex([d for d in sweep.defences if d in set(part["defence"])])
        x = np.arange(len(part))
        worst = part["worst"].to_numpy(dtype=float)
        shown = np.where(np.isfinite(worst), worst, top)
        bars = ax.bar(
            x - 0.2,
            shown,
            0.4,
            color=[BYZANTINE if np.isfinite(w) else "black" for w in worst],
            label="worst over attacks",
        )
        err = _error_bars(part, worst, band)
        if err is not None:
            ax.errorbar(x - 0.2, shown, yerr=err, fmt="none", ecolor="black", elinewidth=1, capsize=3)
        above = shown + (err[1] if err is not None else 0.0)  # attack names go above the error bars
        ax.bar(x + 0.2, part["no_attack"].to_numpy(dtype=float), 0.4, color="0.6", label="no attack")
        for b, w, att, y in zip(bars, worst, part["worst_attack"], above):
            ax.annotate(
                att if np.isfinite(w) else f"{att}: diverged",
                (b.get_x() + b.get_width() / 2, y),
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90 if n_def > 4 else 0,
                xytext=(0, 2),
                textcoords="offset points",
            )
        ax.set_xticks(x, list(part.index), rotation=30, ha="right")
        ax.set_ylabel(f"final {M.METRIC_LABELS[metric]}")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(float(finite.min()) / 2, top * 4)
        elif metric == "accuracy":
            ax.set_ylim(0, 1.1)
        else:
            ax.set_ylim(0, top * 1.25)
        ax.set_title(facet_title_short(facet), fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    handles = [Rectangle((0, 0), 1, 1, color=BYZANTINE), Rectangle((0, 0), 1, 1, color="0.6")]
    fig.legend(
        handles,
        [
            "worst over attacks (attack named on the bar"
            + ("" if band == "none" else f";\nerror bars: {BAND_TEXT[band]}")
            + ")",
            "no attack",
        ],
        loc="outside lower center",
        ncols=2 if ncols > 1 else 1,
        fontsize=9,
    )
    fig.suptitle(f"Worst case over attacks per defence: final {M.METRIC_LABELS[metric]}")
    return fig


def _error_bars(part: pd.DataFrame, worst: np.ndarray, band: str) -> np.ndarray | None:
    """Asymmetric error bars (2, n) around each worst-case bar: min-max or ± std of its replicates."""
    if band == "none" or not len(part):
        return None
    if band == "std":
        sd = np.nan_to_num(part["worst_std"].to_numpy(dtype=float))
        lo = hi = np.where(np.isfinite(worst), sd, 0.0)
    else:
        lo = np.where(np.isfinite(worst), worst - part["worst_min"].to_numpy(dtype=float), 0.0)
        hi = np.where(np.isfinite(worst), part["worst_max"].to_numpy(dtype=float) - worst, 0.0)
    err = np.nan_to_num(np.vstack([lo, hi]))
    return err if err.any() else None


def replicate_frame(traces: Sequence[TraceData], metric: str) -> pd.DataFrame:
    """Round × replicate table of ``metric`` (one column per trace, NaN where a trace has no
    evaluation at that round)."""
    cols = {
        t.label: pd.Series(t.evals[metric].to_numpy(dtype=float), index=t.evals["round"].to_numpy()) for t in traces
    }
    cols = {k: v[~v.index.duplicated(keep="last")] for k, v in cols.items()}
    return pd.DataFrame(cols).sort_index() if cols else pd.DataFrame()


def band_stats(frame: pd.DataFrame, band: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per round of a :func:`replicate_frame`: (mean, band low, band high, replicates n) over the
    replicates that have a finite value there (min-max, or mean ± std with ddof = 1)."""
    v = frame.to_numpy(dtype=float)
    v = np.where(np.isfinite(v), v, np.nan)
    n = np.isfinite(v).sum(axis=1)
    with warnings.catch_warnings():  # rounds no replicate reached: NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(v, axis=1)
        if band == "std":
            sd = np.where(n > 1, np.nanstd(v, axis=1, ddof=1), np.nan)
            lo, hi = mean - sd, mean + sd
        elif band == "minmax":
            lo, hi = np.nanmin(v, axis=1), np.nanmax(v, axis=1)
        else:
            lo = hi = np.full(len(v), np.nan)
    return mean, lo, hi, n


def curves(
    traces: dict[str, TraceData],
    groups: Sequence[tuple[str, Sequence[str]]],
    band: str = "minmax",
) -> Figure:
    """Loss, convergence measure and accuracy against rounds: one curve per group of replicates
    (the mean over them), with a band (min-max or ± std over them; none for ``band = "none"``)."""
    chosen = [(label, [traces[n] for n in names if n in traces]) for label, names in groups][:MAX_CURVES]
    chosen = [(label, ts) for label, ts in chosen if ts]
    every = [t for _, ts in chosen for t in ts]
    prog = "gap" if any(M.has_metric(t.evals, "gap") for t in every) else "grad_norm_sq"
    fig = Figure(figsize=(15, 5.2 + 0.2 * math.ceil(len(chosen) / 3)), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, metric in zip(axes, ("loss", prog, "accuracy")):
        vals = np.concatenate([t.evals[metric].to_numpy(dtype=float) for t in every]) if every else np.zeros(0)
        vals = vals[np.isfinite(vals)]
        log = (
            metric in ("gap", "grad_norm_sq", "loss") and len(vals) and vals.min() > 0 and vals.max() / vals.min() > 20
        )
        for i, (label, ts) in enumerate(chosen):
            frame = replicate_frame(ts, metric)
            mean, lo, hi, _ = band_stats(frame, band)
            x = frame.index.to_numpy()
            style = category_style(i)
            ax.plot(x, mean, marker="o", markersize=2.5, lw=1.2, label=label, **style)
            if band != "none" and len(ts) > 1:
                if log:
                    lo = np.where(lo > 0, lo, np.nan)
                ax.fill_between(x, lo, hi, color=style["color"], alpha=0.2, lw=0)
        ax.set_xlabel("round")
        ax.set_ylabel(M.METRIC_LABELS[metric])
        ax.set_title(f"{M.METRIC_LABELS[metric]} vs rounds")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    reps = max((len(ts) for _, ts in chosen), default=1)
    if reps > 1:
        fig.suptitle("Mean over replicates" + ("" if band == "none" else f" (band: {BAND_TEXT[band]})"), fontsize=10)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 3), fontsize=8)
    return fig


def curve_groups(sweep: S.Sweep, run_names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The chosen runs grouped into their cells (setting × attack: replicates together), in the
    order of their first run; labels ``setting vs attack (n=K)``, or with the replicate fields for
    a lone run."""
    runs = sweep.runs.set_index("run", drop=False)
    groups: dict[tuple[str, str], list[str]] = {}
    for name in run_names:
        if name in runs.index:
            r = runs.loc[name]
            groups.setdefault((r["setting"], r["attack"]), []).append(name)
    out = []
    for (setting, attack), names in groups.items():
        if len(names) > 1:
            label = f"{setting} vs {attack} (n={len(names)})"
        else:
            r = runs.loc[names[0]]
            label = f"{setting} vs {attack}" + "".join(
                f", {f.split('.', 1)[1]}={S.value_text(r[f])}" for f in sweep.replicates
            )
        out.append((label, names))
    return out


# -- the comparison ----------------------------------------------------------------------------
def build(
    specs: Any,
    out: str | Path | None = None,
    *,
    metrics: Sequence[str] | None = None,
    select: Sequence[str] = (),
    band: str = "minmax",
    last_k: int = 1,
) -> Comparison:
    """Load the traces ``specs`` names and compare them; with ``out``, write the folder.

    ``last_k``: a run's final metric is the mean of its last ``last_k`` evaluations (1: the last);
    ``band``: what the curves and error bars show around the replicate mean (``minmax``, ``std``,
    ``none``)."""
    from ..errors import SetupError

    if band not in BANDS:
        raise SetupError(f"--band {band}: one of {', '.join(BANDS)}")
    if last_k < 1:
        raise SetupError(f"--last-k {last_k}: at least 1")
    traces = read_traces(specs, messages=False)
    runs = load_runs(traces)
    if last_k > 1 and len(runs):
        by_run = {t.label: t for t in traces}
        for m in M.METRICS:
            runs[f"final_{m}"] = [M.final_value(by_run[r].evals, m, last_k) for r in runs["run"]]
    sweep = S.analyse(runs)
    metrics = list(metrics or default_metrics(runs))
    for m in metrics:
        if m not in M.METRICS:
            raise SetupError(f"--metric {m}: one of {', '.join(M.METRICS)}")
    comp = Comparison(sweep, metrics, band=band, last_k=last_k)
    for m in metrics:
        comp.cells[m] = S.cells(sweep, m)
        comp.worst[m] = S.worst_case(sweep, m)
    comp.ranking = ranking(comp)
    if select:
        comp.curves = list(S.select(sweep.runs, select)["run"])
        comp.default_curves = False
    else:  # every replicate of the worst-case cell of every defence in the first facet
        wc = comp.worst[metrics[0]]
        for f, v in sweep.facets()[0]:
            wc = wc[wc[f] == v]
        pairs = list(zip(wc.sort_values("rank")["setting"], wc.sort_values("rank")["worst_attack"]))
        runs_ = sweep.runs
        comp.curves = [r for st, at in pairs for r in runs_[(runs_["setting"] == st) & (runs_["attack"] == at)]["run"]]
    comp.curve_groups = curve_groups(sweep, comp.curves)
    by_label = {t.label: t for t in traces}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        figs: dict[str, Figure] = {}
        for m in metrics:
            figs[f"heatmap_{m}"] = heatmaps(sweep, comp.cells[m], m)
            figs[f"worst_{m}"] = worst_bars(sweep, comp.worst[m], m, band)
        if comp.curves:
            figs["curves"] = curves(by_label, comp.curve_groups, band)
        for name, fig in figs.items():
            comp.figures[name] = (save(fig, out / f"{name}.png"), fig)
        sweep.runs.drop(columns=["path"]).to_csv(out / "runs.csv", index=False)
        pd.concat([c.assign(metric=m, last_k=last_k) for m, c in comp.cells.items()]).to_csv(
            out / "cells.csv", index=False
        )
        comp.ranking.to_csv(out / "ranking.csv", index=False)
        comp.markdown = markdown(comp, specs)
        (out / "compare.md").write_text(comp.markdown)
    else:
        comp.markdown = markdown(comp, specs)
    return comp


def ranking(comp: Comparison) -> pd.DataFrame:
    """The primary metric's worst-case table, with the other metrics' worst cases added."""
    primary = comp.metrics[0]
    out = comp.worst[primary].rename(
        columns={
            "worst": f"worst_{primary}",
            "no_attack": f"no_attack_{primary}",
            "mean_over_attacks": f"mean_{primary}",
        }
    )
    for m in comp.metrics[1:]:
        w = comp.worst[m][["setting", "worst", "worst_attack"]].rename(
            columns={"worst": f"worst_{m}", "worst_attack": f"worst_attack_{m}"}
        )
        out = out.merge(w, on="setting", how="left")
    return out


def _values(runs: pd.DataFrame, f: str) -> str:
    vals = list(dict.fromkeys(S._key(v) for v in runs[f]))
    return ", ".join(S.value_text(v) for v in vals)


def describe(specs: Any) -> str:
    """The traces a comparison was given, briefly: a few specs verbatim, many as their folder."""
    items = [str(s) for s in specs] if isinstance(specs, (list, tuple)) else [str(specs)]
    if len(items) <= 3:
        return ", ".join(f"`{s}`" for s in items)
    try:
        common = os.path.commonpath([os.path.dirname(s) or "." for s in items])
    except ValueError:
        common = ""
    return f"{len(items)} paths" + (f" under `{common}`" if common else "")


def markdown(comp: Comparison, specs: Any) -> str:
    sw, runs = comp.sweep, comp.sweep.runs
    primary = comp.metrics[0]
    status = runs["status"].value_counts()
    lines = [
        "# Sweep comparison",
        "",
        f"{len(runs)} traces ({', '.join(f'{n} {s}' for s, n in status.items())}) from {describe(specs)}.",
        "",
    ]
    unfinished = runs[runs["status"] != "finished"]
    if len(unfinished):
        lines += [
            f"**{len(unfinished)} runs are not finished** ({', '.join(unfinished['run'])}): their last "
            "evaluation is used.",
            "",
        ]
    lines += ["Swept fields (what differs between runs):", ""]
    lines += [f"* `{f}`: {_values(runs, f)}" for f in sw.swept] or ["* none"]
    if sw.replicates:
        lines += [
            "* replicates, averaged in every cell: " + ", ".join(f"`{f}` ({_values(runs, f)})" for f in sw.replicates)
        ]
    final = (
        f"the mean of its last {comp.last_k} evaluations (`--last-k {comp.last_k}`)"
        if comp.last_k > 1
        else "its last evaluation (`--last-k K`: the mean of the last K)"
    )
    lines += [
        "",
        "A *defence* is the aggregation rule with its swept parameters; a *setting* is a defence with "
        "the other swept fields. Cells average the replicates (mean ± sample standard deviation, n "
        "finite replicates); a diverged run (non-finite result) makes its cell the worst value. A run's "
        f"final metric is {final}.",
        "",
    ]
    facets = sw.facets()
    if len(facets) > MAX_FACETS:
        lines += [
            f"The figures show the first {MAX_FACETS} of {len(facets)} combinations of "
            f"{', '.join(sw.other_fields)}; the tables have all of them.",
            "",
        ]
    for m in comp.metrics:
        lines += [f"## Final {M.METRIC_LABELS[m]}", "", f"![heatmap of final {m}](heatmap_{m}.png)", ""]
        for facet in facets:
            piv = S.pivot(comp.cells[m], sw, facet)
            if len(sw.other_fields):
                lines += [f"### {S.facet_title(facet)} ({m})", ""]
            lines += [table(piv.reset_index(), headers=["defence / attack", *piv.columns]), ""]
        lines += [f"### Cells: {m}, mean ± std over replicates", "", cell_markdown(sw, comp.cells[m]), ""]
    for m in comp.metrics:
        w = comp.worst[m]
        lines += [
            f"## Worst case over attacks: {m}",
            "",
            f"![worst case of {m}](worst_{m}.png)",
            "",
            table(
                w,
                columns=[
                    "rank",
                    "setting",
                    "worst",
                    "worst_std",
                    "worst_n",
                    "worst_attack",
                    "no_attack",
                    "mean_over_attacks",
                    "worst_run",
                    "worst_seed",
                ],
                headers=[
                    "rank",
                    "setting",
                    f"worst {m}",
                    "std",
                    "n",
                    "worst attack",
                    "no attack",
                    "mean over attacks",
                    "worst run",
                    "worst replicate",
                ],
            ),
            "",
        ]
    cols = ["rank", "setting", f"worst_{primary}", "worst_attack", f"no_attack_{primary}", f"mean_{primary}"]
    heads = [
        "rank",
        "setting",
        f"worst {primary}",
        "worst attack",
        f"{primary} without attack",
        f"mean {primary} over attacks",
    ]
    for m in comp.metrics[1:]:
        cols += [f"worst_{m}", f"worst_attack_{m}"]
        heads += [f"worst {m}", f"worst attack ({m})"]
    lines += [
        f"## Ranking by worst-case {primary}",
        "",
        f"Settings ranked by their worst final {primary} over all attack columns, `none` included (a defence "
        "can be at its worst without attack); ties broken by the mean over the same columns.",
        "",
        table(comp.ranking, columns=cols, headers=heads),
        "",
    ]
    if comp.curves:
        lines += [
            "## Curves",
            "",
            (
                "The worst-case run of each defence"
                + (f" ({S.facet_title(sw.facets()[0])})" if sw.other_fields else "")
                + " (choose others with `--select FIELD=VALUE`). "
                if comp.default_curves
                else ""
            )
            + f"One curve per cell, the mean over its replicates ({BAND_TEXT[comp.band]} around it; "
            "`--band minmax|std|none`): "
            + "; ".join(
                f"{label}: " + ", ".join(f"`{c}`" for c in names) for label, names in comp.curve_groups[:MAX_CURVES]
            )
            + (f" (first {MAX_CURVES} of {len(comp.curve_groups)})" if len(comp.curve_groups) > MAX_CURVES else ""),
            "",
            "![curves](curves.png)",
            "",
        ]
    lines += [
        "## Runs",
        "",
        "One row per trace (all columns in `runs.csv`).",
        "",
        table(
            runs,
            columns=[
                "run",
                "status",
                "defence",
                "attack",
                *sw.other_fields,
                *sw.replicates,
                *[f"final_{m}" for m in comp.metrics],
                "rounds",
                "wall_seconds",
            ],
        ),
        "",
    ]
    return "\n".join(lines).rstrip() + "\n"


def cell_markdown(sw: S.Sweep, c: pd.DataFrame) -> str:
    """Every cell of one metric: mean ± std (n), min, max, diverged replicates, the worst replicate."""
    return table(
        c,
        columns=[*sw.other_fields, "defence", "attack", "mean", "std", "n", "min", "max", "diverged", "worst_run"],
        headers=[*sw.other_fields, "defence", "attack", "mean", "std", "n", "min", "max", "diverged", "worst run"],
    )


def format_text(comp: Comparison) -> str:
    """What ``byzmpi compare`` prints without ``--out``: swept fields and the ranking."""
    sw = comp.sweep
    primary = comp.metrics[0]
    lines = [
        f"{len(sw.runs)} runs; swept: {', '.join(sw.swept) or 'nothing'}"
        + (f"; replicates: {', '.join(sw.replicates)}" if sw.replicates else "")
    ]
    for m in comp.metrics:
        for facet in sw.facets():
            piv = S.pivot(comp.cells[m], sw, facet)
            sd = S.pivot(comp.cells[m], sw, facet, "std").reindex(index=piv.index, columns=piv.columns)
            text = piv.map(lambda x: fmt(x, 4)) + sd.map(lambda x: f" ± {fmt(x, 2)}" if np.isfinite(x) else "")
            lines += [
                "",
                f"final {m}"
                + (f" (mean of the last {comp.last_k} evaluations)" if comp.last_k > 1 else "")
                + (f" [{S.facet_title(facet)}]" if facet else "")
                + ":",
                text.to_string(),
            ]
    r = comp.ranking
    cols = ["rank", "setting", f"worst_{primary}", "worst_attack", f"no_attack_{primary}"]
    lines += [
        "",
        f"ranking by worst-case {primary}:",
        r[cols].to_string(index=False, formatters={c: (lambda x: fmt(x, 4)) for c in cols if r[c].dtype.kind == "f"}),
    ]
    return "\n".join(lines)
