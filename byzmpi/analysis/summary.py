"""A run's summary from its trace: what ``byzmpi report`` prints."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..trace import TIME_SPLIT, open_trace


def summarize(path: str | Path) -> dict[str, Any]:
    """Numbers of a trace (works on a trace still being written)."""
    with open_trace(path) as f:
        attrs = {k: f.attrs[k] for k in f.attrs}
        rounds = f["rounds"][...]
        evals = f["eval"][...]
    cfg = json.loads(attrs["config"])
    out: dict[str, Any] = {
        "path": str(path),
        "status": str(attrs.get("status")),
        "rounds_planned": cfg["run"]["rounds"],
        "rounds": int(len(rounds)),
        "method": str(attrs["method"]),
        "aggregator": str(attrs["aggregator"]),
        "attack": str(attrs["attack"]),
        "threat_model": str(attrs["threat_model"]),
        "n_clients": int(attrs["n_clients"]),
        "byzantine": len(json.loads(attrs["byzantine_ids"]))
        if isinstance(attrs["byzantine_ids"], str)
        else int(np.size(attrs["byzantine_ids"])),
        "world_size": int(attrs["world_size"]),
        "simulation": bool(attrs["simulation"]),
    }
    if len(evals):
        out["initial"] = {k: float(evals[0][k]) for k in ("loss", "accuracy", "gap", "grad_norm_sq")}
        out["final"] = {k: float(evals[-1][k]) for k in ("loss", "accuracy", "gap", "grad_norm_sq")}
        out["final"]["round"] = int(evals[-1]["round"])
    if len(rounds):
        byz = rounds["byzantine"].astype(np.int64)
        sampled = rounds["sampled"].astype(np.int64)
        out["sampled_per_round"] = {"min": int(sampled.min()), "mean": float(sampled.mean()), "max": int(sampled.max())}
        out["byzantine_sampled"] = {
            "mean": float(byz.mean()),
            "max": int(byz.max()),
            "rounds_with_any": int((byz > 0).sum()),
            "rounds_with_majority": int((2 * byz > sampled).sum()),
        }
        out["rejected"] = int(rounds["rejected"].sum())
        out["skipped"] = int(rounds["skipped"].sum())
        out["bytes_up"] = int(rounds["bytes_up"].sum())
        out["bytes_down"] = int(rounds["bytes_down"].sum())
        total = {k: float(rounds[k].astype(np.float64).sum()) if k in rounds.dtype.names else 0.0 for k in TIME_SPLIT}
        total["t_round"] = float(rounds["t_round"].astype(np.float64).sum())
        out["time"] = total
        out["time_per_round_ms"] = {k: 1e3 * v / len(rounds) for k, v in total.items()}
    out["wall_seconds"] = float(attrs["wall_seconds"]) if "wall_seconds" in attrs else math.nan
    return out


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"trace      {s['path']}  ({s['status']})",
        f"run        {s['method']} + {s['aggregator']} vs {s['attack']} ({s['threat_model']}"
        f"{', simulated' if s['simulation'] else ''}); {s['n_clients']} clients, {s['byzantine']} Byzantine, "
        f"{s['world_size']} ranks",
        f"rounds     {s['rounds']} of {s['rounds_planned']}",
    ]
    if "final" in s:
        i, f = s["initial"], s["final"]
        gap = (
            f"  gap {i['gap']:.4g} -> {f['gap']:.4g}"
            if math.isfinite(f["gap"])
            else f"  |grad f|^2 {i['grad_norm_sq']:.4g} -> {f['grad_norm_sq']:.4g}"
        )
        lines.append(f"loss       {i['loss']:.6g} -> {f['loss']:.6g}  (round {f['round']})")
        lines.append(f"accuracy   {i['accuracy']:.4f} -> {f['accuracy']:.4f}{gap}")
    if "sampled_per_round" in s:
        sp, b = s["sampled_per_round"], s["byzantine_sampled"]
        lines.append(f"sampled    {sp['mean']:.2f} clients/round (min {sp['min']}, max {sp['max']})")
        lines.append(
            f"byzantine  {b['mean']:.2f} sampled/round (max {b['max']}); any in {b['rounds_with_any']} "
            f"rounds, majority in {b['rounds_with_majority']}"
        )
        lines.append(f"rejected   {s['rejected']} messages; {s['skipped']} rounds without a step")
        lines.append(f"bytes      up {_fmt_bytes(s['bytes_up'])}, down {_fmt_bytes(s['bytes_down'])}")
        t = s["time_per_round_ms"]
        lines.append(
            f"time/round {t['t_round']:.3f} ms: setup {t['t_setup']:.3f}, compute {t['t_compute']:.3f}, "
            f"comm {t['t_comm']:.3f}, "
            f"aggregate {t['t_aggregate']:.3f}, io {t['t_io']:.3f}, eval {t['t_eval']:.3f}"
            + (
                f"; staging: server {t['t_stage']:.3f}, hosts {t['t_stage_hosts']:.3f}"
                if t["t_stage"] or t["t_stage_hosts"]
                else ""
            )
        )
    if math.isfinite(s["wall_seconds"]):
        lines.append(f"wall       {s['wall_seconds']:.2f} s")
    return "\n".join(lines)
