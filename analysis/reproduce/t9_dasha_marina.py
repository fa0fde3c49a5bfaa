"""T9 (docs/algorithms.md §9; the Byz-DASHA-PAGE code): Byz-DASHA-PAGE vs Byz-VR-MARINA on a logistic
regression with a non-convex regulariser, synthetic phishing-like data, |grad f|^2 against uplink bits,
estimator-space attacks, x^0 = x* + 1, seeds 1-5.

    .venv/bin/python analysis/reproduce/t9_dasha_marina.py            # run (one MPI job) + figure + table
    .venv/bin/python analysis/reproduce/t9_dasha_marina.py --no-run   # redraw from existing traces

Base config: configs/paper/t9_dasha_marina.toml (d = 68, 11,000 samples, n = 16 with 3 Byzantine, rand-k
K = 6, b = 7 = 1% of the local data, p = 0.01, CM + bucketing 2). Grid: method (DASHA-PAGE, VR-MARINA)
x attack (LF, BF, IPM, ALIE) x data, each with seeds 1-5:
* ``het``: each client its own generating distribution (heterogeneity 0.5, 'natural' split), the
  phishing-like setting of the spec;
* ``hom``: every client holds the full dataset (homogeneous, zeta = 0), where a robust method can
  drive |grad f|^2 to zero.
Every run: ``attack.space = "auto"`` (estimator space for both methods: the attack replaces the vector
the rule aggregates, g_i for DASHA, g^k + Q(Delta_i) for MARINA) and ``task.init = "optimum"`` with
``task.init_scale = 1`` (x^0 = x* + 1, x* by L-BFGS on the honest objective, as the DASHA code).
Step sizes (fixed, from exploratory runs on a 2-4 value grid under message-space BF from x^0 = 0):
LRS. Uplink bits per client = cumulative rounds.bytes_up * 8 / n.
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
SEEDS = C.SEEDS_ROSDHB
ROUNDS = 1200  # the code's comparisons run T/6 ~ 833 rounds; 80 runs x 1200 rounds fit ~11 min here
LEVELS = (1e-2, 1e-3, 1e-5)  # relative to the start
SEVERAL = 3.0  # "several orders of magnitude": log10(start / min) >= 3 in every seed
COMMON = {"attack.space": "auto", "task.init": "optimum", "task.init_scale": 1.0}


def variants(rounds: int | None) -> list[tuple[str, dict]]:
    extra = {"run.rounds": rounds or ROUNDS, **COMMON}
    out = [
        (f"{dk}_{m}_{a}", {**extra, **DATA[dk][1], "method.name": METHODS[m][1], "method.lr": LRS[m], "attack.name": a})
        for dk in DATA
        for a in ATTACKS
        for m in METHODS
    ]
    return C.seeded(out, SEEDS)


def bits_per_client(t) -> np.ndarray:
    """Cumulative uplink bits per client at each evaluation (eval.round = updates applied)."""
    cum = np.concatenate([[0.0], np.cumsum(t.rounds["bytes_up"].to_numpy(float)) * 8 / t.config["clients"]["n"]])
    return cum[np.minimum(t.evals["round"].to_numpy(), len(cum) - 1)]


def best_at(bits: np.ndarray, g: np.ndarray, budget: float) -> float:
    """The smallest |grad f|^2 evaluated within ``budget`` uplink bits per client."""
    ok = (bits <= budget) & np.isfinite(g)
    return float(np.min(g[ok])) if ok.any() else float("nan")


def summarise(groups: dict) -> list[dict]:
    rows = []
    for name, runs in groups.items():
        data, method, attack = name.split("_", 2)
        cols = C.gap_columns(runs, "grad_norm_sq")
        bits = [bits_per_client(t) for t in runs]
        g = [t.evals["grad_norm_sq"].to_numpy(float) for t in runs]
        row = {
            "name": name,
            "data": data,
            "method": method,
            "attack": attack,
            "seeds": C.seeds_of(runs),
            "rounds": int(len(runs[0].rounds)),
            "attack_space": sorted({str(t.attrs.get("attack_space")) for t in runs}),
            "init": sorted({str(t.config["task"].get("init")) for t in runs}),
            **{f"g_{k}": v for k, v in cols.items()},
            "bits_total": [float(b[-1]) for b in bits],
            "uplink_floats_per_client_round": [C.floats_per_client_round(t.rounds) for t in runs],
        }
        for lv in LEVELS:
            row[f"bits_to_{lv:g}"] = [C.first_at(b, y, lv * y[0], above=False) for b, y in zip(bits, g)]
        rows.append(row)
    return rows


def verdicts(rows: list[dict], groups: dict) -> list[C.Verdict]:
    by = {(r["data"], r["method"], r["attack"]): r for r in rows}
    out = []
    for dk in DATA:
        for attack, short in ATTACKS.items():
            d, m = by[(dk, "dasha", attack)], by[(dk, "marina", attack)]
            out.append(
                C.Verdict(
                    "T9",
                    f"Both methods drive |grad f|^2 down by several orders of magnitude ({dk}, {short})",
                    f"every seed of both methods: log10(start / smallest) >= {SEVERAL:g}",
                    f"orders: DASHA {C.pm(d['g_orders'])}, MARINA {C.pm(m['g_orders'])}",
                    all(o >= SEVERAL for o in d["g_orders"] + m["g_orders"]),
                )
            )
    for dk in DATA:
        for attack, short in ATTACKS.items():
            d, m = by[(dk, "dasha", attack)], by[(dk, "marina", attack)]
            lv = next(
                (
                    lv
                    for lv in reversed(LEVELS)
                    if np.isfinite(d[f"bits_to_{lv:g}"]).all() and np.isfinite(m[f"bits_to_{lv:g}"]).all()
                ),
                None,
            )
            if lv is not None:
                bd, bm = d[f"bits_to_{lv:g}"], m[f"bits_to_{lv:g}"]
                criterion = (
                    f"bits per client to |grad f|^2 <= {lv:g} x start (the deepest level every seed of both "
                    "reaches): mean over seeds, DASHA <= MARINA"
                )
                measured = f"DASHA {C.pm(bd)} vs MARINA {C.pm(bm)} bits"
                holds = bool(np.mean(bd) <= np.mean(bm))
            else:
                # no level every seed of both reaches: compare the best value within the common bit budget
                runs_d, runs_m = groups[f"{dk}_dasha_{attack}"], groups[f"{dk}_marina_{attack}"]
                vd, vm = [], []
                for td, tm in zip(runs_d, runs_m):
                    bdd, bmm = bits_per_client(td), bits_per_client(tm)
                    budget = min(bdd[-1], bmm[-1])
                    vd.append(best_at(bdd, td.evals["grad_norm_sq"].to_numpy(float), budget))
                    vm.append(best_at(bmm, tm.evals["grad_norm_sq"].to_numpy(float), budget))
                ratio = np.asarray(vd) / np.asarray(vm)
                criterion = (
                    "no level of 1e-2 x start reached by every seed of both: smallest |grad f|^2 within the bits "
                    "both spent (same seed), geometric mean over seeds of DASHA / MARINA <= 1"
                )
                measured = f"DASHA / MARINA {C.pm(ratio, log=True)}"
                holds = bool(np.isfinite(ratio).all() and np.exp(np.log(ratio).mean()) <= 1.0)
            out.append(
                C.Verdict(
                    "T9",
                    f"Per bit, DASHA-PAGE is at least as good as VR-MARINA ({dk}, {short})",
                    criterion,
                    measured,
                    holds,
                )
            )
    return out


def figure(groups: dict, path: Path) -> None:
    fig, axes = C.new_figure(len(ATTACKS), len(DATA), width=4.0, height=3.3)
    colors = {"dasha": "tab:blue", "marina": "tab:orange"}
    for i, dk in enumerate(DATA):
        for j, (attack, short) in enumerate(ATTACKS.items()):
            ax = axes[i, j]
            for m, (label, _) in METHODS.items():
                runs = groups[f"{dk}_{m}_{attack}"]
                xs = [bits_per_client(t)[1:] for t in runs]
                ys = [t.evals["grad_norm_sq"].to_numpy(float)[1:] for t in runs]
                grid, yy = C.on_common_x(xs, ys, log_x=True)
                C.band(ax, grid, yy, label=f"{label} (gamma = {LRS[m]:g})", color=colors[m], log=True, lw=1.2)
            ax.set_xscale("log")
            C.style_axes(
                ax,
                "uplink bits per client",
                "|grad f(x)|^2 (geo. mean, min-max)",
                f"{short}, {'heterogeneous' if dk == 'het' else 'homogeneous'}",
                loc="lower left",
            )
    fig.suptitle(
        "T9: Byz-DASHA-PAGE vs Byz-VR-MARINA, non-convex regularised LR (d = 68, n = 16, B = 3, rand-k K = 6, "
        f"CM + bucketing 2), estimator-space attacks, x0 = x* + 1, seeds {SEEDS[0]}-{SEEDS[-1]}",
        fontsize=11,
    )
    C.save_figure(fig, path)


def table(rows: list[dict], vs: list[C.Verdict], meta: dict) -> str:
    cols = [
        "data",
        "attack",
        "method",
        "|grad f|^2 start",
        "final",
        "smallest",
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
            "|grad f|^2 start": C.pm(r["g_start"], log=True),
            "final": C.pm(r["g_final"], log=True),
            "smallest": C.pm(r["g_min"], log=True),
            "orders of magnitude": C.pm(r["g_orders"], 2),
            "bits/client to 1e-2 x start": C.pm(r["bits_to_0.01"]),
            "to 1e-3 x start": C.pm(r["bits_to_0.001"]),
            "to 1e-5 x start": C.pm(r["bits_to_1e-05"]),
            "uplink floats / client / round": C.pm(r["uplink_floats_per_client_round"], 4),
        }
        for r in rows
    ]
    spaces = sorted({s for r in rows for s in r["attack_space"]})
    inits = sorted({s for r in rows for s in r["init"]})
    paragraphs = [
        "Setup: synthetic phishing-like data (no phishing file here): 11,000 samples, d = 68 (67 Gaussian features "
        "+ bias), labels +-1; logistic loss + 0.05*sum x_j^2/(1 + x_j^2) (non-convex); n = 16 (13 honest + 3 "
        "Byzantine); rand-k K = 6 = floor(0.1 d), independent masks; b = 7 (1% of ~687 local samples); "
        "p = 0.01 for both (DASHA: b/m; MARINA: min(b/m, 1/d)); CM + bucketing s = 2 (8 buckets, f = 3); "
        f"DASHA a = 1/(2d/K - 1); gamma DASHA {LRS['dasha']:g}, MARINA {LRS['marina']:g}; {meta['rounds']} rounds "
        f"(the code's comparisons use T/6 ~ 833 of 5000); seeds {list(SEEDS)}. Attack space (trace attr): "
        f"{', '.join(spaces)}; x^0: task.init = {', '.join(inits)} with init_scale 1 (x* + 1, as the code). "
        "Bits = 32 per float32 actually sent (the paper counts 64).",
        "Differences from the paper: synthetic data instead of phishing; step sizes from small exploratory grids "
        "(made before the estimator-space attacks and the x* + 1 start), not the paper's 2^j x gamma_th tuning; "
        "the 'hom' rows (every client with the full data) are an extra setting.",
        "Values: geometric mean [min, max] over seeds for |grad f|^2, mean ± std otherwise; 'n/a (n = 0, k "
        "non-finite)' = never reached in k seeds.",
    ]
    still = {
        m: (
            sum(f <= lo for r in rows if r["method"] == m for f, lo in zip(r["g_final"], r["g_min"])),
            sum(len(r["g_final"]) for r in rows if r["method"] == m),
        )
        for m in METHODS
    }
    notes = [
        "Runs still at their smallest |grad f|^2 at the last evaluation (still decreasing when the run ends): "
        + ", ".join(f"{METHODS[m][0]} {k} of {n}" for m, (k, n) in still.items())
        + ". Where VR-MARINA is still decreasing, its fixed step (tuned before the x* + 1 start) rather than "
        "a plateau limits it; the per-bit verdicts compare the methods at these steps only.",
        "On heterogeneous data both methods stop at a neighbourhood of the honest objective's stationary points "
        "(the median's bias on non-identical honest vectors); the homogeneous rows show what the methods reach "
        "without that bias.",
    ]
    return C.report("T9: Byz-DASHA-PAGE vs Byz-VR-MARINA, |grad f|^2 against bits", paragraphs, body, cols, vs, notes)


def main(argv: list[str] | None = None) -> int:
    args, traces, groups, cfg = C.run_target(
        __doc__,
        argv,
        BASE,
        OUT,
        TRACES,
        variants,
        "T9, generated by analysis/reproduce/t9_dasha_marina.py",
        timeout=1200,
    )
    meta = {"rounds": cfg["run"]["rounds"], "seeds": list(SEEDS), "lrs": LRS, "wall_s": C.wall_seconds(traces)}
    rows = summarise(groups)
    vs = verdicts(rows, groups)
    figure(groups, OUT / "t9_dasha_marina.png")
    C.write_verdicts(OUT, table(rows, vs, meta), meta, rows, vs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
