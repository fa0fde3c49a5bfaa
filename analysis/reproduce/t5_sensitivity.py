"""T5 (docs/algorithms.md §9; Malinovsky et al. NeurIPS 2024, Fig. 1 middle and right): clipping
sensitivity of Byz-VR-MARINA-PP under shift-back, and partial vs full participation, a9a.

    .venv/bin/python analysis/reproduce/t5_sensitivity.py            # run (one MPI job) + figure + table
    .venv/bin/python analysis/reproduce/t5_sensitivity.py --no-run   # redraw from existing traces

Base config: configs/paper/t5_sensitivity.toml (T4's setup). Variants:
* ``mult0.1`` ... ``mult100``: PP (C = 4) with the official code's radius clip_mult*|g^k|,
  clip_mult in {0.1, 1, 10, 100}; ``alpha1``, ``alpha10``: the paper text's radius alpha*|x^{k+1} - x^k|
  (alpha = clip_mult/gamma); gamma = 0.1, seeds 1-3;
* ``full``: full participation (C = C-hat = n = 20), no clipping (Byz-VR-MARINA). With 20 sampled the
  5 Byzantines are never a majority, so SHB behaves honestly, as in the paper; CM + bucketing over
  10 buckets needs aggregator.f = 4 for byzmpi's validity check (5 tainted buckets would break it).
Computation is counted in epochs: sample gradients computed by the sampled clients (a full round: N per
client; a difference round: 2b per client, the PAGE difference at two points) divided by n*N.
Traces: runs/paper/t5/ (not committed). Outputs: analysis/results/t5_sensitivity/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from analysis.reproduce import common as C  # noqa: E402

OUT = C.RESULTS / "t5_sensitivity"
TRACES = C.ROOT / "runs" / "paper" / "t5"
BASE = C.CONFIGS / "t5_sensitivity.toml"
MULTS = (0.1, 1.0, 10.0, 100.0)  # the official code's clip_mult (radius clip_mult*|g^k|)
ALPHAS = (1.0, 10.0)  # the paper text's alpha (radius alpha*|x^{k+1} - x^k| = alpha*gamma*|g^k|)
LR = 0.1
ROUNDS = 1500
SEEDS = C.SEEDS_MALINOVSKY
LINEAR = -0.5  # decades per 1000 rounds over the last half


def variants(rounds: int | None) -> list[tuple[str, dict]]:
    extra = {"run.rounds": rounds or ROUNDS, "method.lr": LR, "attack.mult": LR}
    out = [(f"mult{m:g}", {**extra, "method.clip_mult": m}) for m in MULTS]
    out += [(f"alpha{a:g}", {**extra, "method.clip_alpha": a}) for a in ALPHAS]
    out.append(("full", {**extra, "method.clip": False, "clients.per_round": 20, "aggregator.f": 4}))
    return C.seeded(out, SEEDS)


def label(name: str) -> str:
    if name == "full":
        return "full participation (C = 20), no clipping"
    if name.startswith("mult"):
        return f"PP (C = 4), clip_mult = {name[4:]} (|g^k|, code)"
    return f"PP (C = 4), alpha = {name[5:]} (|x^(k+1) - x^k|, paper text; = clip_mult {float(name[5:]) * LR:g})"


def n_samples(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def epochs(rounds, n_clients: int, N: int, b: int) -> np.ndarray:
    """Cumulative epochs of computation after each round (see the module docstring)."""
    work = np.where(
        rounds["full"].to_numpy() > 0, rounds["sampled"].to_numpy() * N, rounds["sampled"].to_numpy() * 2 * b
    ).astype(float)
    return np.cumsum(work) / (n_clients * N)


def eval_epochs(t, n_clients: int, N: int, b: int) -> np.ndarray:
    """Epochs at each evaluation (eval.round = number of updates applied)."""
    ep = np.concatenate([[0.0], epochs(t.rounds, n_clients, N, b)])
    return ep[np.minimum(t.evals["round"].to_numpy(), len(ep) - 1)]


def summarise(groups: dict, N: int) -> list[dict]:
    rows = []
    for name, runs in groups.items():
        r = {"name": name, "label": label(name), "seeds": [int(t.config["run"]["seed"]) for t in runs]}
        cols: dict[str, list] = {}
        for t in runs:
            cfg = t.config
            n, b = cfg["clients"]["n"], cfg["task"]["batch_size"]
            gap = t.evals["gap"].to_numpy(float)
            ep = eval_epochs(t, n, N, b)
            rnd = t.evals["round"].to_numpy(float)
            for k, v in {
                "epochs": float(ep[-1]),
                "gap_start": float(gap[0]),
                "gap_final": float(gap[-1]),
                "final_over_start": float(gap[-1] / gap[0]),
                "slope_per_1000": C.log_slope(rnd, gap),
                "epochs_to_1e-4": C.first_at(ep, gap, 1e-4, above=False),
                "rounds_to_1e-4": C.first_at(rnd, gap, 1e-4, above=False),
                "clipped_share": float(t.rounds["clipped"].clip(lower=0).sum() / max(t.rounds["sampled"].sum(), 1)),
            }.items():
                cols.setdefault(k, []).append(v)
        r.update(cols)
        rows.append(r)
    return rows


def verdicts(rows: list[dict]) -> list[C.Verdict]:
    by = {r["name"]: r for r in rows}
    out = []
    for name in [f"mult{m:g}" for m in MULTS] + [f"alpha{a:g}" for a in ALPHAS]:
        r = by[name]
        out.append(
            C.Verdict(
                "T5",
                f"Every clipping level converges linearly, at different speeds: {label(name)}",
                f"every seed: log10-gap slope over the last half < {LINEAR} per 1000 rounds and final/start < 0.1",
                f"slope {C.pm(r['slope_per_1000'])}; final/start {C.pm(r['final_over_start'], log=True)}",
                all(s < LINEAR for s in r["slope_per_1000"]) and all(q < 0.1 for q in r["final_over_start"]),
            )
        )
    pp = by["mult1"]
    full = by["full"]
    pe, fe = pp["epochs_to_1e-4"], full["epochs_to_1e-4"]
    pm_, fm = np.nanmean(pe) if np.isfinite(pe).any() else np.inf, np.nanmean(fe) if np.isfinite(fe).any() else np.inf
    out.append(
        C.Verdict(
            "T5",
            "Per epoch of computation, PP with clipping is faster than full participation (Fig. 1 middle)",
            "epochs to f - f* <= 1e-4: mean over seeds of PP (clip_mult 1) < 0.9 x that of full participation "
            "(a seed that never gets there counts as infinite)",
            f"PP {C.pm(pe)} vs full {C.pm(fe)} epochs",
            None
            if not (np.isfinite(pe).any() or np.isfinite(fe).any())
            else bool(np.isfinite(pe).all() and pm_ < 0.9 * fm),
        )
    )
    return out


def figure(groups: dict, N: int, path: Path) -> None:
    fig, axes = C.new_figure(2, 1, width=6.2, height=4.4)
    for name, runs in groups.items():
        style = dict(lw=1.3, ls="--" if name == "full" else (":" if name.startswith("alpha") else "-"))
        xs, ys = C.stack(runs, "gap")
        C.band(axes[0, 0], xs, ys, label=label(name), log=True, **style)
        # epochs: the runs of one variant share the same schedule only in expectation; band on the first's axis
        t0 = runs[0]
        cfg = t0.config
        ep = eval_epochs(t0, cfg["clients"]["n"], N, cfg["task"]["batch_size"])
        C.band(axes[0, 1], ep[: ys.shape[1]], ys, label=label(name), log=True, **style)
    for ax, xl, title in (
        (axes[0, 0], "round", "gap vs rounds (Fig. 1 right: clipping sensitivity)"),
        (axes[0, 1], "epochs of computation (seed 1's schedule)", "gap vs computation (Fig. 1 middle: PP vs full)"),
    ):
        C.style_axes(ax, xl, "f(x^k) - f*  (geo. mean, min-max band)", title)
    fig.suptitle(f"T5: Byz-VR-MARINA-PP under shift-back, a9a, n = 20 (B = 5), gamma = {LR}, seeds 1-3")
    C.save_figure(fig, path)


def table(rows: list[dict], vs: list[C.Verdict], meta: dict, notes: list[str]) -> str:
    cols = [
        "run",
        "final gap",
        "final / start",
        "log10-gap slope / 1000 rds",
        "rounds to 1e-4",
        "epochs to 1e-4",
        "epochs run",
        "clipped share",
    ]
    body = [
        {
            "run": r["label"],
            "final gap": C.pm(r["gap_final"], log=True),
            "final / start": C.pm(r["final_over_start"], log=True),
            "log10-gap slope / 1000 rds": C.pm(r["slope_per_1000"]),
            "rounds to 1e-4": C.pm(r["rounds_to_1e-4"]),
            "epochs to 1e-4": C.pm(r["epochs_to_1e-4"]),
            "epochs run": C.pm(r["epochs"]),
            "clipped share": C.pm(r["clipped_share"]),
        }
        for r in rows
    ]
    paragraphs = [
        f"Setup as T4: a9a, every client holds the full data, n = 20 (15 honest + 5 Byzantine, SHB with "
        f"mult = gamma as in the paper's a9a code), C = 4 / C-hat = 20, CM + bucketing s = 2, b = {meta['b']}, "
        f"gamma = {meta['lr']}, p = {meta['p']}, {meta['rounds']} rounds, seeds {list(SEEDS)}. Radius in the official "
        "code's form clip_mult*|g^k| (clip_mult in {0.1, 1, 10, 100}) and, labelled, in the paper text's form "
        "alpha*|x^(k+1) - x^k| (alpha = clip_mult/gamma). Full participation: all 20 clients every round, so the 5 "
        "Byzantines are never a majority and SHB behaves honestly (as in the paper); byzmpi's validity check "
        "needs aggregator.f = 4 for CM over the 10 buckets. Epochs = sample gradients computed by the sampled "
        "clients (N per client in a full round, 2b in a difference round) / (n N).",
        f"**Scaled down from the paper** (p ~ 1/1000 and ~10k rounds there): p = {meta['p']}, {meta['rounds']} "
        f"rounds (MPI wall {meta.get('wall_s', float('nan')):.0f} s summed over the runs). Gaps: geometric mean "
        "[min, max] over seeds; otherwise mean ± std. 'n/a (n = 0)': never reached.",
    ]
    return C.report("T5: clipping sensitivity and partial vs full participation", paragraphs, body, cols, vs, notes)


def identical(groups: dict, a: str, b: str) -> float:
    """The largest |gap_a - gap_b| over every seed and evaluation: 0 when the two variants are the same runs."""
    return float(
        max(
            np.nanmax(np.abs(ta.evals["gap"].to_numpy(float) - tb.evals["gap"].to_numpy(float)))
            for ta, tb in zip(groups[a], groups[b])
        )
    )


def main(argv: list[str] | None = None) -> int:
    args, traces, groups, cfg = C.run_target(
        __doc__, argv, BASE, OUT, TRACES, variants, "T5, generated by analysis/reproduce/t5_sensitivity.py"
    )
    N = n_samples(C.A9A)
    meta = {
        "lr": cfg["method"]["lr"],
        "p": cfg["method"]["p"],
        "rounds": cfg["run"]["rounds"],
        "seeds": list(SEEDS),
        "b": cfg["task"]["batch_size"],
        "N": N,
        "wall_s": C.wall_seconds(traces),
    }
    notes = []
    for a in ALPHAS:
        m = f"mult{a * LR:g}"
        if m in groups:
            diff = identical(groups, f"alpha{a:g}", m)
            meta[f"max_gap_diff_alpha{a:g}_vs_{m}"] = diff
            notes.append(
                f"alpha = {a:g} vs clip_mult = {a * LR:g} (the same radius alpha*gamma*|g^k| by definition): largest "
                f"|gap difference| over every seed and evaluation = {C.fmt(diff)}"
                + (" -- identical runs." if diff == 0 else ".")
            )
    rows = summarise(groups, N)
    vs = verdicts(rows)
    figure(groups, N, OUT / "t5_sensitivity.png")
    C.write_verdicts(OUT, table(rows, vs, meta, notes), meta, rows, vs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
