"""Hand-built traces in byzmpi's schema, written with :class:`byzmpi.trace.TraceWriter`, with
values drawn from a seed so that tests can recompute every number from a direct h5py read."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from byzmpi.trace import EVAL_DTYPE, MESSAGE_DTYPE, NOT_APPLICABLE, ROUND_DTYPE, TraceWriter

BASE_CONFIG: dict[str, Any] = {
    "run": {
        "name": "synth",
        "seed": 1,
        "rounds": 40,
        "eval_every": 10,
        "trace": "x.h5",
        "trace_messages": True,
        "flush_every": 256,
        "flush_seconds": 2.0,
        "progress": "none",
        "log_every": 10.0,
        "server_dtype": "float32",
        "plugins": [],
    },
    "clients": {"n": 6, "byzantine": 2, "byzantine_ids": [4, 5], "per_round": 4, "full_round": None},
    "task": {
        "name": "synthetic",
        "features": 5,
        "samples": 100,
        "heterogeneity": 0.5,
        "lam": 0.01,
        "batch_size": 8,
        "seed": None,
    },
    "method": {"name": "sgd", "lr": 0.1, "momentum": 0.0, "momentum_form": "ema"},
    "aggregator": {"name": "krum", "f": 2},
    "attack": {"name": "alie", "threat_model": "omniscient", "z": None},
    "debug": {"fail_rank": -1, "fail_round": -1},
}


def config(**sections: dict[str, Any]) -> dict[str, Any]:
    """BASE_CONFIG with some section fields replaced, e.g. ``config(method={"lr": 0.5})``."""
    cfg = copy.deepcopy(BASE_CONFIG)
    for name, fields in sections.items():
        if name in ("aggregator", "attack") and "name" in fields:
            keep = {"f": cfg[name].get("f")} if name == "aggregator" else {"threat_model": "omniscient"}
            cfg[name] = {"name": fields["name"], **{k: v for k, v in keep.items() if v is not None}}
        cfg[name].update(fields)
    return cfg


def attrs_for(cfg: dict[str, Any], *, simulation: bool = True) -> dict[str, Any]:
    return {
        "config": cfg,
        "world_size": 3,
        "n_clients": cfg["clients"]["n"],
        "byzantine_ids": list(cfg["clients"]["byzantine_ids"]),
        "method": cfg["method"]["name"],
        "aggregator": cfg["aggregator"]["name"],
        "attack": cfg["attack"]["name"],
        "threat_model": cfg["attack"]["threat_model"],
        "compressor": "identity",
        "seed": cfg["run"]["seed"],
        "simulation": simulation,
        "f_star": 0.25,
        "dim": 6,
    }


def round_rows(
    k0: int, k1: int, cfg: dict[str, Any], rng: np.random.Generator, *, clip: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of rounds [k0, k1) and their messages: random sampling, weights (the rule keeps the
    two messages of smallest norm), a rejected message now and then, clipping when ``clip``."""
    n, m = cfg["clients"]["n"], cfg["clients"]["per_round"]
    byz_ids = set(cfg["clients"]["byzantine_ids"])
    rounds = np.zeros(k1 - k0, ROUND_DTYPE)
    msgs = []
    for i, k in enumerate(range(k0, k1)):
        sampled = np.sort(rng.choice(n, size=m, replace=False))
        byz = np.array([c in byz_ids for c in sampled], dtype=np.uint8)
        out = np.zeros(m, MESSAGE_DTYPE)
        out["round"], out["client"], out["byzantine"], out["bytes"] = k, sampled, byz, 24
        out["norm"] = rng.uniform(0.5, 2.0, m) + 3.0 * byz
        out["rejected"] = np.where(rng.random(m) < 0.08, rng.integers(1, 4, m), 0)
        acc = out["rejected"] == 0
        out["dist_honest_mean"] = np.where(acc, rng.uniform(0, 1, m), np.nan)
        weight = np.zeros(m, np.float32)
        idx = np.flatnonzero(acc)
        if len(idx):
            chosen = idx[np.argsort(out["norm"][idx])[:2]]
            weight[chosen] = 1.0 / len(chosen)
        out["weight"] = weight
        radius = float(rng.uniform(1.0, 3.0)) if clip else np.nan
        out["clipped"] = (
            np.where(acc, (out["norm"] > radius).astype(np.float32), NOT_APPLICABLE) if clip else NOT_APPLICABLE
        )
        msgs.append(out)
        r = rounds[i]
        r["round"], r["sampled"], r["byzantine"], r["rejected"] = k, m, int(byz.sum()), int((~acc).sum())
        r["aggregate_norm"], r["honest_mean_norm"] = rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5)
        r["dist_honest_mean"] = rng.uniform(0.0, 0.3) * (1 + 2 * r["byzantine"])
        r["update_norm"] = 0.1 * r["aggregate_norm"]
        r["clip_radius"] = radius
        r["clipped"] = int(out["clipped"][acc].sum()) if clip else 0
        r["bytes_up"], r["bytes_down"] = 24 * m, 24 * (m - 1) + int(rng.integers(0, 3)) * 24
        for col in ("t_compute", "t_comm", "t_aggregate", "t_io"):
            r[col] = rng.uniform(1e-4, 3e-3)
        r["t_eval"] = rng.uniform(1e-3, 2e-3) if (k + 1) % cfg["run"]["eval_every"] == 0 else 0.0
        r["t_round"] = r["t_compute"] + r["t_comm"] + r["t_aggregate"] + r["t_io"] + r["t_eval"] + rng.uniform(0, 1e-3)
    return rounds, np.concatenate(msgs)


def eval_row(done: int, acc: float, gap: float) -> np.ndarray:
    return np.array([(done, 0.25 + gap, acc, gap, gap / 10)], EVAL_DTYPE)


def write_trace(
    path: str | Path,
    cfg: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    clip: bool = True,
    weights: bool = True,
    final_accuracy: float = 0.9,
    final_gap: float = 0.01,
    messages: bool = True,
    status: str = "finished",
) -> Path:
    """A complete trace: ``run.rounds`` rounds, evaluations every ``eval_every`` rounds whose
    accuracy and gap move geometrically from (0.5, 1.0) to (final_accuracy, final_gap)."""
    cfg = copy.deepcopy(cfg or BASE_CONFIG)
    rng = np.random.default_rng(seed)
    total, every = cfg["run"]["rounds"], cfg["run"]["eval_every"]
    w = TraceWriter(path, attrs_for(cfg), 6, messages=messages)
    rounds, msgs = round_rows(0, total, cfg, rng, clip=clip)
    if not weights:
        acc = msgs["rejected"] == 0
        msgs["weight"] = np.where(acc, np.nan, 0.0)
    w.append("rounds", rounds)
    w.append("messages", msgs)
    evals = sorted(set(range(0, total + 1, every)) | {total})
    for done in evals:
        frac = done / total
        acc = 0.5 + (final_accuracy - 0.5) * frac
        gap = 1.0 * (final_gap / 1.0) ** frac
        w.append("eval", eval_row(done, acc, gap))
    w.close(status, np.zeros(6), total if status == "finished" else -1, {"wall_seconds": 1.5})
    return Path(path)
