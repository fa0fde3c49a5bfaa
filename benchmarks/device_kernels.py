"""Aggregation on the device: every rule on an (m, d) float32 tensor in device memory, against the
device's own floors measured in the same run (issue 10, "device aggregation vs bandwidth floor").

Floors, each the fastest of its stock candidates on the same tensor: memory = one pass over the
m·d floats (``X.sum(0)``, a contiguous copy into a preallocated buffer, ``mv(X.T, w)``), GEMM = the
m × m Gram ``X @ X.T``; stated in ms and GB/s of the m·d·4 bytes read. Every registered rule runs
through ``Pipeline`` as the server calls it (f = ⌊(m − 3)/4⌋). Times on CUDA come from CUDA events
around ``--repeats`` calls after a warm-up call (which includes any compile), on the CPU from
``perf_counter``; the minimum is reported, with ``ratio`` = ms / the floor the rule is judged
against (memory for coordinate-wise rules, GEMM for distance-based ones, as
``benchmarks/aggregators.py``). Each rule's device output is compared with the same rule on the
CPU copy of the data (max |Δ| relative to max |x|): the device path must compute the same rule.

Run:  .venv/bin/python benchmarks/device_kernels.py                   (needs a GPU; --device cpu runs the same code on the CPU)
      .venv/bin/python benchmarks/device_kernels.py --m 16 64 --d 1e6 1e7
Writes benchmarks/results/device_kernels.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import finish, machine_info  # noqa: E402

from byzmpi.aggregators import RULES, Pipeline  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "device_kernels.json"
GEMM_RULES = {"krum", "multi_krum", "geometric_median", "centered_clipping", "mda", "bulyan", "caf", "monna"}
SKIP = {"mda"}  # exhaustive subset search: exponential in m, not a kernel


def timer(device: torch.device) -> Callable[[Callable[[], object], int], float]:
    def cuda_ms(fn: Callable[[], object], repeats: int) -> float:
        best = float("inf")
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end))
        return best

    def cpu_ms(fn: Callable[[], object], repeats: int) -> float:
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            best = min(best, 1e3 * (time.perf_counter() - t))
        return best

    return cuda_ms if device.type == "cuda" else cpu_ms


def floors(x: torch.Tensor, ms: Callable[[Callable[[], object], int], float], repeats: int) -> dict[str, dict]:
    buf = torch.empty_like(x)
    w = torch.full((x.shape[0],), 1.0 / x.shape[0], device=x.device)
    candidates = {
        "memory": {"sum(0)": lambda: x.sum(0), "copy": lambda: buf.copy_(x), "mv(X.T, w)": lambda: torch.mv(x.T, w)},
        "gemm": {"X @ X.T": lambda: x @ x.T},
    }
    out: dict[str, dict] = {}
    for kind, fns in candidates.items():
        for fn in fns.values():
            fn()
        times = {name: ms(fn, repeats) for name, fn in fns.items()}
        best = min(times, key=times.__getitem__)
        out[kind] = {"ms": times[best], "op": best, "candidates_ms": times, "GB_s": x.numel() * 4 / times[best] / 1e6}
    return out


def bench_rule(name: str, x: torch.Tensor, cpu: torch.Tensor, f: int, fl: dict, ms, repeats: int) -> dict:
    """One rule on the device tensor ``x``: ms per call, its floor ratio, and its output against
    the same rule on the CPU copy ``cpu``."""
    pipe, ref = Pipeline.build(name, {}, [], seed=0), Pipeline.build(name, {}, [], seed=0)
    counter = iter(range(10**9))

    def call() -> object:
        return pipe(x, f=f, round_=next(counter))

    t0 = time.perf_counter()
    got = call().value
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    first_s = time.perf_counter() - t0
    want = ref(cpu, f=f, round_=0).value
    err = float((got.float().cpu() - want.float()).abs().max() / cpu.abs().max())
    kind = "gemm" if name in GEMM_RULES else "memory"
    t = ms(call, repeats)
    m, d = x.shape
    print(f"m={m} d={d:.0e} {name:>18}: {t:9.3f} ms  {t / fl[kind]['ms']:6.2f}x {kind}  |dev-cpu| {err:.1e}")
    return {"ms": t, "first_call_s": first_s, "floor": kind, "ratio": t / fl[kind]["ms"], "max_rel_diff_vs_cpu": err}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--m", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--d", type=lambda s: int(float(s)), nargs="+", default=[10**6, 10**7])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rules", nargs="+", default=None)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("device_kernels: no CUDA device here; nothing measured (use --device cpu to run the code on the CPU)")
        return 0
    torch.backends.cudnn.benchmark = False
    ms = timer(device)
    info = machine_info(watch=("byzmpi/aggregators",))
    names = [n for n in RULES if n not in SKIP and (args.rules is None or n in args.rules)]
    shapes = []
    for m in args.m:
        for d in args.d:
            f = (m - 3) // 4
            g = torch.Generator().manual_seed(m * 1000 + d % 997)
            cpu = torch.randn(m, d, generator=g) + torch.randn(1, d, generator=g)
            x = cpu.to(device)
            fl = floors(x, ms, args.repeats)
            rules = {name: bench_rule(name, x, cpu, f, fl, ms, args.repeats) for name in names}
            shapes.append({"m": m, "d": d, "f": f, "floors": fl, "rules": rules})
            del x, cpu
            if device.type == "cuda":
                torch.cuda.empty_cache()
    result = {
        "benchmark": "device_kernels",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "argv": sys.argv[1:] if argv is None else argv,
        "shapes": shapes,
        "machine": finish(info),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
