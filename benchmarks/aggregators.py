"""How close is each aggregation rule to the cost floors measured in the same run, and how much faster than byzfl?

For m ∈ {16, 32, 64} inputs of d ∈ {1e5, 1e6, 1e7} float32 coordinates (Gaussian draws plus a shared
component; f = ⌊(m − 3)/4⌋, the largest f valid for every rule, Bulyan included), this times, per call:

* two floors, each the fastest of several stock operations timed in the same run (interleaved, at
  both ends of the shape, and once before every timed rule call), stated in ms and GB/s of the
  m·d floats read:
  - memory: one pass over the m·d floats: numpy ``X.sum(axis=0)``, torch ``X.sum(0)``, m − 1 torch
    row adds into one accumulator, numpy gemv ``w @ X``, torch ``mv(X.T, w)``, a contiguous copy
    into a buffer allocated beforehand;
  - GEMM: the m × m Gram matrix: torch ``X @ X.T``, numpy ``X @ X.T``, scipy ``ssyrk`` (one triangle);
  the call before every rule call is the fastest *torch* candidate, and every numpy/scipy BLAS call
  (floor candidates, byzfl's numpy backend) is followed by a 0.25 s pause: OpenBLAS's worker
  threads spin about 0.1 s after a call, and on 2 cores whatever torch runs meanwhile is 2–4×
  slower (this had inflated the earlier rule timings that followed a numpy gemv floor call);
* every registered rule (through ``Pipeline``, as the runner calls it; a stateful rule keeps its
  state between calls, as in a run) and every pre-aggregator alone;
* byzfl's implementation of the same rule (``benchmarks/byzfl_reference.py``: class, arguments,
  conventions), on a numpy view of the same data and on the torch tensor; its output is first
  compared with byzmpi's (``byzfl.<backend>.agreement``; where the conventions differ the check
  uses byzmpi parameters that reproduce byzfl's, or records the disagreement and why), then timed;
  ``byzfl.speedup`` = byzfl ms (faster backend) / byzmpi ms.

Reported: ms per call (the minimum over repeats after a warm-up call) and ``ratio`` = ms / floor,
the floor being the smallest of the paired floor calls and of every candidate timed at the ends
(``floor_kind`` names it): the memory floor for the coordinate-wise rules (mean, median, trimmed
mean, Meamed) and the clipping / bucketing pre-aggregators, the GEMM floor for the distance-based
ones (Krum, Multi-Krum, GM, CC, MDA, Bulyan, CAF, MoNNA, NNM). Both ratios are stored for every
entry. The first call of a rule using the compiled sorting network includes the compile; it is
reported separately (``first_call_s``). The compiled median is checked against numpy's midpoint
median on the same data (``checks``).

Targets (issue 12): mean / median / trimmed mean / Meamed within 2× the memory floor; Krum,
Multi-Krum, GM, CC, NNM, MoNNA, Bulyan, CAF within 1.5× the GEMM floor.

Run:  .venv/bin/pip install --no-deps -r benchmarks/requirements.txt   (byzfl, for its column)
      .venv/bin/python benchmarks/aggregators.py            full grid (about an hour on 2 shared cores)
      .venv/bin/python benchmarks/aggregators.py --m 16 32 64 --d 1e6 1e7   the issue's grid
      .venv/bin/python benchmarks/aggregators.py --quick    m = 32, d = 1e6 only (a few minutes)
      .venv/bin/python benchmarks/aggregators.py --m 32 --d 1e6 --rules median krum --out runs/a.json
      ... --no-byzfl                                        without the byzfl column
      ... --thp                                             with THP_MEM_ALLOC_ENABLE=1 (recorded in the JSON)
Writes benchmarks/results/aggregators.json (merging with an existing file: entries for the same
(m, d) are replaced, others kept, so a grid can be filled in several runs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if "--thp" in sys.argv:  # must precede the first torch allocation: read once by c10's CPU allocator
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import byzfl_reference  # noqa: E402
from machine import machine_info as shared_machine_info  # noqa: E402

from byzmpi.aggregators import (  # noqa: E402
    PRE_AGGREGATORS,
    RULES,
    Pipeline,
    sorting,  # noqa: E402
)
from byzmpi.aggregators.buffers import OutputBuffer  # noqa: E402
from byzmpi.aggregators.geometric_median import weiszfeld  # noqa: E402
from byzmpi.aggregators.median import coordinate_median  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "aggregators.json"
GEMM_RULES = {"krum", "multi_krum", "geometric_median", "centered_clipping", "mda", "bulyan", "caf", "monna", "pre:nnm"}
SORTING_RULES = {"median", "trimmed_mean", "meamed", "bulyan", "geometric_median", "centered_clipping"}
TARGETS = {
    **{r: ("memory", 2.0) for r in ("mean", "median", "trimmed_mean", "meamed")},
    **{
        r: ("gemm", 1.5)
        for r in ("krum", "multi_krum", "geometric_median", "centered_clipping", "pre:nnm", "monna", "bulyan", "caf")
    },
}
BYZFL, BYZFL_VERSION = byzfl_reference.load()


def machine_info() -> dict:
    info = shared_machine_info(watch=("byzmpi/aggregators",))
    info.update(
        torch_threads=torch.get_num_threads(),
        compile_enabled=sorting.compile_enabled(),
        byzfl=BYZFL_VERSION if BYZFL is not None else f"byzfl {BYZFL_VERSION}",
        THP_MEM_ALLOC_ENABLE=os.environ.get("THP_MEM_ALLOC_ENABLE", ""),
    )
    info["aggregators_dirty"] = info["dirty"]["byzmpi/aggregators"]
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
        if pre.takes_out:  # as the pipeline calls it: into its stage's reused output tensor
            buffer = OutputBuffer()
            return lambda: pre.apply(x, f=f, generator=gen, out=buffer, **params)
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


def memory_floor_fns(x: torch.Tensor) -> dict[str, object]:
    """Stock single passes over the m·d floats (each reads every float once)."""
    m, d = x.shape
    xn = x.numpy()
    w_np = np.full(m, 1.0 / m, dtype=np.float32)
    w_t = torch.from_numpy(w_np)
    acc = torch.empty(d, dtype=x.dtype)

    def row_adds():  # m - 1 contiguous adds into one accumulator
        torch.add(x[0], x[1], out=acc)
        for i in range(2, m):
            acc.add_(x[i])
        return acc

    return {
        "numpy sum(axis=0)": lambda: xn.sum(axis=0),
        "torch sum(0)": lambda: x.sum(0),
        "torch row adds into one accumulator": row_adds,
        "numpy gemv w @ X": lambda: w_np @ xn,
        "torch mv(X.T, w)": lambda: torch.mv(x.T, w_t),
    }


def gemm_floor_fns(x: torch.Tensor) -> dict[str, object]:
    """Stock m × m Gram matrices X·Xᵀ."""
    xn = x.numpy()
    fns = {"torch X @ X.T": lambda: x @ x.T, "numpy X @ X.T": lambda: xn @ xn.T}
    try:
        from scipy.linalg import blas

        fns["scipy ssyrk (one triangle of X X^T)"] = lambda: blas.ssyrk(1.0, xn.T, trans=1)
    except ImportError:
        pass
    return fns


#: OpenBLAS's worker threads spin for about 2^28 cycles (0.1 s) after a call; on 2 cores a torch
#: (MKL / OpenMP) call made meanwhile runs 2–4× slower (measured: numpy gemv then torch X·Xᵀ at
#: m = 16, d = 1e6: 17 ms, torch.mv then X·Xᵀ: 5.6 ms). Every numpy/scipy BLAS call here is
#: followed by this pause before anything torch is timed.
BLAS_SETTLE_S = 0.25


def _is_numpy(name: str) -> bool:
    return name.startswith(("numpy", "scipy"))


def settle() -> None:
    time.sleep(BLAS_SETTLE_S)


def measure_floors(x: torch.Tensor, repeats: int, with_copy: bool = True) -> dict[str, dict[str, float]]:
    """Min ms of every floor candidate, the candidates interleaved (one call each per repeat):
    per repeat the torch candidates first, then the numpy/scipy ones, then a pause
    (``BLAS_SETTLE_S``) so that OpenBLAS's spinning threads never overlap a torch candidate."""
    mem, gemm = memory_floor_fns(x), gemm_floor_fns(x)
    if with_copy:  # a contiguous copy into a buffer allocated beforehand (no page faults timed)
        buf = torch.empty_like(x)
        buf.copy_(x)
        mem["contiguous copy into a buffer"] = lambda: buf.copy_(x)
    out: dict[str, dict[str, float]] = {"memory": {}, "gemm": {}}
    for _ in range(repeats):
        for numpy_side in (False, True):
            for kind, fns in (("memory", mem), ("gemm", gemm)):
                for name, fn in fns.items():
                    if _is_numpy(name) != numpy_side:
                        continue
                    ms = timed_once(fn)
                    out[kind][name] = min(ms, out[kind].get(name, float("inf")))
        settle()
    return out


def _merge_min(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: min(a.get(k, float("inf")), b.get(k, float("inf"))) for k in {**a, **b}}


def _fastest(c: dict[str, float]) -> tuple[str, float]:
    name = min(c, key=c.get)
    return name, c[name]


def bench_byzfl(name: str, x: torch.Tensor, f: int, ours_first, entry: dict, args) -> None:
    """byzfl's implementation of rule ``name`` on the same x: agreement first, then the timing."""
    m, d = x.shape
    if name in byzfl_reference.MISSING:
        entry["byzfl"] = {"skipped": byzfl_reference.MISSING[name]}
        return
    ref = byzfl_reference.REFERENCES.get(name)
    if ref is None:
        entry["byzfl"] = {"skipped": "no byzfl counterpart"}
        return
    if BYZFL is None:
        entry["byzfl"] = {"skipped": BYZFL_VERSION}
        return
    col = entry.setdefault("byzfl", {"class": f"byzfl.{ref.cls}", "note": ref.note})
    why = ref.feasible(m, f)
    need = (ref.mem(m, f) + (1.0 if ref.in_place else 0.0)) * x.numel() * x.element_size()
    cap = min(args.byzfl_max_gb * 2**30, 0.5 * available_bytes())
    col["need_gib"] = need / 2**30  # computed from byzfl's temporaries (ref.mem), beside the cap
    col["cap_gib"] = cap / 2**30
    if why is None and need > cap:
        why = f"needs about {need / 2**30:.1f} GiB of temporaries (cap {cap / 2**30:.1f} GiB): not run"
    if why is not None:
        col["skipped"] = why
        return
    for backend in args.byzfl_backends:
        res = col.setdefault(backend, {})
        if "skipped" in res or "flag" in res:
            continue
        xb = byzfl_reference.as_backend(x, backend)
        spare = None
        if ref.in_place:
            spare = np.empty_like(xb) if backend == "numpy" else torch.empty_like(xb)

        def fresh():
            if spare is None:
                return xb
            spare[...] = xb
            return spare

        try:
            np.random.seed(0)
            torch.manual_seed(0)
            if "call" not in res:
                if name == "centered_clipping":
                    centre = coordinate_median(x)
                    centre = centre.value if hasattr(centre, "value") else centre
                    inst = byzfl_reference._cc_with_centre(
                        BYZFL, f, 10.0, 3, centre.numpy() if backend == "numpy" else centre
                    )
                else:
                    inst = ref.make(BYZFL, m, f)
                inp = fresh()
                t0 = time.perf_counter()
                out = inst(inp)
                res["first_call_s"] = time.perf_counter() - t0
                res["call"] = inst
                if ref.check is None and ref.check_columns is None:
                    res["agreement"] = byzfl_reference.agreement(ours_first(None), out, ref.tolerance)
                else:
                    cols = ref.check_columns or d
                    xs = x[:, :cols].contiguous()
                    chk = (ref.check or ref.make)(BYZFL, m, f)
                    theirs = chk(byzfl_reference.as_backend(xs, backend))
                    res["agreement"] = byzfl_reference.agreement(ours_first(xs), theirs, ref.tolerance)
                    res["agreement"]["checked_on"] = f"first {cols} columns" if cols < d else "all columns"
                del out
                if res["first_call_s"] > args.byzfl_max_call_s:
                    res["ms"], res["runs"] = 1e3 * res["first_call_s"], 1
                    res["flag"] = f"first call took {res['first_call_s']:.0f} s: timed once"
                    continue
            inst = res["call"]
            began = time.perf_counter()
            for _ in range(args.byzfl_repeats):
                inp = fresh()
                ms = timed_once(lambda: inst(inp))  # noqa: B023
                res["ms"] = min(ms, res.get("ms", float("inf")))
                res["runs"] = res.get("runs", 0) + 1
                if time.perf_counter() - began > args.byzfl_budget_s:
                    break
        except (ValueError, RuntimeError, MemoryError, TypeError, IndexError) as exc:
            res.clear()
            res["skipped"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        spare = None  # noqa: F841 - the in-place copy is freed before the next backend


def _finish_byzfl(entry: dict) -> None:
    col = entry.get("byzfl")
    if not col or "skipped" in col:
        return
    best = None
    for backend, res in col.items():
        if isinstance(res, dict):
            res.pop("call", None)
            if "ms" in res and (best is None or res["ms"] < col[best]["ms"]):
                best = backend
    if best is not None and "ms" in entry:
        col["ms"], col["backend"] = col[best]["ms"], best
        col["speedup"] = col[best]["ms"] / entry["ms"]
        agree = [r["agreement"]["agree"] for r in col.values() if isinstance(r, dict) and "agreement" in r]
        agree = [a for a in agree if a is not None]
        col["agree"] = all(agree) if agree else None


def ours_for_check(name: str, x: torch.Tensor, f: int, m: int):
    """A function returning byzmpi's output for the agreement check (a fresh pipeline, first call,
    with the parameters that reproduce byzfl's convention) on x or on a slice of it."""
    ref = byzfl_reference.REFERENCES.get(name)
    params = ref.check_params(m, f) if ref is not None else {}
    cache: dict = {}

    def ours(xs: torch.Tensor | None) -> torch.Tensor:
        key = None if xs is None else xs.shape[1]
        if key not in cache:
            data = x if xs is None else xs
            if name.startswith("pre:"):
                pre = PRE_AGGREGATORS[name[4:]]
                kw = {k: p.default for k, p in pre.params.items()}
                cache[key] = pre.apply(data, f=f, generator=torch.Generator().manual_seed(0), **kw).x
            else:
                cache[key] = Pipeline.build(name, params, [], seed=0)(data, f=f, round_=0).value
        return cache[key]

    return ours


def bench_shape(m: int, d: int, names: list[str], args) -> dict:
    """Each timed call of a rule is paired with a call of its floor just before it (the fastest
    candidate of the opening measurement), so that the ratio compares measurements taken in the
    same seconds; the floor used is the minimum of those paired calls and of every candidate timed
    at both ends of the shape (the shared machines drift by several times within a minute)."""
    f = (m - 3) // 4
    g = torch.Generator().manual_seed(m * 1_000_003 + d)
    x = torch.randn(m, d, generator=g)
    x += torch.randn(d, generator=g)  # a shared component, as gradients of one model have
    gib = x.numel() * x.element_size() / 1e9
    with_copy = 2 * x.numel() * x.element_size() < 0.5 * available_bytes()
    cand = measure_floors(x, args.repeats, with_copy)
    # the floor timed before every rule call is the fastest torch candidate (no copy): a numpy/scipy
    # call there would leave OpenBLAS threads spinning through the rule's call
    pair_mem, _ = _fastest({k: v for k, v in cand["memory"].items() if "copy" not in k and not _is_numpy(k)})
    pair_gemm, _ = _fastest({k: v for k, v in cand["gemm"].items() if not _is_numpy(k)})
    floor_fns = {"memory": memory_floor_fns(x)[pair_mem], "gemm": gemm_floor_fns(x)[pair_gemm]}
    print(
        f"\nm={m} d={d:.0e} f={f}: memory floor {_fastest(cand['memory'])[1]:.1f} ms ({_fastest(cand['memory'])[0]}), "
        f"GEMM floor {_fastest(cand['gemm'])[1]:.1f} ms ({_fastest(cand['gemm'])[0]})",
        flush=True,
    )
    rules: dict[str, dict] = {}
    calls = {}
    checks = {}
    for _rnd in range(args.rounds):  # later rounds re-time every rule: the minimum over rounds is kept
        for name in names:
            rule = RULES.get(name)
            entry = rules.setdefault(name, {"floor": "gemm" if name in GEMM_RULES else "memory"})
            if "skipped" in entry or "flag" in entry:
                continue
            if rule is not None and not rule.valid(m, f):
                cond = getattr(rule.condition, "text", rule.condition)
                entry["skipped"] = f"not valid for m={m}, f={f} ({cond})"
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
            if name == "geometric_median" and "ms" in entry:  # the "GM per iteration"
                entry["iterations"] = weiszfeld(x)[2]  # the defaults, as Pipeline.build runs it
            if args.byzfl and not name.startswith("ref:") and _rnd < args.byzfl_rounds:
                if name not in checks:
                    checks[name] = ours_for_check(name, x, f, m)
                bench_byzfl(name, x, f, checks[name], entry, args)
                settle()  # byzfl's numpy backend calls OpenBLAS
    cand2 = measure_floors(x, args.repeats, with_copy)  # the floors again, after the rules
    cand = {k: _merge_min(cand[k], cand2[k]) for k in cand}
    mem_kind, mem_ms = _fastest(cand["memory"])
    gemm_kind, gemm_ms = _fastest(cand["gemm"])
    print(
        f"  floors (min of both ends): memory {mem_ms:.1f} ms = {gib / mem_ms * 1e3:.1f} GB/s ({mem_kind}), "
        f"GEMM {gemm_ms:.1f} ms = {2 * m * m * d / gemm_ms / 1e6:.1f} GFLOP/s ({gemm_kind})",
        flush=True,
    )
    shape_floor = {"memory": mem_ms, "gemm": gemm_ms}
    for name, entry in rules.items():
        _finish_byzfl(entry)
        if "ms" not in entry:
            continue
        paired = entry.get("paired_floor_ms", float("inf"))
        kind = entry["floor"]
        floor = min(paired, shape_floor[kind])
        entry["floor_ms"] = floor
        entry["floor_gbps"] = gib / floor * 1e3
        entry["floor_kind"] = (
            (mem_kind if kind == "memory" else gemm_kind)
            if floor < paired
            else (f"{pair_mem if kind == 'memory' else pair_gemm} (paired)")
        )
        entry["ratio_memory"] = entry["ms"] / min(paired if kind == "memory" else float("inf"), mem_ms)
        entry["ratio_gemm"] = entry["ms"] / min(paired if kind == "gemm" else float("inf"), gemm_ms)
        entry["ratio"] = entry["ms"] / floor
        if name in TARGETS:
            tfloor, limit = TARGETS[name]
            entry["target"] = f"<= {limit}x {tfloor} floor"
            entry["meets_target"] = entry["ratio"] <= limit
            if entry.get("iterations"):  # GM: the total over its Weiszfeld iterations (one Gram for all)
                entry["ms_per_iteration"] = entry["ms"] / entry["iterations"]
                entry["ratio_per_iteration"] = entry["ratio"] / entry["iterations"]
                entry["meets_target_per_iteration"] = entry["ratio_per_iteration"] <= limit
        bz = entry.get("byzfl", {})
        bz_txt = (
            f"byzfl {bz['ms']:.1f} ms ({bz['backend']}): speed-up {bz['speedup']:.2f}x, agree={bz.get('agree')}"
            if "speedup" in bz
            else f"byzfl: {bz.get('skipped', 'n/a')}"
        )
        print(
            f"  {name:20s} {entry['ms']:9.1f} ms  {entry['ratio']:5.2f}x {kind} floor ({floor:.1f} ms, "
            f"{entry['floor_gbps']:.1f} GB/s)"
            + (f" target {entry['target']}: {'met' if entry['meets_target'] else 'MISSED'}" if name in TARGETS else "")
            + f"; {bz_txt}",
            flush=True,
        )
    out = {
        "m": m,
        "d": d,
        "f": f,
        "dtype": "float32",
        "floors": {
            "memory_ms": mem_ms,
            "memory_gbps": gib / mem_ms * 1e3,
            "memory_kind": mem_kind,
            "memory_candidates_ms": cand["memory"],
            "gemm_ms": gemm_ms,
            "gemm_gbps": gib / gemm_ms * 1e3,
            "gemm_gflops": 2 * m * m * d / gemm_ms / 1e6,
            "gemm_kind": gemm_kind,
            "gemm_candidates_ms": cand["gemm"],
            "paired": {"memory": pair_mem, "gemm": pair_gemm},
        },
        "rules": rules,
        "checks": {},
    }
    if "median" in names and d <= args.check_max_d:
        got = coordinate_median(x)
        got = (got.value if hasattr(got, "value") else got).numpy()
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
    ap.add_argument("--no-byzfl", dest="byzfl", action="store_false", help="skip the byzfl column")
    ap.add_argument("--byzfl-backends", nargs="+", default=["numpy", "torch"], choices=["numpy", "torch"])
    ap.add_argument("--byzfl-rounds", type=int, default=1, help="rounds in which byzfl is timed too")
    ap.add_argument("--byzfl-repeats", type=int, default=3, help="timed byzfl calls per round (after the first)")
    ap.add_argument("--byzfl-budget-s", type=float, default=15.0, help="stop repeating a byzfl call after this")
    ap.add_argument("--byzfl-max-call-s", type=float, default=60.0, help="time once a byzfl call slower than this")
    ap.add_argument("--byzfl-max-gb", type=float, default=6.0, help="skip byzfl where its temporaries exceed this")
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
    report["runs"].append(
        {
            "started": report["machine"]["started"],
            "argv": sys.argv[1:],
            **{k: report["machine"][k] for k in ("git_commit", "aggregators_dirty", "simd") if k in report["machine"]},
            "load_average_at_start": report["machine"]["load_average_at_start"],
        }
    )
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
