"""T4 (docs/algorithms.md §9; Malinovsky et al. NeurIPS 2024, Fig. 1 left): Byz-VR-MARINA-PP with and
without clipping under the shift-back (SHB) attack, a9a, 15 honest + 5 Byzantine, C = 4.

    .venv/bin/python analysis/reproduce/t4_clipping.py            # run (one MPI job) + figure + table
    .venv/bin/python analysis/reproduce/t4_clipping.py --no-run   # redraw from existing traces

Base config: configs/paper/t4_clipping.toml. Variants (written to analysis/results/t4_clipping/configs/):
* ``clip``           clipping radius lambda_{k+1} = 1.0 * |x^{k+1} - x^k| (paper form, alpha = 1);
* ``noclip``         no clipping, SHB as in the paper's a9a code (byzmpi mult = gamma: the
                     Byzantines send x^k - x^0, a partial pull back towards x^0);
* ``noclip_full_shb`` no clipping, byzmpi's default SHB (mult = 1: a full shift back to x^0);
* ``clip_noattack``  clipping, Byzantines honest (reference).
Traces: runs/paper/t4/ (not committed). Outputs: analysis/results/t4_clipping/{t4_clipping.png, table.md,
summary.json}.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from analysis.reproduce import common as C  # noqa: E402

OUT = C.RESULTS / "t4_clipping"
TRACES = C.ROOT / "runs" / "paper" / "t4"
BASE = C.CONFIGS / "t4_clipping.toml"


def variants(rounds: int | None, lr: float) -> list[tuple[str, dict]]:
    extra = {"run.rounds": rounds} if rounds else {}
    return [
        ("clip", {**extra}),
        ("noclip", {**extra, "method.clip": False, "attack.mult": lr}),
        ("noclip_full_shb", {**extra, "method.clip": False, "attack.mult": 1.0}),
        ("clip_noattack", {**extra, "attack.name": "none"}),
    ]


LABELS = {
    "clip": "PP + clipping (alpha = 1), SHB",
    "noclip": "PP, no clipping, SHB (paper: x^k - x^0)",
    "noclip_full_shb": "PP, no clipping, SHB (full shift back)",
    "clip_noattack": "PP + clipping, no attack",
}
EXPECTED = {
    "clip": "linear decrease of f - f*",
    "noclip": "no convergence: gap stays near its start",
    "noclip_full_shb": "no convergence",
    "clip_noattack": "(reference) linear decrease",
}


def log_slope(rounds: np.ndarray, gap: np.ndarray) -> float:
    """Least-squares slope of log10(gap) per 1000 rounds over the second half of the run (finite,
    positive gaps only); negative = decreasing."""
    ok = np.isfinite(gap) & (gap > 0) & (rounds >= rounds.max() / 2)
    if ok.sum() < 3:
        return float("nan")
    return float(np.polyfit(rounds[ok], np.log10(gap[ok]), 1)[0] * 1000)


def summarise(traces: dict) -> list[dict]:
    rows = []
    for name, t in traces.items():
        ev, rd = t.evals, t.rounds
        gap = ev["gap"].to_numpy(float)
        finite = gap[np.isfinite(gap)]
        rows.append(
            {
                "name": name,
                "rounds": int(len(rd)),
                "full_rounds": int(rd["full"].sum()),
                "majority_rounds": C.majority_rounds(rd),
                "gap_start": float(gap[0]),
                "gap_final": float(gap[-1]),
                "gap_max": float(finite.max()) if finite.size else float("nan"),
                "reduction": float(gap[0] / gap[-1]) if np.isfinite(gap[-1]) and gap[-1] > 0 else float("nan"),
                "slope_per_1000": log_slope(ev["round"].to_numpy(float), gap),
                "accuracy_final": float(ev["accuracy"].iloc[-1]),
            }
        )
    return rows


def figure(traces: dict, path: Path) -> None:
    fig, axes = C.new_figure(2, 1, width=6.2, height=4.4)
    ax, ax2 = axes[0]
    finite = np.concatenate([t.evals["gap"].to_numpy(float) for n, t in traces.items() if n.startswith("clip")])
    lo = 10 ** np.floor(np.log10(max(np.nanmin(finite[finite > 0]), 1e-300)) - 1)
    hi = 1e4
    for name, t in traces.items():
        ev = t.evals
        gap = ev["gap"].to_numpy(float)
        label = LABELS[name]
        if np.nanmax(gap) > hi:
            label += f" (off scale, up to {np.nanmax(gap):.0e})"
        ax.plot(ev["round"], np.where(gap > 0, gap, np.nan), lw=1.4, label=label)
    # Byzantine-majority rounds of the clipped run as a rug at the bottom
    rd = traces["clip"].rounds
    maj = rd["round"][2 * rd["byzantine"] > rd["sampled"]].to_numpy()
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.plot(maj, np.full(maj.size, lo * 3), "|", color="k", ms=6, label="Byzantine-majority rounds (clip run)")
    ax.set_xlabel("round")
    ax.set_ylabel("f(x^k) - f*")
    ax.set_title("T4: Byz-VR-MARINA-PP under shift-back (a9a, n = 20, B = 5, C = 4)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper right")
    t = traces["clip"]
    ax2.plot(t.rounds["round"], t.rounds["clip_radius"], lw=0.8, color="tab:blue", label="clip radius lambda_k")
    ax2.plot(t.rounds["round"], t.rounds["aggregate_norm"], lw=0.8, color="tab:orange", alpha=0.8, label="|g^k|")
    ax2.set_yscale("log")
    ax2.set_xlabel("round")
    ax2.set_ylabel("norm")
    ax2.set_title("clipped run: radius alpha*|x^{k+1}-x^k| and |g^k|")
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8)
    C.save_figure(fig, path)


def table(rows: list[dict], meta: dict) -> str:
    by = {r["name"]: r for r in rows}
    out = [
        "# T4: Byz-VR-MARINA-PP with vs without clipping under shift-back",
        "",
        f"Setup: a9a (N = 32,561, d = 123), logistic loss + (0.01/2)|x|^2, every client holds the full data; "
        f"n = 20 (15 honest + 5 Byzantine), C = 4 sampled in difference rounds, C-hat = 20 in full rounds; "
        f"CM with bucketing s = 2 (aggregator.f = 0: 2 buckets); b = 32; gamma = {meta['lr']}; "
        f"p = {meta['p']}; {meta['rounds']} rounds; seed {meta['seed']}; no compression.",
        "",
        f"**Scaled down from the paper**: the paper runs 10 epochs of ~1000 rounds with one full round per epoch "
        f"(p ~ 1/1000, ~10k rounds); here p = {meta['p']} (one full round per ~{round(1 / meta['p'])} rounds on "
        f"average) and {meta['rounds']} rounds, so the run has the same number of full rounds per "
        f"'epoch' but takes minutes. Clipping radius in the paper's form, alpha = {meta['alpha']} "
        f"(lambda_(k+1) = alpha*|x^(k+1) - x^k|).",
        "",
        C.md_table(
            [
                {
                    "run": LABELS[r["name"]],
                    "paper's expected outcome": EXPECTED[r["name"]],
                    "gap start": C.fmt(r["gap_start"]),
                    "gap final": C.fmt(r["gap_final"]),
                    "largest gap": C.fmt(r["gap_max"]),
                    "start/final": C.fmt(r["reduction"]),
                    "log10 gap slope / 1000 rounds (2nd half)": C.fmt(r["slope_per_1000"]),
                    "majority rounds": f"{r['majority_rounds']} of {r['rounds']} ({r['majority_rounds'] / r['rounds']:.3f})",
                    "full rounds": r["full_rounds"],
                }
                for r in rows
            ],
            [
                "run",
                "paper's expected outcome",
                "gap start",
                "gap final",
                "largest gap",
                "start/final",
                "log10 gap slope / 1000 rounds (2nd half)",
                "majority rounds",
                "full rounds",
            ],
        ),
        "",
        "Expected fraction of Byzantine-majority rounds (>= 3 of 4 sampled Byzantine): 155/4845 = 0.0320.",
        "",
        "## Measured vs paper",
        "",
        f"* With clipping: f - f* falls from {C.fmt(by['clip']['gap_start'])} to {C.fmt(by['clip']['gap_final'])} "
        f"({C.fmt(by['clip']['reduction'])}x), i.e. a straight line on the log scale "
        f"(slope {C.fmt(by['clip']['slope_per_1000'])} decades per 1000 rounds): **linear convergence, as in the paper**.",
        f"* Without clipping (paper's a9a SHB, Byzantines send x^k - x^0): final gap "
        f"{C.fmt(by['noclip']['gap_final'])} (largest {C.fmt(by['noclip']['gap_max'])}): **no convergence**. "
        f"With byzmpi's full shift back (mult = 1) the iterates are thrown further away: final gap "
        f"{C.fmt(by['noclip_full_shb']['gap_final'])} (largest {C.fmt(by['noclip_full_shb']['gap_max'])}); "
        "in byzmpi the SHB vector is taken as a *difference* and stays in g^k until the next full round, "
        "so repeated majority rounds compound instead of only pulling the model back to x^0. (In that run the "
        "model grows past the float32 range the clients compute in; their non-finite messages are then rejected "
        "and the server skips those steps, so the curve flattens at ~1e75: byzmpi's validation working, not a "
        "recovery.)",
        f"* Without attack (clipping on): final gap {C.fmt(by['clip_noattack']['gap_final'])}.",
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args(__doc__, argv, ranks=3, timeout=1800)
    base = C.rebase_inputs(C.load_toml(BASE), BASE.parent, OUT / "configs")  # task.path from configs/paper/
    lr = float(base["method"]["lr"])
    vs = variants(args.rounds, lr)
    traces = C.run_variants(base, vs, OUT, TRACES, args, header="T4, generated by analysis/reproduce/t4_clipping.py")
    rows = summarise(traces)
    cfg = traces["clip"].config
    meta = {
        "lr": cfg["method"]["lr"],
        "p": cfg["method"]["p"],
        "rounds": cfg["run"]["rounds"],
        "seed": cfg["run"]["seed"],
        "alpha": cfg["method"]["clip_alpha"],
    }
    figure(traces, OUT / "t4_clipping.png")
    C.write_outputs(OUT, table(rows, meta), meta, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
