"""T9 (docs/algorithms.md §9; the Byz-DASHA-PAGE code): Byz-DASHA-PAGE vs Byz-VR-MARINA on a logistic
regression with a non-convex regulariser, synthetic phishing-like data, |grad f|^2 against uplink bits.

    .venv/bin/python analysis/reproduce/t9_dasha_marina.py            # run (one MPI job) + figure + table
    .venv/bin/python analysis/reproduce/t9_dasha_marina.py --no-run   # redraw from existing traces

Base config: configs/paper/t9_dasha_marina.toml (d = 68, 11,000 samples, n = 16 with 3 Byzantine, rand-k
K = 6, b = 7 = 1% of the local data, p = 0.01, CM + bucketing 2). Grid: method (DASHA-PAGE, VR-MARINA)
x attack (LF, BF, IPM, ALIE) x data:
* ``het``: each client its own generating distribution (heterogeneity 0.5, 'natural' split), the
  phishing-like setting of the spec;
* ``hom``: every client holds the full dataset (homogeneous, zeta = 0), where a robust method can
  drive |grad f|^2 to zero (the coordinate-wise median of non-identical honest vectors is biased,
  so on heterogeneous data both methods stop at a neighbourhood; see table.md).
Step sizes (fixed, from exploratory runs on a 2-4 value grid under BF): DASHA LRS["dasha"], MARINA
LRS["marina"]. Uplink bits per client = cumulative rounds.bytes_up * 8 / n.
Traces: runs/paper/t9/ (not committed). Outputs: analysis/results/t9_dasha_marina/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from analysis.reproduce import common as C  # noqa: E402

OUT = C.RESULTS / "t9_dasha_marina"
TRACES = C.ROOT / "runs" / "paper" / "t9"
BASE = C.CONFIGS / "t9_dasha_marina.toml"
ATTACKS = {"label_flip": "LF", "sign_flip": "BF", "ipm": "IPM", "alie": "ALIE"}
METHODS = {"dasha": ("Byz-DASHA-PAGE", "dasha_page"), "marina": ("Byz-VR-MARINA", "vr_marina")}
LRS = {"dasha": 0.1, "marina": 0.03}
DATA = {
    "het": ("heterogeneous (natural split, h = 0.5)", {"task.heterogeneity": 0.5, "task.partition": "natural"}),
    "hom": ("homogeneous (every client holds all data)", {"task.heterogeneity": 0.0, "task.partition": "full"}),
}
LEVELS = (1e-2, 1e-3, 1e-5)


def variants(rounds: int | None, data=tuple(DATA), attacks=tuple(ATTACKS), lrs=LRS) -> list[tuple[str, dict]]:
    extra = {"run.rounds": rounds} if rounds else {}
    return [
        (f"{dk}_{m}_{a}", {**extra, **DATA[dk][1], "method.name": METHODS[m][1], "method.lr": lrs[m], "attack.name": a})
        for dk in data
        for a in attacks
        for m in METHODS
    ]


def bits_per_client(t) -> np.ndarray:
    """Cumulative uplink bits per client at each evaluation (eval.round = updates applied)."""
    cum = np.concatenate([[0.0], np.cumsum(t.rounds["bytes_up"].to_numpy(float)) * 8 / t.config["clients"]["n"]])
    return cum[np.minimum(t.evals["round"].to_numpy(), len(cum) - 1)]


def first(x: np.ndarray, y: np.ndarray, level: float) -> float:
    hit = np.flatnonzero(np.isfinite(y) & (y <= level))
    return float(x[hit[0]]) if hit.size else float("nan")


def summarise(traces: dict) -> list[dict]:
    rows = []
    for name, t in traces.items():
        data, method, attack = name.split("_", 2)
        g = t.evals["grad_norm_sq"].to_numpy(float)
        bits = bits_per_client(t)
        row = {
            "name": name,
            "data": data,
            "method": method,
            "attack": attack,
            "rounds": int(len(t.rounds)),
            "g_start": float(g[0]),
            "g_final": float(g[-1]),
            "g_min": float(np.nanmin(g)),
            "orders": float(np.log10(g[0] / np.nanmin(g))),
            "bits_total": float(bits[-1]),
            "uplink_floats_per_client_round": C.floats_per_client_round(t.rounds),
        }
        for lv in LEVELS:
            row[f"bits_to_{lv:g}"] = first(bits, g, lv * g[0])
        rows.append(row)
    return rows


def figure(traces: dict, path: Path) -> None:
    fig, axes = C.new_figure(len(ATTACKS), len(DATA), width=4.0, height=3.3)
    colors = {"dasha": "tab:blue", "marina": "tab:orange"}
    for i, dk in enumerate(DATA):
        for j, (attack, short) in enumerate(ATTACKS.items()):
            ax = axes[i, j]
            for m, (label, _) in METHODS.items():
                t = traces[f"{dk}_{m}_{attack}"]
                ax.plot(
                    bits_per_client(t)[1:],
                    t.evals["grad_norm_sq"].to_numpy(float)[1:],
                    color=colors[m],
                    lw=1.2,
                    label=f"{label} (gamma = {LRS[m]:g})",
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("uplink bits per client")
            ax.set_ylabel("|grad f(x)|^2")
            ax.set_title(f"{short}, {'heterogeneous' if dk == 'het' else 'homogeneous'}", fontsize=10)
            ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        "T9: Byz-DASHA-PAGE vs Byz-VR-MARINA, non-convex regularised LR (d = 68, n = 16, B = 3, "
        "rand-k K = 6, CM + bucketing 2)",
        fontsize=11,
    )
    C.save_figure(fig, path)


def table(rows: list[dict], meta: dict) -> str:
    cols = [
        "data",
        "attack",
        "method",
        "|grad f|^2 start",
        "final",
        "min",
        "orders of magnitude",
        "bits/client to 1e-2 x start",
        "to 1e-3 x start",
        "to 1e-5 x start",
        "uplink floats / client / round",
    ]
    body = [
        {
            "data": r["data"],
            "attack": ATTACKS[r["attack"]],
            "method": METHODS[r["method"]][0],
            "|grad f|^2 start": C.fmt(r["g_start"]),
            "final": C.fmt(r["g_final"]),
            "min": C.fmt(r["g_min"]),
            "orders of magnitude": f"{r['orders']:.1f}",
            "bits/client to 1e-2 x start": C.fmt(r["bits_to_0.01"]),
            "to 1e-3 x start": C.fmt(r["bits_to_0.001"]),
            "to 1e-5 x start": C.fmt(r["bits_to_1e-05"]),
            "uplink floats / client / round": C.fmt(r["uplink_floats_per_client_round"], 4),
        }
        for r in rows
    ]
    by = {(r["data"], r["method"], r["attack"]): r for r in rows}
    verdict = []
    for dk in DATA:
        for attack, short in ATTACKS.items():
            d, m = by[(dk, "dasha", attack)], by[(dk, "marina", attack)]
            lv = next(
                (
                    lv
                    for lv in reversed(LEVELS)
                    if np.isfinite(d[f"bits_to_{lv:g}"]) and np.isfinite(m[f"bits_to_{lv:g}"])
                ),
                None,
            )
            if lv is None:
                cmp = (
                    "only DASHA reaches 1e-2 x start"
                    if np.isfinite(d["bits_to_0.01"])
                    else "only MARINA reaches 1e-2 x start"
                    if np.isfinite(m["bits_to_0.01"])
                    else "neither reaches 1e-2"
                )
            else:
                ratio = m[f"bits_to_{lv:g}"] / d[f"bits_to_{lv:g}"]
                cmp = f"to {lv:g} x start MARINA needs x{ratio:.2f} the bits of DASHA"
            verdict.append(
                f"* {dk}, {short}: orders of magnitude DASHA {d['orders']:.1f}, MARINA {m['orders']:.1f}; {cmp}."
            )
    lines = [
        "# T9: Byz-DASHA-PAGE vs Byz-VR-MARINA, |grad f|^2 against bits",
        "",
        f"Setup: synthetic phishing-like data (no phishing file here): 11,000 samples, d = 68 (67 Gaussian features "
        f"+ bias), labels +-1; logistic loss + 0.05*sum x_j^2/(1 + x_j^2) (non-convex); n = 16 (13 honest + 3 "
        f"Byzantine); rand-k K = 6 = floor(0.1 d), independent masks; b = 7 (1% of ~687 local samples); "
        f"p = 0.01 for both (DASHA: b/m; MARINA: min(b/m, 1/d)); CM + bucketing s = 2 (8 buckets, f = 3); "
        f"DASHA a = 1/(2d/K - 1); gamma DASHA {LRS['dasha']:g}, MARINA {LRS['marina']:g} (best of small grids in "
        f"exploratory runs); {meta['rounds']} rounds (the code's comparisons use T/6 ~ 833 of 5000); seed "
        f"{meta['seed']}; x^0 = 0 (the code starts at x* + 1). Bits = 32 per float32 actually sent (the paper "
        f"counts 64).",
        "",
        "Paper's expected outcome: both methods drive |grad f|^2 down by several orders of magnitude; per bit, "
        "DASHA-PAGE is at least as good as VR-MARINA (VR-MARINA sends full d-vectors in c_k = 1 rounds).",
        "",
        C.md_table(body, cols),
        "",
        "## Measured vs paper",
        "",
        *verdict,
        "* On heterogeneous data both methods stop at a neighbourhood of the honest objective's stationary "
        "points. Exploratory DASHA runs (gamma = 0.1, not committed): no attack, h = 0.5, CM + bucketing: plateau "
        "|grad f|^2 ~ 1e-3; same with the plain mean: plateau 5.0e-4 (with attack 'none' the 3 'Byzantine' clients "
        "train honestly on their own data, so the mean's fixed point is the 16-client, not the 13-honest-client, "
        "stationary point); no attack, h = 0 (iid but different samples), CM + bucketing: 1.7e-4; every client "
        "holding the full data, BF: ~1e-13. So the plateau is the heterogeneity neighbourhood of robust "
        "aggregation (the median's bias on non-identical honest vectors), not a failure of either method.",
        "* Uplink floats per client per round: DASHA = K = 6 after its dense round 0; MARINA = K in difference "
        "rounds and d = 68 in full rounds (p = 0.01), so ~6.6 on average.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args(__doc__, argv, ranks=3, timeout=2400)
    vs = variants(args.rounds)
    traces = C.run_variants(
        BASE, vs, OUT, TRACES, args, header="T9, generated by analysis/reproduce/t9_dasha_marina.py"
    )
    cfg = next(iter(traces.values())).config
    meta = {"rounds": cfg["run"]["rounds"], "seed": cfg["run"]["seed"], "lrs": LRS}
    rows = summarise(traces)
    figure(traces, OUT / "t9_dasha_marina.png")
    C.write_outputs(OUT, table(rows, meta), meta, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
