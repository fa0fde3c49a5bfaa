"""T7 (docs/algorithms.md §9; RoSDHB, Gupta et al. AISTATS 2026, and its code): RoSDHB vs Byz-DASHA-PAGE
under Fall of Empires, scikit-learn digits + MLP, 10 honest + f Byzantine, trimmed mean, seeds 1-5.

    .venv/bin/python analysis/reproduce/t7_rosdhb_dasha.py            # run (one MPI job) + figure + table
    .venv/bin/python analysis/reproduce/t7_rosdhb_dasha.py --no-run   # redraw from existing traces

Base config: configs/paper/t7_rosdhb_dasha.toml. Grid: f in {1, 2} Byzantine (n = 10 + f, trimmed mean
with trim f), K/d in {0.1, 0.25}, and per method a small step-size grid, each with seeds 1-5 (the
papers tune the step; each method is reported at its best step: the one with the fewest mean rounds to
the target over the seeds, among the steps whose every seed still ends above the target):
* RoSDHB: global (coordinated) rand-k mask, server momentum beta = 0.9 (EMA), gamma in ROS_LRS;
* Byz-DASHA-PAGE: independent rand-k masks, a = 1/(2d/K - 1), p = 1 (full local gradients, as the
  RoSDHB MNIST code's DASHA baseline), gamma in DASHA_LRS.
FOE: the RoSDHB code's search, eta on the linear grid 0.1, 0.2, ..., 5.0 (attack.grid = "linear",
eta_min 0.1, eta_max 5, eta_steps 50, zoom 0, refine 0), chosen each round against the server's actual
aggregator; attack.space = "auto" (estimator space: the momentum for RoSDHB, the stored g_i for DASHA).
Outcome: rounds to TARGET test accuracy (a seed that never gets there counts as rounds + 1, as the
code's sentinel 251 of 250), uplink float32 values per client per round (bytes_up / sampled / 4).
Traces: runs/paper/t7/ (not committed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from analysis.reproduce import common as C  # noqa: E402

OUT = C.RESULTS / "t7_rosdhb_dasha"
TRACES = C.ROOT / "runs" / "paper" / "t7"
BASE = C.CONFIGS / "t7_rosdhb_dasha.toml"
FS = (1, 2)
RATIOS = (0.1, 0.25)
ROS_LRS = (2.0, 4.0)  # around the best steps of the pre-issue-11 4-value grids (CPU)
DASHA_LRS = (0.6, 1.0)
TARGET = 0.90
ROUNDS = 100  # the targets are reached in 15-45 rounds; FOE's 50-point search costs ~40 ms a round here
SEEDS = C.SEEDS_ROSDHB
METHOD_LABEL = {"rosdhb": "RoSDHB (global mask)", "dasha": "Byz-DASHA-PAGE (independent masks)"}
FOE = {
    "attack.name": "foe",
    "attack.grid": "linear",
    "attack.eta_min": 0.1,
    "attack.eta_max": 5.0,
    "attack.eta_steps": 50,
    "attack.zoom": 0,
    "attack.refine": 0,
    "attack.space": "auto",
}
FOE_LABEL = "FOE, eta on the linear grid 0.1..5.0 (50 values), no zoom / refine (the RoSDHB code's search)"


def method_overrides(method: str, lr: float) -> dict:
    if method == "rosdhb":
        return {"method.lr": lr}
    return {
        "method.name": "dasha_page",
        "method.beta": None,
        "method.lr": lr,
        "method.p": 1.0,
        "compressor.name": "randk",
    }


def name_of(f: int, ratio: float, method: str, lr: float) -> str:
    return f"f{f}_k{ratio:g}_{method}_lr{lr:g}"


def variants(rounds: int | None, fs=FS, ratios=RATIOS, ros_lrs=ROS_LRS, dasha_lrs=DASHA_LRS) -> list[tuple[str, dict]]:
    extra = {"run.rounds": rounds or ROUNDS, **FOE}
    out = []
    for f in fs:
        for ratio in ratios:
            for method, lrs in (("rosdhb", ros_lrs), ("dasha", dasha_lrs)):
                for lr in lrs:
                    out.append(
                        (
                            name_of(f, ratio, method, lr),
                            {
                                **extra,
                                "clients.n": 10 + f,
                                "clients.byzantine": f,
                                "aggregator.f": f,
                                "compressor.ratio": ratio,
                                **method_overrides(method, lr),
                            },
                        )
                    )
    return C.seeded(out, SEEDS)


def rounds_to(t, target: float) -> float:
    """Rounds to the target accuracy; len(rounds) + 1 when never (the code's sentinel)."""
    r = C.first_at(t.evals["round"], t.evals["accuracy"], target)
    return r if np.isfinite(r) else float(len(t.rounds) + 1)


def summarise(groups: dict, target: float) -> list[dict]:
    rows = []
    for name, runs in groups.items():
        f, k, method, lr = name.split("_")
        rows.append(
            {
                "name": name,
                "f": int(f[1:]),
                "ratio": float(k[1:]),
                "method": method,
                "lr": float(lr[2:]),
                "seeds": C.seeds_of(runs),
                "rounds": int(len(runs[0].rounds)),
                "attack_space": sorted({str(t.attrs.get("attack_space")) for t in runs}),
                "rounds_to_target": [rounds_to(t, target) for t in runs],
                "never": int(
                    sum(not np.isfinite(C.first_at(t.evals["round"], t.evals["accuracy"], target)) for t in runs)
                ),
                "accuracy_final": [float(np.mean(t.evals["accuracy"].to_numpy(float)[-3:])) for t in runs],
                "accuracy_best": [float(t.evals["accuracy"].max()) for t in runs],
                "uplink_floats_per_client_round": [C.floats_per_client_round(t.rounds) for t in runs],
                "uplink_floats_per_client_round_after_0": [
                    C.floats_per_client_round(t.rounds[t.rounds["round"] > 0]) for t in runs
                ],
            }
        )
    return rows


def best(rows: list[dict], f: int, ratio: float, method: str) -> dict:
    """The step with the fewest mean rounds to the target among those whose every seed ends above it
    (a step that hits the target and then collapses does not count); all steps when none does."""
    cand = [r for r in rows if r["f"] == f and r["ratio"] == ratio and r["method"] == method]
    stable = [r for r in cand if min(r["accuracy_final"]) >= TARGET]
    cand = stable or cand
    return min(cand, key=lambda r: (float(np.mean(r["rounds_to_target"])), -float(np.mean(r["accuracy_final"]))))


def verdicts(rows: list[dict]) -> list[C.Verdict]:
    out = []
    speed = {}
    for f in FS:
        for ratio in RATIOS:
            r, d = best(rows, f, ratio, "rosdhb"), best(rows, f, ratio, "dasha")
            mr, md = float(np.mean(r["rounds_to_target"])), float(np.mean(d["rounds_to_target"]))
            speed[(f, ratio)] = md / mr
            out.append(
                C.Verdict(
                    "T7",
                    f"RoSDHB reaches {TARGET:.0%} test accuracy in fewer rounds than Byz-DASHA-PAGE (f = {f}, K/d = {ratio:g})",
                    "mean over seeds of rounds to the target (never = rounds + 1), each method at its best step: "
                    "RoSDHB < DASHA",
                    f"RoSDHB (gamma {r['lr']:g}) {C.pm(r['rounds_to_target'])} vs DASHA (gamma {d['lr']:g}) "
                    f"{C.pm(d['rounds_to_target'])}; ratio x{C.fmt(md / mr)}",
                    mr < md,
                )
            )
    ros = [
        x for f in FS for ra in RATIOS for x in best(rows, f, ra, "rosdhb")["uplink_floats_per_client_round_after_0"]
    ]
    das = [x for f in FS for ra in RATIOS for x in best(rows, f, ra, "dasha")["uplink_floats_per_client_round_after_0"]]
    rel = [
        np.mean(best(rows, f, ra, "rosdhb")["uplink_floats_per_client_round_after_0"])
        < np.mean(best(rows, f, ra, "dasha")["uplink_floats_per_client_round_after_0"])
        for f in FS
        for ra in RATIOS
    ]
    out.append(
        C.Verdict(
            "T7",
            "RoSDHB uses fewer uplink floats per worker (K vs K + indices)",
            "in every (f, K/d): mean uplink float32 values per client per round (rounds >= 1) of RoSDHB < DASHA's",
            f"RoSDHB {C.pm(ros, 4)} vs DASHA {C.pm(das, 4)} (pooled over the 4 settings; fewer in "
            f"{sum(rel)} of {len(rel)})",
            all(rel),
        )
    )
    for f in FS:
        lo, hi = speed[(f, min(RATIOS))], speed[(f, max(RATIOS))]
        out.append(
            C.Verdict(
                "T7",
                f"The gap widens at higher compression (f = {f})",
                f"speed-up (DASHA / RoSDHB mean rounds to the target) at K/d = {min(RATIOS):g} > at K/d = {max(RATIOS):g}",
                f"x{C.fmt(lo)} at K/d = {min(RATIOS):g} vs x{C.fmt(hi)} at K/d = {max(RATIOS):g}",
                lo > hi,
            )
        )
    return out


def cum_floats(t) -> np.ndarray:
    cum = np.concatenate([[0.0], np.cumsum(t.rounds["bytes_up"].to_numpy(float)) / 4.0 / t.config["clients"]["n"]])
    return cum[np.minimum(t.evals["round"].to_numpy(), len(cum) - 1)]


def figure(groups: dict, rows: list[dict], target: float, path: Path) -> None:
    fig, axes = C.new_figure(len(FS) * len(RATIOS), 2, width=4.2, height=3.4)
    colors = {"rosdhb": "tab:blue", "dasha": "tab:orange"}
    for j, (f, ratio) in enumerate((f, r) for f in FS for r in RATIOS):
        for method in ("rosdhb", "dasha"):
            b = best(rows, f, ratio, method)
            runs = groups[b["name"]]
            lab = f"{METHOD_LABEL[method]}, gamma = {b['lr']:g}"
            xs, ys = C.stack(runs, "accuracy")
            C.band(axes[0, j], xs, ys, label=lab, color=colors[method], lw=1.3)
            # floats per client are the same in every seed (deterministic message sizes): x of the first seed
            C.band(axes[1, j], cum_floats(runs[0])[: ys.shape[1]], ys, label=lab, color=colors[method], lw=1.3)
        for i, xl in enumerate(("round", "uplink floats per client (cumulative)")):
            ax = axes[i, j]
            ax.axhline(target, color="k", lw=0.7, ls=":")
            ax.set_ylim(0.5, 1.0)
            if i == 1:
                ax.set_xscale("log")
            C.style_axes(
                ax,
                xl,
                "test accuracy (mean, min-max)",
                f"f = {f}, K/d = {ratio:g}",
                log=False,
                legend_size=6,
                loc="lower right",
            )
    fig.suptitle(
        f"T7: RoSDHB vs Byz-DASHA-PAGE under FOE (linear eta grid, estimator space; digits MLP, 10 honest + f "
        f"Byzantine, trimmed mean), seeds {SEEDS[0]}-{SEEDS[-1]}; dotted: target {target:.0%}",
        fontsize=11,
    )
    C.save_figure(fig, path)


def table(rows: list[dict], vs: list[C.Verdict], meta: dict, target: float) -> str:
    cols = [
        "f",
        "K/d",
        "method",
        "best gamma",
        f"rounds to {target:.0%}",
        "never",
        "final accuracy",
        "uplink floats / client / round (all rounds)",
        "... (rounds >= 1)",
    ]
    body = []
    for f in FS:
        for ratio in RATIOS:
            for method in ("rosdhb", "dasha"):
                b = best(rows, f, ratio, method)
                body.append(
                    {
                        "f": f,
                        "K/d": f"{ratio:g}",
                        "method": METHOD_LABEL[method],
                        "best gamma": f"{b['lr']:g}",
                        f"rounds to {target:.0%}": C.pm(b["rounds_to_target"]),
                        "never": f"{b['never']}/{len(b['seeds'])}",
                        "final accuracy": C.pm(b["accuracy_final"]),
                        "uplink floats / client / round (all rounds)": C.pm(b["uplink_floats_per_client_round"], 4),
                        "... (rounds >= 1)": C.pm(b["uplink_floats_per_client_round_after_0"], 4),
                    }
                )
    grid = [
        {
            "method": METHOD_LABEL[r["method"]],
            "f": r["f"],
            "K/d": f"{r['ratio']:g}",
            "gamma": f"{r['lr']:g}",
            f"rounds to {target:.0%}": C.pm(r["rounds_to_target"]),
            "never": f"{r['never']}/{len(r['seeds'])}",
            "final accuracy": C.pm(r["accuracy_final"]),
        }
        for r in rows
    ]
    spaces = sorted({s for r in rows for s in r["attack_space"]})
    paragraphs = [
        f"Setup: scikit-learn digits (20% held out), MLP 64-32-10 (tanh, d = 2410), n = 10 + f clients "
        f"(f Byzantine), Dirichlet(alpha = 5) label split, full local gradients, coordinate-wise trimmed mean "
        f"(trim f), {FOE_LABEL}, chosen each round against the server's actual aggregator; attack space "
        f"(trace attr): {', '.join(spaces)}; {meta['rounds']} rounds; seeds {list(SEEDS)}. RoSDHB: global rand-k "
        "mask, beta = 0.9. Byz-DASHA-PAGE: independent rand-k masks, a = 1/(2d/K - 1), p = 1. Each method at "
        f"its best step (fewest mean rounds to the target among the steps whose every seed ends above it) from "
        f"a 2-value grid (RoSDHB {list(ROS_LRS)}, DASHA {list(DASHA_LRS)}: the best steps of the single-seed "
        "pre-issue-11 4-value grids {0.5, 1, 2, 4} / {0.1, 0.3, 0.6, 1}, cut to fit the CPU); the step is chosen on the same seeds "
        "it is reported on, for both methods alike.",
        f"Differences from the paper: MNIST / CIFAR-10 and a 95% MNIST target there; digits + MLP with a "
        f"{target:.0%} target here; {meta['rounds']} rounds instead of 250 (FOE's 50-point search costs ~40 ms "
        "a round on this machine; the single-seed pre-issue-11 runs reached 90% in 15-45 rounds; a run that "
        "never does is counted in 'never'); evaluations every 5 rounds, so rounds to the target are multiples of 5. MPI run time "
        f"{meta['wall_s']:.0f} s summed over the runs. Values: mean ± std over seeds.",
    ]
    notes = [
        "Uplink: in byzmpi both rand-k variants send exactly K float32 values per message (the mask is a pure "
        "function of (seed, round[, client]), so indices never travel); DASHA also sends one uncompressed "
        "d-vector per client in round 0 (its g_i initialisation). The paper's 'K vs K + indices' saving only "
        "exists when independent masks must carry their indices, so that verdict is about byzmpi's wire format.",
        "## Every run of the step-size grid",
        C.md_table(grid, ["method", "f", "K/d", "gamma", f"rounds to {target:.0%}", "never", "final accuracy"]),
    ]
    return C.report("T7: RoSDHB vs Byz-DASHA-PAGE under FOE", paragraphs, body, cols, vs, notes)


def main(argv: list[str] | None = None) -> int:
    args, traces, groups, cfg = C.run_target(
        __doc__,
        argv,
        BASE,
        OUT,
        TRACES,
        variants,
        "T7, generated by analysis/reproduce/t7_rosdhb_dasha.py",
        timeout=1200,
    )
    meta = {
        "rounds": cfg["run"]["rounds"],
        "seeds": list(SEEDS),
        "target": TARGET,
        "foe": FOE_LABEL,
        "wall_s": C.wall_seconds(traces),
    }
    rows = summarise(groups, TARGET)
    vs = verdicts(rows)
    figure(groups, rows, TARGET, OUT / "t7_rosdhb_dasha.png")
    C.write_verdicts(OUT, table(rows, vs, meta, TARGET), meta, rows, vs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
