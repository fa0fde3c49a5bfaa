"""The figures of a run's report, as matplotlib ``Figure`` objects (no pyplot, no display: works
headless; ``save`` writes a PNG).

Each builder takes the run's tables and returns a figure whose axes are the report's panels,
with titles that say what they show (``(oracle)`` marks simulation-only knowledge).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure
from matplotlib.text import Text

from . import metrics as M

#: Okabe & Ito's palette, told apart with every common colour-vision deficiency (no red-green pairs)
OKABE_ITO = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "bluish_green": "#009E73",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "sky_blue": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}
#: colours of categories (curves, bars) in order; colour maps: perceptually uniform, colour-blind safe
CATEGORICAL = [OKABE_ITO[k] for k in ("blue", "orange", "bluish_green", "vermillion", "reddish_purple", "sky_blue")]
LINESTYLES = ("-", "--", ":", "-.")
SEQUENTIAL = "cividis"
HONEST, BYZANTINE = OKABE_ITO["blue"], OKABE_ITO["vermillion"]
TIME_COLORS = {
    M.TIME_PARTS["t_setup"]: OKABE_ITO["reddish_purple"],
    M.TIME_PARTS["t_stage"]: OKABE_ITO["yellow"],
    "compute": OKABE_ITO["blue"],
    M.TIME_PARTS["t_stage_hosts"]: OKABE_ITO["vermillion"],
    "communication": OKABE_ITO["orange"],
    "aggregation": OKABE_ITO["bluish_green"],
    "I/O": OKABE_ITO["sky_blue"],
    "eval": OKABE_ITO["black"],
    M.OTHER_TIME: "0.8",
}


def category_style(i: int) -> dict[str, str]:
    """Colour and line style of the i-th curve: 6 colours, then the same with dashes, ..."""
    return {"color": CATEGORICAL[i % len(CATEGORICAL)], "ls": LINESTYLES[(i // len(CATEGORICAL)) % len(LINESTYLES)]}


def renderer(fig: Figure) -> RendererAgg:
    """An Agg renderer for ``fig`` (what PNGs are drawn with), to measure text."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    rend: RendererAgg = canvas.get_renderer()  # type: ignore[no-untyped-call]
    return rend


def fit_text(t: Text, max_width: float, rend: RendererAgg, min_size: float = 7.0, max_lines: int = 3) -> None:
    """Wrap (at most ``max_lines`` lines), then shrink (down to ``min_size`` points) a text until its
    rendered width is at most ``max_width`` pixels."""
    words = " ".join(t.get_text().split())
    if not words or t.get_window_extent(rend).width <= max_width:
        return
    size = float(t.get_fontsize())
    while True:
        chars = len(words)
        while chars >= 8:
            lines = textwrap.wrap(words, chars, break_long_words=False, break_on_hyphens=False)
            if len(lines) > max_lines:
                break
            t.set_text("\n".join(lines))
            if t.get_window_extent(rend).width <= max_width:
                return
            chars = min(chars - 1, int(chars * 0.92))
        if size <= min_size:
            lines = textwrap.wrap(words, math.ceil(len(words) / max_lines), break_long_words=True)
            t.set_text("\n".join(lines))
            return
        size = max(min_size, size - 0.5)
        t.set_fontsize(size)


def _slot_share(ax: Axes) -> float:
    """The share of the figure's width that an axes' grid columns get (width ratios counted,
    margins not: constrained layout gives the panels nearly all of it)."""
    spec = ax.get_subplotspec()
    if spec is None:
        return float(ax.get_position().width)
    gs = spec.get_gridspec()
    ratios = np.asarray(gs.get_width_ratios() or [1.0] * gs.ncols, dtype=float)
    return float(ratios[list(spec.colspan)].sum() / ratios.sum())


def fit_titles(fig: Figure, min_size: float = 7.0) -> None:
    """Make the figure's title fit its width, each panel's title the width of its grid slot, and
    legend entries their share of it (measured with the renderer the PNG is drawn with)."""
    rend = renderer(fig)
    width = fig.get_figwidth() * fig.dpi
    sup = getattr(fig, "_suptitle", None)
    if sup is not None and sup.get_text():
        fit_text(sup, 0.97 * width, rend, min_size)
    for legend in fig.legends:  # a figure legend's entries share its width
        texts = legend.get_texts()
        per_row = max(1, min(len(texts), int(getattr(legend, "_ncols", 1))))
        for t in texts:
            fit_text(t, 0.85 * width / per_row - 40, rend, min_size, max_lines=4)
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        slot = _slot_share(ax) * width
        ax_legend = ax.get_legend()
        if ax_legend is not None:
            for text in ax_legend.get_texts():
                fit_text(text, 0.8 * slot, rend, min_size, max_lines=4)
        for title in (ax.title, getattr(ax, "_left_title", None), getattr(ax, "_right_title", None)):
            if title is not None and title.get_text():
                fit_text(title, 0.97 * slot, rend, min_size)


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fit_titles(fig)
    fig.savefig(path, dpi=dpi)  # constrained layout already fits the labels: no second "tight" draw
    return path


def bytes_unit(largest: float) -> tuple[float, str]:
    """(divisor, unit) that keeps a byte axis readable."""
    for power, unit in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
        if largest >= 2 * 1024.0**power:
            return 1024.0**power, unit
    return 1.0, "bytes"


def _positive_log(ax: Any, values: np.ndarray) -> None:
    v = values[np.isfinite(values)]
    if len(v) and (v > 0).all() and v.max() / max(v.min(), 1e-300) > 20:
        ax.set_yscale("log")


def convergence(evals: pd.DataFrame, rounds: pd.DataFrame, f_star: float = float("nan")) -> Figure:
    """Loss, convergence measure (gap or |grad f|^2) and accuracy, against rounds (top row) and
    against bytes moved up + down (bottom row)."""
    ev = M.evals_with_bytes(evals, rounds)
    prog = M.progress_metric(evals)
    panels = [("loss", "loss"), (prog, M.METRIC_LABELS[prog]), ("accuracy", "accuracy")]
    scale, unit = bytes_unit(float(np.nanmax(ev["bytes"])) if ev["bytes"].notna().any() else 0.0)
    fig = Figure(figsize=(13, 7), layout="constrained")
    axes = fig.subplots(2, 3)
    for col, (metric, label) in enumerate(panels):
        y = ev[metric].to_numpy(dtype=float)
        for row, (x, xlabel) in enumerate(
            (
                (ev["round"].to_numpy(dtype=float), "round"),
                (ev["bytes"].to_numpy(dtype=float) / scale, f"{unit} sent (up + down)"),
            )
        ):
            ax = axes[row, col]
            ax.plot(x, y, marker="o", markersize=3, color=HONEST)
            if metric == "loss" and np.isfinite(f_star):
                ax.axhline(f_star, color="k", lw=0.8, ls="--", label="f* (optimum)")
                ax.legend(loc="upper right", fontsize=8)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(label)
            ax.set_title(f"{label} vs {'rounds' if row == 0 else 'bytes sent'}")
            if metric != "accuracy" and metric != "loss":
                _positive_log(ax, y)
            ax.grid(alpha=0.3)
    fig.suptitle("Training progress (evaluations of the server model)")
    return fig


def byzantine_impact(rounds: pd.DataFrame) -> Figure:
    """Distance of the aggregate to the honest mean against the number of Byzantine clients
    sampled in the round (box plot), and the relative distance over rounds (oracle)."""
    fig = Figure(figsize=(13, 4.5), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    byz = rounds["byzantine"].to_numpy(dtype=int)
    d = rounds["dist_honest_mean"].to_numpy(dtype=float)
    counts = sorted(set(byz.tolist()))
    data = [d[(byz == b) & np.isfinite(d)] for b in counts]
    keep = [i for i, x in enumerate(data) if len(x)]
    ax1.boxplot(
        [data[i] for i in keep],
        positions=[counts[i] for i in keep],
        widths=0.6,
        showmeans=True,
        meanprops={"marker": "^", "markerfacecolor": "white", "markeredgecolor": "k"},
    )
    ax1.set_xticks([counts[i] for i in keep], [f"{counts[i]}\n({len(data[i])} rounds)" for i in keep])
    ax1.set_xlabel("Byzantine clients sampled in the round")
    ax1.set_ylabel("|aggregate - honest mean|")
    ax1.set_title("Distance to the honest mean by Byzantine count (oracle)")
    ax1.grid(alpha=0.3, axis="y")
    hm = rounds["honest_mean_norm"].to_numpy(dtype=float)
    rel = d / np.where(hm > 0, hm, np.nan)
    lo, hi = (min(counts), max(counts)) if counts else (0, 0)
    cmap = matplotlib.colormaps[SEQUENTIAL].resampled(hi - lo + 1)
    norm = BoundaryNorm(np.arange(lo - 0.5, hi + 1.5), cmap.N)
    sc = ax2.scatter(rounds["round"].to_numpy(), rel, c=byz, s=7, cmap=cmap, norm=norm)
    cb = fig.colorbar(sc, ax=ax2, label="Byzantine sampled")
    cb.set_ticks(list(np.arange(lo, hi + 1) if hi - lo <= 12 else np.linspace(lo, hi, 7).round()))
    ax2.set_xlabel("round")
    ax2.set_ylabel("|aggregate - honest mean| / |honest mean|")
    ax2.set_title("Relative distance over rounds (oracle)")
    _positive_log(ax2, rel)
    ax2.grid(alpha=0.3)
    return fig


def _rolling(y: pd.Series, n: int) -> pd.Series:
    return y.rolling(max(1, n // 50), min_periods=1).mean()


def clipping(rounds: pd.DataFrame, messages: pd.DataFrame | None = None) -> Figure:
    """Clipping radius over rounds, and the clipped fraction of messages (all; honest and Byzantine
    when the message table is traced), as rolling means."""
    fig = Figure(figsize=(13, 4.5), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(rounds["round"], rounds["clip_radius"], color=HONEST, lw=1)
    ax1.set_xlabel("round")
    ax1.set_ylabel("clipping radius")
    ax1.set_title("Clipping radius")
    _positive_log(ax1, rounds["clip_radius"].to_numpy(dtype=float))
    ax1.grid(alpha=0.3)
    n = len(rounds)
    frac = M.clipped_fraction(rounds)
    ax2.plot(rounds["round"], _rolling(frac, n), color="k", lw=1.2, label="all accepted messages")
    if messages is not None and len(messages):
        m = messages[messages["clipped"].notna()]
        for flag, name, color in ((0, "honest", HONEST), (1, "Byzantine (oracle)", BYZANTINE)):
            part = m[m["byzantine"].astype(int) == flag]
            if len(part):
                per_round = part.groupby("round")["clipped"].mean()
                ax2.plot(per_round.index, _rolling(per_round, n), color=color, lw=1, label=name)
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_xlabel("round")
    ax2.set_ylabel("clipped fraction")
    ax2.set_title(f"Clipped fraction (rolling mean over {max(1, n // 50)} rounds)")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    return fig


def kept_rate(messages: pd.DataFrame) -> Figure:
    """Per client: the rate at which the aggregator kept its messages (weight > 0), and its mean
    share (weight × messages accepted that round; 1 = a fair share); honest vs Byzantine."""
    k = M.kept_by_client(messages)
    fig = Figure(figsize=(13, 4.5), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    colors = [BYZANTINE if b else HONEST for b in k["byzantine"]]
    x = np.arange(len(k))
    for ax, col, label in ((ax1, "rate", "kept rate (weight > 0)"), (ax2, "mean_share", "mean share (weight × m)")):
        ax.bar(x, k[col], color=colors, width=0.8)
        ax.set_xticks(
            x, [str(c) for c in k["client"]], fontsize=7 if len(k) > 20 else 9, rotation=90 if len(k) > 40 else 0
        )
        ax.set_xlabel("client")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    ax1.set_ylim(0, 1.18)
    ax2.axhline(1.0, color="k", lw=0.8, ls="--")
    from matplotlib.patches import Patch

    handles = [Patch(color=HONEST, label="honest"), Patch(color=BYZANTINE, label="Byzantine (oracle)")]
    ax1.legend(handles=handles, fontsize=8, loc="upper right", ncols=2)
    ax1.set_title("How often the aggregator kept each client")
    ax2.set_title("Mean share of the aggregate per client (1 = fair share)")
    return fig


def time_split(rounds: pd.DataFrame, max_bins: int = 60) -> Figure:
    """Time per round split into compute, communication, aggregation, I/O, eval and other:
    stacked over rounds (means over bins of rounds) and as an average."""
    parts = {col: name for col, name in M.TIME_PARTS.items() if col in rounds}
    n = len(rounds)
    ms = pd.DataFrame({name: 1e3 * rounds[col].astype(float).to_numpy() for col, name in parts.items()})
    ms[M.OTHER_TIME] = (1e3 * rounds["t_round"].astype(float).to_numpy() - ms.sum(axis=1)).clip(lower=0.0)
    bins = max(1, min(n, max_bins))
    edges = np.linspace(0, n, bins + 1).astype(int)
    which = np.searchsorted(edges, np.arange(n), side="right") - 1
    binned = ms.groupby(which).mean()
    starts = rounds["round"].to_numpy()[edges[:-1][binned.index]] if n else np.zeros(0)
    widths = np.diff(edges)[binned.index]
    fig = Figure(figsize=(13, 4.5), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[2, 1])
    bottom = np.zeros(len(binned))
    for name in ms.columns:
        ax1.bar(
            starts,
            binned[name].to_numpy(),
            width=widths * 0.9,
            bottom=bottom,
            align="edge",
            color=TIME_COLORS.get(name),
            label=name,
        )
        bottom += binned[name].to_numpy()
    if len(bottom) and np.isfinite(bottom).any() and bottom.max() > 0:
        ax1.set_ylim(0, 1.3 * float(np.nanmax(bottom)))  # room for the legend above the bars
    ax1.set_xlabel("round")
    ax1.set_ylabel("ms per round")
    ax1.set_title(f"Time per round (mean over bins of {max(1, n // bins)} rounds)")
    ax1.legend(fontsize=8, ncols=3)
    ax1.grid(alpha=0.3, axis="y")
    mean = ms.mean()
    ax2.barh(np.arange(len(mean)), mean.to_numpy(), color=[TIME_COLORS.get(p) for p in mean.index])
    ax2.set_yticks(np.arange(len(mean)), list(mean.index), fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlabel("mean ms per round")
    ax2.set_title("Average split")
    ax2.grid(alpha=0.3, axis="x")
    return fig
