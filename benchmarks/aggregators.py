"""How close is each aggregation rule to the cost floors measured in the same run?

For m ∈ {16, 32, 64} inputs of d ∈ {1e5, 1e6, 1e7} float32 coordinates (Gaussian draws; f =
⌊(m − 3)/4⌋, the largest f valid for every rule, Bulyan included), this times, per call:

* two floors: one memory pass over the m·d floats (``X.sum(0)``) and the m × m GEMM (``X @ X.T``);
* every registered rule (through ``Pipeline``, as the runner calls it; a stateful rule keeps its
  state between calls, as in a run) and every pre-aggregator alone;

and reports ms per call (the minimum over repeats after a warm-up call) and the ratio to the
relevant floor, each timed call paired with a floor call just before it (``ratio`` = min over the
rule's calls / min over its paired floor calls; the shared machines drift by several times within
a minute, so floors timed once per shape are also stored but not used for the headline ratio): the memory pass for the coordinate-wise and single-pass rules (mean,
median, trimmed mean, Meamed, MoNNA, and the clipping / bucketing pre-aggregators), the GEMM for
those built on a Gram matrix (Krum, Multi-Krum, GM, CC, MDA, Bulyan, CAF, NNM). Both ratios are
stored for every entry. The first call of a rule using the compiled sorting network includes the
compile; it is reported separately (``first_call_s``). The compiled median is checked against
numpy's midpoint median on the same data (``checks``).

Targets (PERFORMANCE.md): mean / median / trimmed mean within 3× the memory floor, Krum within 3×
the GEMM floor.

Run:  .venv/bin/python benchmarks/aggregators.py            full grid (about an hour on 2 shared cores;
                                                           one kernel compiled per m and order-statistic
                                                           rule, tens of seconds each when cold)
      .venv/bin/python benchmarks/aggregators.py --quick    m = 32, d = 1e6 only (a few minutes)
      .venv/bin/python benchmarks/aggregators.py --m 32 --d 1e6 --rules median krum --out runs/a.json
      ... --thp                                             with THP_MEM_ALLOC_ENABLE=1 (recorded in the JSON)
Writes benchmarks/results/aggregators.json (merging with an existing file: entries for the same
(m, d) are replaced, others kept, so a grid can be filled in several runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

if "--thp" in sys.argv:  # must precede the first torch allocation: read once by c10's CPU allocator
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from byzmpi.aggregators import (  # noqa: E402
    PRE_AGGREGATORS,
    RULES,
    Pipeline,
    sorting,  # noqa: E402
)
from byzmpi.aggregators.median import coordinate_median  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "aggregators.json"
GEMM_RULES = {"krum", "multi_krum", "geometric_median", "centered_clipping", "mda", "bulyan", "caf", "pre:nnm"}
SORTING_RULES = {"median", "trimmed_mean", "meamed", "bulyan", "geometric_median", "centered_clipping"}
TARGETS = {"mean": ("memory", 3.0), "median": ("memory", 3.0), "trimmed_mean": ("memory", 3.0), "krum": ("gemm", 3.0)}


def machine_info() -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "compile_enabled": sorting.compile_enabled(),
        "load_average_at_start": os.getloadavg(),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE", ""),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "byzmpi/aggregators"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        info["git_commit"] = head.stdout.strip()
        info["aggregators_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def entries(names: list[str] | None) -> list[str]:
    all_names = list(RULES) + [f"pre:{p}" for p in PRE_AGGREGATORS]
    return all_names if not names else [n for n in all_names if n in names or n.removeprefix("pre:") in names]


def make_call(name: str, x: torch.Tensor, f: int):
    if name == "ref:torch.median":  # the stock op the compiled network replaces (lower median)
        return lambda: torch.median(x, dim=0)
    if name.startswith("pre:"):
        pre = PRE_AGGREGATORS[name[4:]]
        params = {k: p.default for k, p in pre.params.items()}
        gen = torch.Generator().manual_seed(0)
        return lambda: pre.apply(x, f=f, generator=gen, **params)
    pipe = Pipeline.build(name, {}, [], seed=0)
    counter = iter(range(10**9))
    return lambda: pipe(x, f=f, round_=next(counter))


def path_used(name: str, x: torch.Tensor, f: int) -> str:
    """How the rule's order statistics ran: the compiled network or the torch.sort fallback."""
    if name not in SORTING_RULES:
        return "n/a"
    if not sorting.uses_compiled_path(x):
        return "fallback"
    rows = {x.shape[0] - 2 * f} if name == "bulyan" else {x.shape[0]}
    kernels = [v for k, v in sorting._kernels.items() if k[0] in rows]
    if kernels and all(v is not None for v in kernels):
        return "compiled"
    return "fallback (compile failed)" if kernels else "fallback"


def timed_once(fn) -> float:
    t = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - t)


def floors(x: torch.Tensor, repeats: int) -> tuple[float, float]:
    mem = min(timed_once(lambda: x.sum(0)) for _ in range(repeats))
    gemm = min(timed_once(lambda: x @ x.T) for _ in range(repeats))
    return mem, gemm


def bench_shape(m: int, d: int, names: list[str], args) -> dict:
    """Each timed call of a rule is paired with a call of its floor just before it, so that the
    ratio min(rule)/min(floor) compares measurements taken in the same seconds (the machines are
    shared: their speed drifts by several times within a minute)."""
    f = (m - 3) // 4
    g = torch.Generator().manual_seed(m * 1_000_003 + d)
    x = torch.randn(m, d, generator=g)
    x += torch.randn(d, generator=g)  # a shared component, as gradients of one model have
    floor_fns = {"memory": lambda: x.sum(0), "gemm": lambda: x @ x.T}
    mem_ms, gemm_ms = floors(x, args.repeats)
    print(f"\nm={m} d={d:.0e} f={f}: memory floor {mem_ms:.1f} ms, GEMM floor {gemm_ms:.1f} ms", flush=True)
    rules: dict[str, dict] = {}
    calls = {}
    for _rnd in range(args.rounds):  # later rounds re-time every rule: the minimum over rounds is kept
        for name in names:
            rule = RULES.get(name)
            entry = rules.setdefault(name, {"floor": "gemm" if name in GEMM_RULES else "memory"})
            if "skipped" in entry or "flag" in entry:
                continue
            if rule is not None and not rule.valid(m, f):
                entry["skipped"] = f"not valid for m={m}, f={f} ({rule.condition.text})"
                print(f"  {name:20s} skipped: {entry['skipped']}", flush=True)
                continue
            try:
                if name not in calls:
                    calls[name] = make_call(name, x, f)
                    entry["first_call_s"] = timed_once(calls[name]) / 1e3
                    if entry["first_call_s"] > args.max_call_s:
                        entry["ms"] = 1e3 * entry["first_call_s"]
                        entry["runs"] = 1
                        entry["flag"] = f"first call took {entry['first_call_s']:.0f} s: timed once"
                        continue
                floor_fn = floor_fns[entry["floor"]]
                began = time.perf_counter()
                spent = 0.0
                for rep in range(args.max_repeats):
                    fl = timed_once(floor_fn)
                    ms = timed_once(calls[name])
                    spent += ms / 1e3
                    entry["ms"] = min(ms, entry.get("ms", float("inf")))
                    entry["paired_floor_ms"] = min(fl, entry.get("paired_floor_ms", float("inf")))
                    entry["runs"] = entry.get("runs", 0) + 1
                    if time.perf_counter() - began > args.budget_s:
                        break
                    if rep + 1 >= args.repeats and spent >= args.min_time_s:
                        break  # fast calls repeat until min_time_s of them: a quiet moment is likelier
            except (ValueError, RuntimeError, MemoryError) as exc:
                entry["skipped"] = f"{type(exc).__name__}: {exc}"
                print(f"  {name:20s} skipped: {entry['skipped']}", flush=True)
                continue
            entry["path"] = path_used(name, x, f)
    mem2, gemm2 = floors(x, args.repeats)  # the floors again, after the rules: keep the minimum
    mem_ms, gemm_ms = min(mem_ms, mem2), min(gemm_ms, gemm2)
    print(f"  floors (min of both ends): memory {mem_ms:.1f} ms, GEMM {gemm_ms:.1f} ms", flush=True)
    for name, entry in rules.items():
        if "ms" not in entry:
            continue
        paired = entry.get("paired_floor_ms")
        entry["floor_ms"] = {"memory": mem_ms, "gemm": gemm_ms}
        entry["ratio_memory"] = entry["ms"] / mem_ms
        entry["ratio_gemm"] = entry["ms"] / gemm_ms
        # the headline ratio: against the floor timed alongside (the shape-level floor if none)
        entry["ratio"] = entry["ms"] / (paired or entry["floor_ms"][entry["floor"]])
        if name in TARGETS:
            floor, limit = TARGETS[name]
            entry["target"] = f"<= {limit}x {floor} floor"
            entry["meets_target"] = entry["ratio"] <= limit
        print(
            f"  {name:20s} {entry['ms']:9.1f} ms  {entry['ratio']:6.2f}x {entry['floor']} floor "
            f"(paired floor {paired or float('nan'):.1f} ms; first call {entry.get('first_call_s', 0):.1f} s, "
            f"{entry.get('path')})"
            + (
                f"  target {entry['target']}: {'met' if entry['meets_target'] else 'MISSED'}" if name in TARGETS else ""
            ),
            flush=True,
        )
    out = {
        "m": m,
        "d": d,
        "f": f,
        "dtype": "float32",
        "floors": {"memory_ms": mem_ms, "gemm_ms": gemm_ms},
        "rules": rules,
        "checks": {},
    }
    if "median" in names and d <= args.check_max_d:
        got = coordinate_median(x).numpy()
        out["checks"]["median_equals_numpy_midpoint"] = bool(np.array_equal(got, np.median(x.numpy(), axis=0)))
        out["checks"]["median_path"] = path_used("median", x, f)
        print(
            f"  check: median == numpy midpoint median: {out['checks']['median_equals_numpy_midpoint']}"
            f" ({out['checks']['median_path']})",
            flush=True,
        )
    return out


def parse_size(s: str) -> int:
    return int(float(s))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="m = 32, d = 1e6 only")
    ap.add_argument("--m", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--d", type=parse_size, nargs="+", default=[10**5, 10**6, 10**7])
    ap.add_argument("--rules", nargs="+", default=None, help="rule or pre-aggregator names (default: all)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=2, help="passes over the rules (min over passes)")
    ap.add_argument(
        "--min-time-s",
        type=float,
        default=0.5,
        help="per round, repeat a fast rule until its calls add up to this (up to --max-repeats)",
    )
    ap.add_argument("--max-repeats", type=int, default=200)
    ap.add_argument("--budget-s", type=float, default=20.0, help="stop repeating a rule after this many seconds")
    ap.add_argument("--max-call-s", type=float, default=300.0, help="time once a rule whose first call is slower")
    ap.add_argument("--check-max-d", type=parse_size, default=10**7, help="largest d checked against numpy")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--reference", action="store_true", help="also time torch.median(X, 0) (slow)")
    ap.add_argument(
        "--thp",
        action="store_true",
        help="THP_MEM_ALLOC_ENABLE=1: transparent huge pages for large CPU tensors (fresh outputs "
        "such as the pre-aggregators' m x d tensors then cost far fewer page faults)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.m, args.d = [32], [10**6]
    names = entries(args.rules)
    if args.reference:
        names.append("ref:torch.median")
    report = {
        "machine": machine_info(),
        "targets": {k: f"<= {v[1]}x {v[0]} floor" for k, v in TARGETS.items()},
        "results": [],
    }
    report["runs"] = []
    if args.out.exists():
        try:
            previous = json.loads(args.out.read_text())
            report["results"] = previous.get("results", [])
            report["runs"] = previous.get("runs", [])
        except (OSError, json.JSONDecodeError):
            pass
    report["runs"].append({"started": report["machine"]["started"], "argv": sys.argv[1:]})
    for m in args.m:
        for d in args.d:
            need = 3 * m * d * 4
            if need > available_bytes():
                print(f"\nm={m} d={d:.0e}: skipped ({need / 2**30:.1f} GiB needed)", flush=True)
                continue
            res = bench_shape(m, d, names, args)
            res["run_started"] = report["machine"]["started"]
            old = [r for r in report["results"] if (r["m"], r["d"]) == (m, d)]
            if old and args.rules:  # a partial run: keep the other rules' numbers
                merged = old[0]
                merged["rules"].update(res["rules"])
                merged["checks"].update(res["checks"])
                merged["floors"] = res["floors"]  # each rule entry keeps the floors of its own run (floor_ms)
                res = merged
            report["results"] = [r for r in report["results"] if (r["m"], r["d"]) != (m, d)] + [res]
            report["results"].sort(key=lambda r: (r["m"], r["d"]))
            report["machine"]["load_average_at_end"] = os.getloadavg()
            report["machine"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            report["runs"][-1].update(load_average_at_end=os.getloadavg(), finished=report["machine"]["finished"])
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
