"""T3 (docs/algorithms.md §9; Gorbunov et al. ICLR 2023, Fig. 1): Byz-VR-MARINA converges linearly on
homogeneous data under every attack, robust SGD / SGD with momentum plateau, and rand-k (K = 0.1d)
also converges, only slower. a9a, n = 5 (4 honest + 1 Byzantine), every client holds the full data.

    .venv/bin/python analysis/reproduce/t3_marina.py            # run (one MPI job) + figure + table
    .venv/bin/python analysis/reproduce/t3_marina.py --no-run   # redraw from existing traces

Base config: configs/paper/t3_marina.toml. Variants, for each attack in BF (sign_flip), LF
(label_flip), ALIE (alie, z from the formula: 0 for n = 5, B = 1) and IPM (ipm, eps = 0.1):
* ``marina_<attack>``: Byz-VR-MARINA, gamma = 0.5, p = 0.01, no compression;
* ``sgd_<attack>``, ``sgdm_<attack>``: robust minibatch SGD (b = 32), without / with client momentum 0.9
  (EMA form), gamma = 0.5, same aggregator;
* ``randk_<attack>``: Byz-VR-MARINA with rand-k K = floor(0.1d) = 12 (independent masks, unbiased),
  p = 0.1 (the theory's p ~ 1/(1 + omega)), gamma = RANDK_LR.
Traces: runs/paper/t3/ (not committed). Outputs: analysis/results/t3_marina/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from analysis.reproduce import common as C  # noqa: E402

OUT = C.RESULTS / "t3_marina"
TRACES = C.ROOT / "runs" / "paper" / "t3"
BASE = C.CONFIGS / "t3_marina.toml"
ATTACKS = {"sign_flip": "BF", "label_flip": "LF", "alie": "ALIE", "ipm": "IPM"}
SGD_LR = 0.5
RANDK_LR = 0.1
RANDK_P = 0.1
METHODS = {
    "marina": ("Byz-VR-MARINA", {}),
    "sgd": ("BR-SGD", {"method.name": "sgd", "method.p": None, "method.lr": SGD_LR, "method.momentum": 0.0}),
    "sgdm": (
        "BR-SGDm (momentum 0.9)",
        {"method.name": "sgd", "method.p": None, "method.lr": SGD_LR, "method.momentum": 0.9},
    ),
    "randk": (
        "Byz-VR-MARINA + RandK (K = 0.1d)",
        {"compressor.name": "randk", "compressor.ratio": 0.1, "method.p": RANDK_P, "method.lr": RANDK_LR},
    ),
}
EXPECTED = {
    "marina": "linear convergence to <= 1e-6",
    "sgd": "plateau at a noise floor",
    "sgdm": "plateau at a noise floor",
    "randk": "linear convergence, slower",
}


def variants(rounds: int | None) -> list[tuple[str, dict]]:
    extra = {"run.rounds": rounds} if rounds else {}
    return [(f"{m}_{a}", {**extra, **ov, "attack.name": a}) for a in ATTACKS for m, (_, ov) in METHODS.items()]


def summarise(traces: dict) -> list[dict]:
    rows = []
    for name, t in traces.items():
        method, attack = name.split("_", 1)
        gap = t.evals["gap"].to_numpy(float)
        rnd = t.evals["round"].to_numpy(float)
        ok = np.isfinite(gap) & (gap > 0) & (rnd >= rnd.max() / 2)
        slope = float(np.polyfit(rnd[ok], np.log10(gap[ok]), 1)[0] * 1000) if ok.sum() >= 3 else float("nan")
        hit = np.flatnonzero(np.isfinite(gap) & (gap <= 1e-6))
        rows.append(
            {
                "name": name,
                "method": method,
                "attack": attack,
                "rounds": int(len(t.rounds)),
                "gap_start": float(gap[0]),
                "gap_final": float(gap[-1]),
                "gap_min": float(np.nanmin(gap)),
                "slope_per_1000": slope,
                "rounds_to_1e-6": int(rnd[hit[0]]) if hit.size else None,
                "accuracy_final": float(t.evals["accuracy"].iloc[-1]),
                "uplink_floats_per_client_round": C.floats_per_client_round(t.rounds),
            }
        )
    return rows


def figure(traces: dict, path: Path) -> None:
    fig, axes = C.new_figure(2, 2, width=5.6, height=4.0)
    for ax, (attack, short) in zip(axes.flat, ATTACKS.items()):
        for m, (label, _) in METHODS.items():
            t = traces[f"{m}_{attack}"]
            gap = t.evals["gap"].to_numpy(float)
            ax.plot(t.evals["round"], np.where(gap > 0, gap, np.nan), lw=1.3, label=label)
        ax.axhline(1e-6, color="k", lw=0.7, ls=":", label="1e-6")
        ax.set_yscale("log")
        ax.set_xlabel("round")
        ax.set_ylabel("f(x^k) - f*")
        ax.set_title(f"attack {short} ({attack})")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=7.5, loc="lower left")
    fig.suptitle("T3: Byz-VR-MARINA vs robust SGD, a9a, n = 5 (4 honest + 1 Byzantine), CM + bucketing 2")
    C.save_figure(fig, path)


def table(rows: list[dict], meta: dict) -> str:
    cols = [
        "attack",
        "method",
        "paper's expected outcome",
        "gap final",
        "gap min",
        "rounds to 1e-6",
        "log10 gap slope / 1000 rounds (2nd half)",
        "uplink floats / client / round",
    ]
    body = [
        {
            "attack": ATTACKS[r["attack"]],
            "method": METHODS[r["method"]][0],
            "paper's expected outcome": EXPECTED[r["method"]],
            "gap final": C.fmt(r["gap_final"]),
            "gap min": C.fmt(r["gap_min"]),
            "rounds to 1e-6": r["rounds_to_1e-6"] if r["rounds_to_1e-6"] is not None else "never",
            "log10 gap slope / 1000 rounds (2nd half)": C.fmt(r["slope_per_1000"]),
            "uplink floats / client / round": C.fmt(r["uplink_floats_per_client_round"]),
        }
        for r in rows
    ]

    def verdict(method: str, cond) -> str:
        sel = [r for r in rows if r["method"] == method]
        good = [ATTACKS[r["attack"]] for r in sel if cond(r)]
        return f"{len(good)}/{len(sel)} attacks ({', '.join(good) or '-'})"

    lines = [
        "# T3: Byz-VR-MARINA linear convergence on homogeneous data",
        "",
        f"Setup: a9a (N = 32,561, d = 123), logistic loss + (0.01/2)|x|^2; **n = 5 clients (4 honest + 1 Byzantine), "
        f"as in docs/algorithms.md §9 and the Byz-VR-MARINA paper** (not the 15 + 5 of T4/T5); every client holds the "
        f"full data; b = 32; CM with bucketing s = 2 (3 buckets, aggregator.f = 1); {meta['rounds']} rounds; seed "
        f"{meta['seed']}; server in float64. Byz-VR-MARINA: gamma = {meta['lr']}, p = {meta['p']} (the paper's code "
        f"has one full round per 1000-round epoch; p = {meta['p']} is scaled for a short run). BR-SGD(m): gamma = "
        f"{SGD_LR}. RandK: K = 12 (0.1d), p = {RANDK_P}, gamma = {RANDK_LR}.",
        "",
        C.md_table(body, cols),
        "",
        "## Measured vs paper",
        "",
        f"* Byz-VR-MARINA reaches f - f* <= 1e-6: {verdict('marina', lambda r: r['gap_min'] <= 1e-6)}.",
        f"* BR-SGD plateaus (final gap > 1e-5, |slope| < 0.5 decade per 1000 rounds): "
        f"{verdict('sgd', lambda r: r['gap_final'] > 1e-5 and abs(r['slope_per_1000']) < 0.5)}; "
        f"BR-SGDm: {verdict('sgdm', lambda r: r['gap_final'] > 1e-5 and abs(r['slope_per_1000']) < 0.5)}.",
        f"* Byz-VR-MARINA + RandK decreases linearly (log10 gap slope < -0.5 per 1000 rounds over the second half): "
        f"{verdict('randk', lambda r: r['slope_per_1000'] < -0.5)}; it reaches 1e-6 within the run: "
        f"{verdict('randk', lambda r: r['gap_min'] <= 1e-6)}; slower than without compression (compare the slopes).",
        "* ALIE with z from the formula is z = 0 for n = 5, B = 1 (the Byzantine sends the honest mean), so it "
        "is a weak attack here, as the spec notes.",
        "* RandK needs a smaller step and a larger p than the uncompressed method: with p = 0.01 and gamma in "
        "{0.2, 0.5} it did not converge (gap oscillating between 1e-1 and 1e2 over 2000 rounds), and with p = 0.01, "
        "gamma = 0.02 it was still at 3e-3 after 2000 rounds (exploratory runs, not committed). With p = 0.1 and "
        "gamma = 0.1 it converged at the same speed with the plain mean and no attack as with CM + bucketing "
        "under BF (exploration), so the slowdown is the compression variance (omega = d/K - 1 = 9), not the attack.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args(__doc__, argv, ranks=3, timeout=2400)
    vs = variants(args.rounds)
    traces = C.run_variants(BASE, vs, OUT, TRACES, args, header="T3, generated by analysis/reproduce/t3_marina.py")
    cfg = traces["marina_sign_flip"].config
    meta = {
        "lr": cfg["method"]["lr"],
        "p": cfg["method"]["p"],
        "rounds": cfg["run"]["rounds"],
        "seed": cfg["run"]["seed"],
    }
    rows = summarise(traces)
    figure(traces, OUT / "t3_marina.png")
    C.write_outputs(OUT, table(rows, meta), meta, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
