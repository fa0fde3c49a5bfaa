"""T3 (docs/algorithms.md §9; Gorbunov et al. ICLR 2023, Fig. 1): Byz-VR-MARINA converges linearly on
homogeneous data under every attack, robust SGD / SGD with momentum plateau, and rand-k (K = 0.1d)
also converges, only slower. a9a, n = 5 (4 honest + 1 Byzantine), every client holds the full data,
estimator-space attacks, seeds 1-3.

    .venv/bin/python analysis/reproduce/t3_marina.py            # run (one MPI job) + figure + table
    .venv/bin/python analysis/reproduce/t3_marina.py --no-run   # redraw from existing traces

Base config: configs/paper/t3_marina.toml. Variants, for each attack in BF (sign_flip), LF
(label_flip), ALIE (alie, z from the global (n, f) formula: 0 for n = 5, B = 1) and IPM (ipm, eps = 0.1),
each with seeds 1-3:
* ``marina_<attack>``: Byz-VR-MARINA, gamma = 0.5, p = 0.01, no compression;
* ``sgd_<attack>``, ``sgdm_<attack>``: robust minibatch SGD (b = 32), without / with client momentum 0.9
  (EMA form), gamma = 0.5, same aggregator;
* ``randk_<attack>``: Byz-VR-MARINA with rand-k K = floor(0.1d) = 12 (independent masks, unbiased),
  p = 0.1 (the theory's p ~ 1/(1 + omega)), gamma = RANDK_LR.
``attack.space = "auto"``: for Byz-VR-MARINA the attack acts in the estimator space (the Byzantine's
g^k + Q(Delta_i) is replaced by the attack vector, as the paper's code); for SGD(m) the message is what
the rule aggregates (the momentum for SGDm is client state, so the attack there is on the message).
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
ROUNDS = 3000
SEEDS = C.SEEDS_MALINOVSKY
TARGET = 1e-6  # the spec's "linear convergence to <= 1e-6"
LINEAR = -0.5  # decades per 1000 rounds over the last half
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
    extra = {"run.rounds": rounds or ROUNDS, "attack.space": "auto"}
    out = [(f"{m}_{a}", {**extra, **ov, "attack.name": a}) for a in ATTACKS for m, (_, ov) in METHODS.items()]
    return C.seeded(out, SEEDS)


def summarise(groups: dict) -> list[dict]:
    rows = []
    for name, runs in groups.items():
        method, attack = name.split("_", 1)
        cols = C.gap_columns(runs)
        rows.append(
            {
                "name": name,
                "method": method,
                "attack": attack,
                "seeds": C.seeds_of(runs),
                "rounds": int(len(runs[0].rounds)),
                "attack_space": sorted({str(t.attrs.get("attack_space")) for t in runs}),
                **{f"gap_{k}": v for k, v in cols.items()},
                "rounds_to_target": [C.first_at(t.evals["round"], t.evals["gap"], TARGET, above=False) for t in runs],
                "rounds_to_1e-3_start": [
                    C.first_at(t.evals["round"], t.evals["gap"], 1e-3 * float(t.evals["gap"].iloc[0]), above=False)
                    for t in runs
                ],
                "accuracy_final": [float(t.evals["accuracy"].iloc[-1]) for t in runs],
                "uplink_floats_per_client_round": [C.floats_per_client_round(t.rounds) for t in runs],
            }
        )
    return rows


def _linear(r: dict) -> bool:
    return all((lo <= TARGET) or (s < LINEAR) for lo, s in zip(r["gap_min"], r["gap_slope_per_1000"]))


def verdicts(rows: list[dict]) -> list[C.Verdict]:
    by = {(r["method"], r["attack"]): r for r in rows}
    out = []
    for attack, short in ATTACKS.items():
        r = by[("marina", attack)]
        out.append(
            C.Verdict(
                "T3",
                f"Byz-VR-MARINA converges linearly to f - f* <= {TARGET:g} ({short})",
                f"every seed: smallest f - f* <= {TARGET:g} within the run",
                f"smallest gap {C.pm(r['gap_min'], log=True)}; rounds to {TARGET:g} {C.pm(r['rounds_to_target'])}; "
                f"slope {C.pm(r['gap_slope_per_1000'])}",
                all(lo <= TARGET for lo in r["gap_min"]),
            )
        )
    for attack, short in ATTACKS.items():
        for m in ("sgd", "sgdm"):
            r = by[(m, attack)]
            out.append(
                C.Verdict(
                    "T3",
                    f"{METHODS[m][0]} plateaus at a noise floor ({short})",
                    f"every seed: final gap > 1e-5 and |last-half log10 slope| < {-LINEAR:g} per 1000 rounds",
                    f"final gap {C.pm(r['gap_final'], log=True)}; slope {C.pm(r['gap_slope_per_1000'])}",
                    all(g > 1e-5 and abs(s) < -LINEAR for g, s in zip(r["gap_final"], r["gap_slope_per_1000"])),
                )
            )
    for attack, short in ATTACKS.items():
        r, mr = by[("randk", attack)], by[("marina", attack)]
        out.append(
            C.Verdict(
                "T3",
                f"Byz-VR-MARINA + RandK also converges linearly ({short})",
                f"every seed: smallest gap <= {TARGET:g}, or the last-half log10 slope < {LINEAR} per 1000 rounds",
                f"smallest gap {C.pm(r['gap_min'], log=True)}; slope {C.pm(r['gap_slope_per_1000'])}",
                _linear(r),
            )
        )
        rk, mk = np.asarray(r["rounds_to_1e-3_start"]), np.asarray(mr["rounds_to_1e-3_start"])
        rk_m = float(np.mean(np.where(np.isfinite(rk), rk, np.inf)))
        mk_m = float(np.mean(np.where(np.isfinite(mk), mk, np.inf)))
        out.append(
            C.Verdict(
                "T3",
                f"... only slower than without compression ({short})",
                "rounds to 1e-3 x the start gap: mean over seeds with RandK > without (a seed that never gets there "
                "counts as infinite; not evaluated when neither gets there)",
                f"RandK {C.pm(rk)} vs uncompressed {C.pm(mk)} rounds",
                None if not (np.isfinite(rk_m) or np.isfinite(mk_m)) else rk_m > mk_m,
            )
        )
    return out


def figure(groups: dict, path: Path) -> None:
    fig, axes = C.new_figure(2, 2, width=5.6, height=4.0)
    for ax, (attack, short) in zip(axes.flat, ATTACKS.items()):
        for m, (label, _) in METHODS.items():
            xs, ys = C.stack(groups[f"{m}_{attack}"], "gap")
            C.band(ax, xs, ys, label=label, log=True, lw=1.3)
        ax.axhline(TARGET, color="k", lw=0.7, ls=":", label=f"{TARGET:g}")
        C.style_axes(
            ax,
            "round",
            "f(x^k) - f*  (geo. mean, min-max)",
            f"attack {short} ({attack}); MARINA: estimator space, SGD(m): message",
            loc="lower left",
        )
    fig.suptitle(
        "T3: Byz-VR-MARINA vs robust SGD, a9a, n = 5 (4 honest + 1 Byzantine), CM + bucketing 2, "
        f"seeds {SEEDS[0]}-{SEEDS[-1]}"
    )
    C.save_figure(fig, path)


def table(rows: list[dict], vs: list[C.Verdict], meta: dict) -> str:
    cols = [
        "attack",
        "method",
        "attack space",
        "paper's expected outcome",
        "gap final",
        "gap smallest",
        f"rounds to {TARGET:g}",
        "log10 gap slope / 1000 rounds (2nd half)",
        "uplink floats / client / round",
    ]
    body = [
        {
            "attack": ATTACKS[r["attack"]],
            "method": METHODS[r["method"]][0],
            "attack space": ", ".join(r["attack_space"]),
            "paper's expected outcome": EXPECTED[r["method"]],
            "gap final": C.pm(r["gap_final"], log=True),
            "gap smallest": C.pm(r["gap_min"], log=True),
            f"rounds to {TARGET:g}": C.pm(r["rounds_to_target"]),
            "log10 gap slope / 1000 rounds (2nd half)": C.pm(r["gap_slope_per_1000"]),
            "uplink floats / client / round": C.pm(r["uplink_floats_per_client_round"]),
        }
        for r in rows
    ]
    paragraphs = [
        f"Setup: a9a (N = 32,561, d = 123), logistic loss + (0.01/2)|x|^2; n = 5 clients (4 honest + 1 Byzantine) "
        f"as in the Byz-VR-MARINA paper; every client holds the full data; b = 32; CM with bucketing s = 2 "
        f"(3 buckets, aggregator.f = 1); {meta['rounds']} rounds; seeds {list(SEEDS)}; server in float64. "
        f"Byz-VR-MARINA: gamma = {meta['lr']}, p = {meta['p']}. BR-SGD(m): gamma = {SGD_LR}. RandK: K = 12 (0.1d), "
        f"p = {RANDK_P}, gamma = {RANDK_LR}. Attacks in the space `attack.space = auto` resolves to (column "
        "'attack space', from the trace): estimator for Byz-VR-MARINA (the Byzantine's g^k + Q(Delta_i) replaced, "
        "as the paper's code), message for SGD(m).",
        f"Differences from the paper: the paper's code runs 40 epochs of 1000 rounds (one full round per epoch, "
        f"p ~ 1e-3) and gamma in {{0.5, 0.05, 0.005}}; here p = {meta['p']} and {meta['rounds']} rounds "
        f"(MPI wall {meta['wall_s']:.0f} s summed over the runs). Gaps: geometric mean [min, max] over seeds; "
        "otherwise mean ± std; 'n/a (n = 0, k non-finite)' = never reached in k seeds.",
    ]
    notes = [
        "ALIE with z from the global (n, f) formula is z = 0 for n = 5, B = 1 (the Byzantine sends the honest "
        "mean), so it is a weak attack here, as the spec notes.",
    ]
    return C.report("T3: Byz-VR-MARINA linear convergence on homogeneous data", paragraphs, body, cols, vs, notes)


def main(argv: list[str] | None = None) -> int:
    args, traces, groups, cfg = C.run_target(
        __doc__, argv, BASE, OUT, TRACES, variants, "T3, generated by analysis/reproduce/t3_marina.py", timeout=900
    )
    meta = {
        "lr": cfg["method"]["lr"],
        "p": cfg["method"]["p"],
        "rounds": cfg["run"]["rounds"],
        "seeds": list(SEEDS),
        "wall_s": C.wall_seconds(traces),
    }
    rows = summarise(groups)
    vs = verdicts(rows)
    figure(groups, OUT / "t3_marina.png")
    C.write_verdicts(OUT, table(rows, vs, meta), meta, rows, vs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
