"""``byzmpi report TRACE --out DIR``: a folder with PNG figures, ``report.md`` linking them, and
``summary.json`` holding the same tables at full precision.

Every number in the markdown comes from :mod:`byzmpi.analysis.metrics` applied to the trace's
tables; sections whose data the trace does not have say so instead of drawing empty axes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import figures as F
from . import metrics as M
from .load import TraceData, read_trace
from .markdown import table


@dataclass
class FigureInfo:
    """A saved figure: file, title, and its panels (axes titles, colorbars excluded)."""

    name: str
    path: Path
    title: str
    panels: list[str]
    figure: Figure


@dataclass
class Report:
    trace: TraceData
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    figures: dict[str, FigureInfo] = field(default_factory=dict)
    markdown: str = ""
    last_k: int = 1


def panels(fig: Figure) -> list[str]:
    """Titles of a figure's data axes (colorbar axes left out)."""
    return [" ".join(ax.get_title().split()) for ax in fig.axes if ax.get_label() != "<colorbar>"]  # unwrapped


def run_table(t: TraceData) -> pd.DataFrame:
    """What ran: key/value rows from the trace's attributes and config."""
    a, cfg = t.attrs, t.config
    agg = cfg.get("aggregator", {})
    pre = agg.get("pre") or []
    rows = [
        ("trace", str(t.path)),
        ("status", t.status),
        ("rounds traced", len(t.rounds)),
        ("rounds planned", t.rounds_planned),
        ("method", a.get("method")),
        ("aggregator", str(a.get("aggregator")) + (f" after {' -> '.join(pre)}" if pre else "")),
        ("aggregator f", agg.get("f")),
        ("attack", a.get("attack")),
        ("threat model", a.get("threat_model")),
        ("simulation (omniscient attack built by the server)", t.simulation),
        ("clients", a.get("n_clients")),
        ("Byzantine clients", len(t.byzantine_ids)),
        ("Byzantine ids", ", ".join(map(str, t.byzantine_ids)) or "none"),
        ("sampled per round (config)", cfg.get("clients", {}).get("per_round") or "all"),
        ("MPI ranks", a.get("world_size")),
        ("seed", a.get("seed")),
        ("f* (optimum)", t.f_star),
        ("wall seconds", float(a.get("wall_seconds", math.nan))),
    ]
    return pd.DataFrame(rows, columns=["field", "value"])


def build(trace: TraceData | str | Path, out: str | Path | None = None, *, last_k: int = 1) -> Report:
    """Compute a report's tables and figures; with ``out``, write the folder. ``last_k`` > 1 adds
    the mean of the last ``last_k`` evaluations to the metrics table."""
    if last_k < 1:
        from ..errors import SetupError

        raise SetupError(f"--last-k {last_k}: at least 1")
    t = trace if isinstance(trace, TraceData) else read_trace(trace, messages=True)
    rep = Report(t)
    rep.last_k = last_k
    r, e, msg = t.rounds, t.evals, t.messages
    rep.tables["run"] = run_table(t)
    rep.tables["metrics"] = M.metric_table(e, last_k)
    if len(r):
        rep.tables["sampling"] = pd.DataFrame([M.sampling_stats(r)])
        rep.tables["byzantine"] = M.byzantine_table(r)
        rep.tables["communication"] = M.communication_table(r)
        rep.tables["time"] = M.time_table(r)
    if msg is None or len(msg) == 0:
        rep.notes["kept"] = "The trace has no per-message table (run.trace_messages = false): kept rates not available."
    elif not M.has_weights(msg):
        rep.notes["kept"] = (
            f"The aggregation rule ({t.attrs.get('aggregator')}) gives no per-message weights "
            "(messages.weight is NaN): which clients it kept is not recorded."
        )
    else:
        rep.tables["kept_group"] = M.kept_by_group(msg)
        rep.tables["kept_client"] = M.kept_by_client(msg)
    if len(r) and M.has_clipping(r, msg):
        rep.tables["clipping"] = M.clipping_table(r, msg)
    else:
        rep.notes["clipping"] = "No clipping: the method does not clip (rounds.clip_radius is NaN)."
    if msg is not None and len(msg):
        rep.tables["rejected"] = M.rejection_table(msg, t.reject_reasons)

    figs: dict[str, tuple[str, Figure]] = {}
    if len(e):
        figs["convergence"] = ("Training progress against rounds and bytes sent", F.convergence(e, r, t.f_star))
    if len(r):
        figs["byzantine_impact"] = ("Distance of the aggregate to the honest mean (oracle)", F.byzantine_impact(r))
        figs["time_split"] = ("Time per round", F.time_split(r))
    if "clipping" in rep.tables:
        figs["clipping"] = ("Clipping radius and clipped fraction", F.clipping(r, msg))
    if "kept_client" in rep.tables:
        figs["kept_rate"] = ("What the aggregator kept, per client", F.kept_rate(msg))
    out_dir = Path(out) if out is not None else None
    for name, (title, fig) in figs.items():
        path = F.save(fig, out_dir / f"{name}.png") if out_dir is not None else Path(f"{name}.png")
        rep.figures[name] = FigureInfo(name, path, title, panels(fig), fig)
    rep.markdown = markdown(rep)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.md").write_text(rep.markdown)
        (out_dir / "summary.json").write_text(json.dumps(to_json(rep), indent=1, default=_json_default))
    return rep


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return str(x)


def _clean(v: Any) -> Any:
    if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
        return None
    return v


def to_json(rep: Report) -> dict[str, Any]:
    return {
        "trace": str(rep.trace.path),
        "status": rep.trace.status,
        "oracle_fields": rep.trace.oracle_fields,
        "simulation": rep.trace.simulation,
        "notes": rep.notes,
        "figures": {k: {"file": v.path.name, "panels": v.panels} for k, v in rep.figures.items()},
        "tables": {
            k: [{c: _clean(x) for c, x in row.items()} for row in df.to_dict("records")] for k, df in rep.tables.items()
        },
    }


def _fig(rep: Report, name: str) -> str:
    info = rep.figures.get(name)
    return f"\n![{info.title}]({info.path.name})\n" if info else ""


def markdown(rep: Report) -> str:
    """The report as markdown; tables under unique headings, figures linked by file name."""
    t, T = rep.trace, rep.tables
    lines = [
        f"# Run report: {t.name}",
        "",
        f"Trace `{t.path}` ({t.status}): {len(t.rounds)} of {t.rounds_planned} rounds traced. "
        "Columns marked *(oracle)* use knowledge only a simulation has (who is Byzantine; the trace's "
        f"`oracle_fields`: {', '.join(t.oracle_fields) or 'none'}).",
        "",
    ]
    lines += ["## Run", "", table(T["run"]), ""]
    lines += ["## Metrics", ""]
    if len(T["metrics"]):
        lines += [
            table(
                T["metrics"],
                headers=[
                    "metric",
                    "initial",
                    "final",
                    "best",
                    "best at round",
                    *([f"mean of last {rep.last_k}"] if rep.last_k > 1 else []),
                ],
            ),
            "",
            "Evaluated on the server model; `round` counts updates applied. Bytes sent = up + down.",
            _fig(rep, "convergence"),
        ]
    else:
        lines += ["No evaluation in the trace yet.", ""]
    if "sampling" in T:
        lines += [
            "## Sampling",
            "",
            table(
                T["sampling"],
                headers=[
                    "sampled/round (mean)",
                    "min",
                    "max",
                    "Byzantine/round (mean, oracle)",
                    "Byzantine max (oracle)",
                    "rounds with Byzantine (oracle)",
                    "rounds with Byzantine majority (oracle)",
                ],
            ),
            "",
        ]
        lines += [
            "## Byzantine impact (oracle)",
            "",
            "Distance of the aggregate to the mean of the round's honest messages, by the number of "
            "Byzantine clients sampled in the round.",
            "",
            table(
                T["byzantine"],
                headers=[
                    "Byzantine sampled",
                    "rounds",
                    "share of rounds",
                    "mean distance",
                    "median distance",
                    "max distance",
                    "mean relative distance",
                ],
            ),
            _fig(rep, "byzantine_impact"),
        ]
    lines += ["## Aggregator: what it kept", ""]
    if "kept_group" in T:
        lines += [
            "A message is *kept* when its aggregator weight is > 0; its *share* is weight × messages "
            "accepted that round (1 = a fair share).",
            "",
            table(T["kept_group"], headers=["group (oracle)", "messages", "kept", "kept rate", "mean share"]),
            "",
            "### Per client",
            "",
            table(
                T["kept_client"],
                headers=["client", "Byzantine (oracle)", "messages", "kept", "kept rate", "mean share"],
            ),
            _fig(rep, "kept_rate"),
        ]
    else:
        lines += [rep.notes["kept"], ""]
    lines += ["## Clipping", ""]
    if "clipping" in T:
        lines += [table(T["clipping"]), _fig(rep, "clipping")]
    else:
        lines += [rep.notes["clipping"], ""]
    if "rejected" in T:
        lines += [
            "## Validation",
            "",
            "Messages by validation outcome (rejected messages are left out of the aggregate).",
            "",
            table(T["rejected"], headers=["code", "outcome", "messages", "of which Byzantine (oracle)"]),
            "",
        ]
    if "communication" in T:
        lines += [
            "## Communication",
            "",
            table(T["communication"], headers=["direction", "bytes", "bytes per round"]),
            "",
        ]
    if "time" in T:
        lines += [
            "## Time per round",
            "",
            "Server-side timings; compute is the slowest sampled host's, communication the rest of the "
            "server's wait for the gather.",
            "",
            table(T["time"], headers=["part", "trace column", "total s", "ms per round", "share of round"]),
            _fig(rep, "time_split"),
        ]
    return "\n".join(lines).rstrip() + "\n"
