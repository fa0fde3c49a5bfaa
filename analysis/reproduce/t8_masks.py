"""T8 (docs/algorithms.md §9, an ablation motivated by RoSDHB): RoSDHB with a coordinated (global) rand-k
mask vs the same method with independent per-client masks, under FOE, everything else as T7.

    .venv/bin/python analysis/reproduce/t8_masks.py            # run (one MPI job) + figure + table
    .venv/bin/python analysis/reproduce/t8_masks.py --no-run   # redraw from existing traces

Base config: configs/paper/t8_masks.toml (= T7's RoSDHB run). Grid: f in {1, 2}, K/d in {0.1, 0.25},
compressor randk_coordinated (global mask) vs randk (independent masks), one step size (LR, RoSDHB's
best on T7's grid in the exploratory runs). Diagnostics from the trace (oracle fields):
* dispersion of the honest aggregator inputs (the server momenta m_i): mean over rounds of
  mean_i |m_i - mean_honest|^2 / |mean_honest|^2 (messages.dist_honest_mean, rounds.honest_mean_norm);
* error of the aggregate: mean over rounds of |R_t - mean_honest| / |mean_honest| (rounds.dist_honest_mean).
Traces: runs/paper/t8/ (not committed). Outputs: analysis/results/t8_masks/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from analysis.reproduce import common as C  # noqa: E402

OUT = C.RESULTS / "t8_masks"
TRACES = C.ROOT / "runs" / "paper" / "t8"
BASE = C.CONFIGS / "t8_masks.toml"
FS = (1, 2)
RATIOS = (0.1, 0.25)
MASKS = {"global": "randk_coordinated", "independent": "randk"}
LR = 1.0
TARGET = 0.90


def variants(rounds: int | None, fs=FS, ratios=RATIOS, lr: float = LR) -> list[tuple[str, dict]]:
    extra = {"run.rounds": rounds} if rounds else {}
    return [
        (
            f"f{f}_k{ratio:g}_{mask}",
            {
                **extra,
                "clients.n": 10 + f,
                "clients.byzantine": f,
                "aggregator.f": f,
                "compressor.name": comp,
                "compressor.ratio": ratio,
                "method.lr": lr,
            },
        )
        for f in fs
        for ratio in ratios
        for mask, comp in MASKS.items()
    ]


EARLY = 30  # rounds 1..EARLY: the phase in which the runs climb to the target accuracy


def dispersion(t) -> tuple[float, float, float]:
    """(relative dispersion of the honest aggregator inputs, relative error of the aggregate), averaged
    over rounds >= 1, and the relative error of the aggregate over rounds 1..EARLY."""
    msg, rd = t.messages, t.rounds.set_index("round")
    h = msg[(msg["byzantine"] == 0) & (msg["round"] > 0)]
    per_round = (h["dist_honest_mean"].astype(float) ** 2).groupby(h["round"]).mean()
    norm2 = rd.loc[per_round.index, "honest_mean_norm"].astype(float) ** 2
    rel = (per_round / norm2).replace([np.inf, -np.inf], np.nan)
    r = rd[rd.index > 0]
    err = (r["dist_honest_mean"].astype(float) / r["honest_mean_norm"].astype(float)).replace([np.inf, -np.inf], np.nan)
    return float(np.nanmean(rel)), float(np.nanmean(err)), float(np.nanmean(err[err.index <= EARLY]))


def summarise(traces: dict, target: float) -> list[dict]:
    rows = []
    for name, t in traces.items():
        f, k, mask = name.split("_")
        acc = t.evals["accuracy"].to_numpy(float)
        hit = np.flatnonzero(acc >= target)
        disp, err, early = dispersion(t)
        rows.append(
            {
                "name": name,
                "f": int(f[1:]),
                "ratio": float(k[1:]),
                "mask": mask,
                "rounds_to_target": float(t.evals["round"].iloc[hit[0]]) if hit.size else float("nan"),
                "accuracy_final": float(np.mean(acc[-3:])),
                "accuracy_best": float(acc.max()),
                "loss_final": float(t.evals["loss"].iloc[-1]),
                "input_dispersion": disp,
                "aggregate_error": err,
                "aggregate_error_early": early,
                "rounds": int(len(t.rounds)),
                "uplink_floats_per_client_round": C.floats_per_client_round(t.rounds),
            }
        )
    return rows


def figure(traces: dict, rows: list[dict], target: float, path: Path) -> None:
    fig, axes = C.new_figure(len(FS) * len(RATIOS), 2, width=4.2, height=3.4)
    colors = {"global": "tab:blue", "independent": "tab:red"}
    for j, (f, ratio) in enumerate((f, r) for f in FS for r in RATIOS):
        for mask in MASKS:
            t = traces[f"f{f}_k{ratio:g}_{mask}"]
            axes[0, j].plot(t.evals["round"], t.evals["accuracy"], color=colors[mask], lw=1.3, label=f"{mask} mask")
            r = t.rounds[t.rounds["round"] > 0]
            err = (r["dist_honest_mean"] / r["honest_mean_norm"]).rolling(10, min_periods=1).mean()
            axes[1, j].plot(r["round"], err, color=colors[mask], lw=1.0, label=f"{mask} mask")
        ax = axes[0, j]
        ax.axhline(target, color="k", lw=0.7, ls=":")
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("round")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"f = {f}, K/d = {ratio:g}", fontsize=10)
        ax.grid(alpha=0.3)
        ax = axes[1, j]
        ax.set_yscale("log")
        ax.set_xlabel("round")
        ax.set_ylabel("|R_t - honest mean| / |honest mean|")
        ax.set_title("aggregate error (oracle, 10-round mean)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    axes[1, 0].legend(fontsize=8)
    fig.suptitle(
        f"T8: RoSDHB, global vs independent rand-k masks under FOE (digits MLP, trimmed mean, gamma = {LR:g})",
        fontsize=11,
    )
    C.save_figure(fig, path)


def table(rows: list[dict], meta: dict, target: float) -> str:
    cols = [
        "f",
        "K/d",
        "mask",
        f"rounds to {target:.0%}",
        "final accuracy",
        "final loss",
        "dispersion of honest momenta (rel.)",
        "aggregate error (rel.), all rounds",
        f"aggregate error (rel.), rounds 1-{EARLY}",
        "uplink floats / client / round",
    ]
    body = [
        {
            "f": r["f"],
            "K/d": f"{r['ratio']:g}",
            "mask": r["mask"],
            f"rounds to {target:.0%}": C.fmt(r["rounds_to_target"])
            if np.isfinite(r["rounds_to_target"])
            else f"never (> {r['rounds']})",
            "final accuracy": f"{r['accuracy_final']:.3f}",
            "final loss": C.fmt(r["loss_final"]),
            "dispersion of honest momenta (rel.)": C.fmt(r["input_dispersion"]),
            "aggregate error (rel.), all rounds": C.fmt(r["aggregate_error"]),
            f"aggregate error (rel.), rounds 1-{EARLY}": C.fmt(r["aggregate_error_early"]),
            "uplink floats / client / round": C.fmt(r["uplink_floats_per_client_round"], 4),
        }
        for r in rows
    ]
    by = {(r["f"], r["ratio"], r["mask"]): r for r in rows}
    verdict = []
    for f in FS:
        for ratio in RATIOS:
            g, i = by[(f, ratio, "global")], by[(f, ratio, "independent")]
            verdict.append(
                f"* f = {f}, K/d = {ratio:g}: input dispersion x{C.fmt(i['input_dispersion'] / g['input_dispersion'])} "
                f"with independent masks, aggregate error {C.fmt(g['aggregate_error'])} -> {C.fmt(i['aggregate_error'])} "
                f"(rounds 1-{EARLY}: {C.fmt(g['aggregate_error_early'])} -> {C.fmt(i['aggregate_error_early'])}), "
                f"rounds to target {C.fmt(g['rounds_to_target'])} -> "
                f"{C.fmt(i['rounds_to_target']) if np.isfinite(i['rounds_to_target']) else 'never'}, "
                f"final accuracy {g['accuracy_final']:.3f} -> {i['accuracy_final']:.3f}."
            )
    lines = [
        "# T8: ablation, coordinated (global) vs independent rand-k masks in RoSDHB",
        "",
        f"Setup exactly as T7's RoSDHB runs (digits MLP, n = 10 + f, Dirichlet(5), full local gradients, trimmed "
        f"mean with trim f, FOE, beta = 0.9), gamma = {LR:g}, {meta['rounds']} rounds, seed {meta['seed']}; only "
        f"the compressor changes (randk_coordinated vs randk). Dispersion and aggregate error use the trace's "
        f"oracle fields (who is honest); the aggregator inputs are the server momenta m_i.",
        "",
        "Expected (docs/algorithms.md §9, magnitude unverified): honest reconstructed vectors much more dispersed "
        "with independent masks (variance ~ (d/K - 1)|g|^2 per worker instead of a shared mask error), so the "
        "trimmed mean filters worse and FOE does more damage: more rounds to the target, or failure.",
        "",
        C.md_table(body, cols),
        "",
        "## Measured vs expected",
        "",
        *verdict,
        "",
        "Reading: the expected damage of independent masks shows only in the first rounds (higher aggregate "
        "error while the model climbs to the target, and 5-10 more rounds to 90% in 3 of 4 settings); the final "
        "accuracy is the same, and later the global-mask run has the larger relative aggregate error. A likely "
        "reason [INF]: the server momentum (beta = 0.9) averages each client's independent mask noise over ~10 "
        "rounds, so the momenta the trimmed mean sees are far less dispersed than single reconstructions "
        "(variance ~ (1 - beta)/(1 + beta) x (d/K - 1)|g|^2). The 'much more dispersed, FOE does more "
        "damage' expectation is therefore **not reproduced in magnitude** on this task (digits, full local "
        "gradients); the direction holds only early in training.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args(__doc__, argv, ranks=3, timeout=2400)
    vs = variants(args.rounds)
    traces = C.run_variants(
        BASE, vs, OUT, TRACES, args, header="T8, generated by analysis/reproduce/t8_masks.py", messages=True
    )
    cfg = next(iter(traces.values())).config
    meta = {"rounds": cfg["run"]["rounds"], "seed": cfg["run"]["seed"], "lr": LR, "target": TARGET}
    rows = summarise(traces, TARGET)
    figure(traces, rows, TARGET, OUT / "t8_masks.png")
    C.write_outputs(OUT, table(rows, meta, TARGET), meta, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
