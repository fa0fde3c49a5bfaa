"""What a trace says about a run, as small pure functions of its tables (pandas DataFrames).

Definitions used by reports (and checked by the tests against direct h5py reads):

* **kept**: a received message whose aggregator weight is > 0 (``messages.weight``; rejected
  messages have weight 0; NaN everywhere means the rule gives no weights). The *share* of a
  message is its weight times the number of messages accepted that round (1 = a fair share).
* **clipped fraction** of a round: ``rounds.clipped / (rounds.sampled - rounds.rejected)``;
  a method that does not clip leaves ``rounds.clip_radius`` and ``messages.clipped`` NaN.
* **bytes sent** after r updates: the sum of ``bytes_up + bytes_down`` over rounds 0..r-1
  (``eval.round`` counts updates applied).
* **other time**: ``t_round`` minus the traced parts (round plan, round communicator set-up).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

METRICS = ("loss", "accuracy", "gap", "grad_norm_sq")
METRIC_LABELS = {
    "loss": "loss",
    "accuracy": "accuracy",
    "gap": "optimality gap f(x) - f*",
    "grad_norm_sq": "|grad f(x)|^2",
}
HIGHER_IS_BETTER = {"loss": False, "accuracy": True, "gap": False, "grad_norm_sq": False}
TIME_PARTS = {
    "t_setup": "setup (plan, round communicator)",
    "t_stage": "staging (server)",
    "t_compute": "compute",
    "t_stage_hosts": "staging (hosts)",
    "t_comm": "communication",
    "t_aggregate": "aggregation",
    "t_io": "I/O",
    "t_eval": "eval",
}
OTHER_TIME = "other"


def _f(x: Any) -> float:
    return float(x) if x is not None else math.nan


def is_oracle(column: str, df: pd.DataFrame) -> bool:
    """Whether ``column`` of ``df`` uses knowledge only a simulation has."""
    return column in df.attrs.get("oracle_fields", ())


# -- evaluation metrics ----------------------------------------------------------------------
def has_metric(evals: pd.DataFrame, metric: str) -> bool:
    return metric in evals and bool(np.isfinite(evals[metric].to_numpy(dtype=float)).any())


def progress_metric(evals: pd.DataFrame) -> str:
    """The convergence measure a report shows: the gap when f* is known, else |grad f|^2."""
    return "gap" if has_metric(evals, "gap") else "grad_norm_sq"


def metric_table(evals: pd.DataFrame, last_k: int = 1) -> pd.DataFrame:
    """Per metric: initial (first eval), final (last eval), best and the round of the best; with
    ``last_k`` > 1 also ``last_k_mean``, the mean of the last ``last_k`` evaluations."""
    rows = []
    for m in METRICS:
        if m not in evals or len(evals) == 0:
            continue
        v = evals[m].to_numpy(dtype=float)
        finite = np.isfinite(v)
        if not finite.any():
            continue
        pick = np.where(finite, v, -np.inf if HIGHER_IS_BETTER[m] else np.inf)
        i = int(np.argmax(pick) if HIGHER_IS_BETTER[m] else np.argmin(pick))
        rows.append(
            {
                "metric": m,
                "initial": float(v[0]),
                "final": float(v[-1]),
                "best": float(v[i]),
                "best_round": int(evals["round"].iloc[i]),
                "last_k_mean": final_value(evals, m, last_k),
            }
        )
    cols = ["metric", "initial", "final", "best", "best_round", *(["last_k_mean"] if last_k > 1 else [])]
    return pd.DataFrame(rows, columns=cols)


def final_value(evals: pd.DataFrame, metric: str, last_k: int = 1) -> float:
    """The final ``metric`` of a run: the mean of its last ``last_k`` evaluations (all of them
    when it has fewer); non-finite when one of those is (the run diverged), NaN with none."""
    if last_k < 1:
        raise ValueError(f"last_k must be >= 1, not {last_k}")
    if metric not in evals or len(evals) == 0:
        return math.nan
    v = evals[metric].to_numpy(dtype=float)[-last_k:]
    return float(v.mean()) if np.isfinite(v).all() else (math.inf if np.isinf(v).any() else math.nan)


def cumulative_bytes(rounds: pd.DataFrame) -> np.ndarray:
    """``out[r]`` = bytes moved (up + down) in the first r rounds; ``out[0] = 0``."""
    per_round = rounds["bytes_up"].to_numpy(dtype=np.int64) + rounds["bytes_down"].to_numpy(dtype=np.int64)
    return np.concatenate([[0], np.cumsum(per_round)])


def evals_with_bytes(evals: pd.DataFrame, rounds: pd.DataFrame) -> pd.DataFrame:
    """``evals`` plus ``bytes``: bytes moved before each evaluation (NaN if not yet traced)."""
    cum = cumulative_bytes(rounds)
    r = evals["round"].to_numpy(dtype=np.int64)
    out = evals.copy()
    out["bytes"] = np.where(r < len(cum), cum[np.minimum(r, len(cum) - 1)], np.nan).astype(float)
    return out


# -- Byzantine impact (oracle) ---------------------------------------------------------------
def byzantine_table(rounds: pd.DataFrame) -> pd.DataFrame:
    """Per number b of Byzantine clients sampled in a round: how many rounds, and the distance of
    the aggregate to the honest mean (absolute, and relative to the honest mean's norm)."""
    cols = ["byzantine", "rounds", "share", "dist_mean", "dist_median", "dist_max", "rel_dist_mean"]
    if len(rounds) == 0:
        return pd.DataFrame(columns=cols)
    d = rounds["dist_honest_mean"].astype(float)
    rel = d / rounds["honest_mean_norm"].astype(float).replace(0.0, np.nan)
    g = pd.DataFrame({"byzantine": rounds["byzantine"].astype(int), "d": d, "rel": rel}).groupby("byzantine")
    out = pd.DataFrame(
        {
            "rounds": g.size(),
            "dist_mean": g["d"].mean(),
            "dist_median": g["d"].median(),
            "dist_max": g["d"].max(),
            "rel_dist_mean": g["rel"].mean(),
        }
    ).reset_index()
    out["share"] = out["rounds"] / len(rounds)
    return out[cols]


def sampling_stats(rounds: pd.DataFrame) -> dict[str, float]:
    """Sampled and Byzantine-sampled counts per round."""
    if len(rounds) == 0:
        return {}
    byz = rounds["byzantine"].to_numpy(dtype=np.int64)
    m = rounds["sampled"].to_numpy(dtype=np.int64)
    return {
        "sampled_mean": float(m.mean()),
        "sampled_min": int(m.min()),
        "sampled_max": int(m.max()),
        "byzantine_mean": float(byz.mean()),
        "byzantine_max": int(byz.max()),
        "rounds_with_byzantine": int((byz > 0).sum()),
        "rounds_with_majority": int((2 * byz > m).sum()),
    }


# -- what the aggregator kept ---------------------------------------------------------------
def with_share(messages: pd.DataFrame) -> pd.DataFrame:
    """Messages plus ``accepted_in_round`` and ``share`` = weight × accepted_in_round."""
    out = messages.copy()
    accepted = (out["rejected"] == 0).astype(int)
    out["accepted_in_round"] = accepted.groupby(out["round"]).transform("sum")
    out["share"] = out["weight"].astype(float) * out["accepted_in_round"]
    return out


def has_weights(messages: pd.DataFrame | None) -> bool:
    """Whether the aggregator reported per-message weights (finite weight on an accepted message)."""
    if messages is None or len(messages) == 0:
        return False
    acc = messages["rejected"] == 0
    return bool(np.isfinite(messages.loc[acc, "weight"].to_numpy(dtype=float)).any())


def _kept_frame(messages: pd.DataFrame) -> pd.DataFrame:
    m = with_share(messages)
    m = m[np.isfinite(m["weight"].to_numpy(dtype=float))]
    m["kept"] = (m["weight"] > 0).astype(int)
    return m


def kept_by_client(messages: pd.DataFrame) -> pd.DataFrame:
    """Per client: messages received (with a weight), kept, kept rate, mean share."""
    m = _kept_frame(messages)
    g = m.groupby("client")
    out = pd.DataFrame(
        {
            "byzantine": g["byzantine"].max().astype(bool),
            "messages": g.size(),
            "kept": g["kept"].sum(),
            "mean_share": g["share"].mean(),
        }
    ).reset_index()
    out["rate"] = out["kept"] / out["messages"]
    return out[["client", "byzantine", "messages", "kept", "rate", "mean_share"]]


def kept_by_group(messages: pd.DataFrame) -> pd.DataFrame:
    """Honest vs Byzantine: messages received (with a weight), kept, kept rate, mean share."""
    m = _kept_frame(messages)
    rows = []
    for flag, name in ((0, "honest"), (1, "Byzantine")):
        part = m[m["byzantine"].astype(int) == flag]
        n = len(part)
        rows.append(
            {
                "group": name,
                "messages": n,
                "kept": int(part["kept"].sum()),
                "rate": part["kept"].sum() / n if n else math.nan,
                "mean_share": float(part["share"].mean()) if n else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=["group", "messages", "kept", "rate", "mean_share"])


# -- clipping -------------------------------------------------------------------------------
def has_clipping(rounds: pd.DataFrame, messages: pd.DataFrame | None = None) -> bool:
    """Whether the method clipped (a finite radius, or a clipped flag that is not NaN)."""
    if len(rounds) and np.isfinite(rounds["clip_radius"].to_numpy(dtype=float)).any():
        return True
    return messages is not None and len(messages) > 0 and bool(messages["clipped"].notna().any())


def clipped_fraction(rounds: pd.DataFrame) -> pd.Series:
    """Per round: clipped messages / accepted messages (NaN for rounds without clipping)."""
    accepted = (rounds["sampled"] - rounds["rejected"]).astype(float).replace(0.0, np.nan)
    frac = rounds["clipped"].astype(float) / accepted
    return frac.where(np.isfinite(rounds["clip_radius"].to_numpy(dtype=float)))


def clipping_table(rounds: pd.DataFrame, messages: pd.DataFrame | None = None) -> pd.DataFrame:
    """Clipping radius summary and clipped rates (all, honest, Byzantine)."""
    radius = rounds["clip_radius"].to_numpy(dtype=float)
    on = np.isfinite(radius)
    frac = clipped_fraction(rounds).to_numpy(dtype=float)
    rows: list[dict[str, Any]] = [
        {"quantity": "rounds with clipping", "value": int(on.sum())},
        {"quantity": "radius min", "value": float(radius[on].min()) if on.any() else math.nan},
        {"quantity": "radius median", "value": float(np.median(radius[on])) if on.any() else math.nan},
        {"quantity": "radius max", "value": float(radius[on].max()) if on.any() else math.nan},
        {"quantity": "radius last", "value": float(radius[on][-1]) if on.any() else math.nan},
        {"quantity": "clipped messages", "value": int(rounds.loc[on, "clipped"].sum())},
        {"quantity": "mean clipped fraction per round", "value": float(np.nanmean(frac)) if on.any() else math.nan},
    ]
    if messages is not None and len(messages):
        m = messages[messages["clipped"].notna()]
        for flag, name in ((0, "honest"), (1, "Byzantine")):
            part = m[m["byzantine"].astype(int) == flag]
            rows.append(
                {
                    "quantity": f"clipped rate, {name} messages",
                    "value": float(part["clipped"].astype(int).mean()) if len(part) else math.nan,
                }
            )
    return pd.DataFrame(rows, columns=["quantity", "value"])


# -- time and communication ------------------------------------------------------------------
def time_table(rounds: pd.DataFrame) -> pd.DataFrame:
    """Per part of a round: total seconds, ms per round, share of the rounds' time."""
    n = len(rounds)
    total_round = float(rounds["t_round"].astype(np.float64).sum()) if n else 0.0
    rows = []
    accounted = 0.0
    for col, name in TIME_PARTS.items():
        if col not in rounds:  # traces of schema 1 have no t_setup, of schema <= 3 no staging columns
            continue
        total = float(rounds[col].astype(np.float64).sum()) if n else 0.0
        accounted += total
        rows.append({"part": name, "column": col, "total_s": total})
    rows.append({"part": OTHER_TIME, "column": "t_round - parts", "total_s": total_round - accounted})
    rows.append({"part": "round (all)", "column": "t_round", "total_s": total_round})
    out = pd.DataFrame(rows)
    out["ms_per_round"] = 1e3 * out["total_s"] / n if n else math.nan
    out["share"] = out["total_s"] / total_round if total_round > 0 else math.nan
    return out[["part", "column", "total_s", "ms_per_round", "share"]]


def rejection_table(messages: pd.DataFrame, reasons: dict[int, str]) -> pd.DataFrame:
    """Messages per rejection reason, and how many of them were Byzantine."""
    rows = []
    for code, count in messages["rejected"].astype(int).value_counts().sort_index().items():
        part = messages[messages["rejected"].astype(int) == code]
        rows.append(
            {
                "code": int(code),
                "reason": reasons.get(int(code), "?"),
                "messages": int(count),
                "byzantine": int(part["byzantine"].astype(int).sum()),
            }
        )
    return pd.DataFrame(rows, columns=["code", "reason", "messages", "byzantine"])


def communication_table(rounds: pd.DataFrame) -> pd.DataFrame:
    n = len(rounds)
    rows = []
    for col in ("bytes_up", "bytes_down"):
        total = int(rounds[col].astype(np.int64).sum()) if n else 0
        rows.append(
            {"direction": col.split("_")[1], "total_bytes": total, "bytes_per_round": total / n if n else math.nan}
        )
    return pd.DataFrame(rows, columns=["direction", "total_bytes", "bytes_per_round"])


# -- one row per run ---------------------------------------------------------------------------
def run_row(t: Any) -> dict[str, Any]:
    """The summary columns of a run (``t``: a :class:`~byzmpi.analysis.load.TraceData`)."""
    a, r, e = t.attrs, t.rounds, t.evals
    row: dict[str, Any] = {
        "run": t.label,
        "path": str(t.path),
        "status": t.status,
        "rounds_done": int(a.get("rounds_done", -1)),
        "rounds": len(r),
        "rounds_planned": t.rounds_planned,
        "simulation": t.simulation,
        "world_size": a.get("world_size"),
        "n_clients": a.get("n_clients"),
        "n_byzantine": len(t.byzantine_ids),
        "wall_seconds": _f(a.get("wall_seconds")),
        "f_star": t.f_star,
    }
    for m in METRICS:
        row[f"final_{m}"] = float(e[m].iloc[-1]) if len(e) else math.nan
    row["final_round"] = int(e["round"].iloc[-1]) if len(e) else -1
    row["diverged"] = bool(len(e)) and not all(math.isfinite(row[f"final_{m}"]) for m in ("loss",))
    n = len(r)
    row["bytes_up"] = int(r["bytes_up"].sum()) if n else 0
    row["bytes_down"] = int(r["bytes_down"].sum()) if n else 0
    row["rejected"] = int(r["rejected"].sum()) if n else 0
    row["skipped"] = int(r["skipped"].sum()) if n else 0
    for col in (*TIME_PARTS, "t_round"):
        if col not in r:  # an older schema without this column (staging: schema <= 3)
            row[col] = math.nan
        else:
            row[col] = float(r[col].astype(np.float64).sum()) if n else 0.0
    row["oracle_byzantine_sampled_mean"] = float(r["byzantine"].mean()) if n else math.nan
    d = r["dist_honest_mean"].astype(float) if n else pd.Series(dtype=float)
    row["oracle_dist_honest_mean_mean"] = float(d.mean()) if n else math.nan
    row["oracle_dist_honest_mean_max"] = float(d.max()) if n else math.nan
    return row
