"""Cost of mask derivation, encode and decode at d = 10⁶, K = 0.1·d (not collected by pytest).

    python -m tests.compressors.bench_compressors [d] [ratio] [m]

Prints the median wall time of each step over repeated calls on fresh (round, client) keys, so
the mask cache never hits unless stated.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import torch

from byzmpi import rng
from byzmpi.compressors import RandK, build_compressor
from byzmpi.compressors.masks import random_subset


def _median_ms(fn, reps: int = 15) -> float:
    fn(0)
    times = []
    for i in range(1, reps + 1):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def _row(label: str, fn, reps: int = 15) -> None:
    print(f"  {label:<44s} {_median_ms(fn, reps):8.2f} ms")


def main(d: int = 10**6, ratio: float = 0.1, m: int = 10) -> None:
    k = max(1, int(ratio * d))
    x = torch.randn(d)
    print(f"d={d} K={k} m={m} torch threads={torch.get_num_threads()}")
    _row("mask: random_subset (ours)", lambda i: random_subset(rng.generator(1, i, "mask", 0), d, k))
    _row("mask: Generator.choice + sort", lambda i: np.sort(rng.generator(1, i, "mask", 0).choice(d, k, replace=False)))
    _row(
        "mask: torch.randperm[:K] + sort",
        lambda i: torch.randperm(d, generator=rng.torch_generator(1, i, "mask", 0))[:k].sort(),
    )
    for cname in ("randk", "randk_coordinated", "topk"):
        comp = build_compressor(cname, d, 1, ratio=ratio)
        if cname != "topk":  # keep the m masks of round 0 cached for the "cached" rows
            comp = RandK(d, 1, ratio=ratio, coordinated=comp.shared_mask, cache_size=2 * m)
        fresh = build_compressor(cname, d, 1, ratio=ratio)
        out = torch.empty(comp.wire_len)
        wire = torch.empty(m, comp.wire_len)
        for c in range(m):
            comp.encode(x, round=0, client=c, out=wire[c])
        clients = np.arange(m)
        buf = torch.empty(m, d)
        print(f"{cname}: wire_len={comp.wire_len}")
        _row("encode (mask derived)", lambda i: comp.encode(x, round=10**6 + i, client=0, out=out))
        _row("encode (mask cached)", lambda i: comp.encode(x, round=0, client=0, out=out))
        _row("decode one row (mask cached)", lambda i: comp.decode(wire[0], round=0, client=0))
        _row(f"decode_rows m={m} (masks derived)", lambda i: fresh.decode_rows(wire, clients, 10**6 + i), 5)
        _row(f"decode_rows m={m} (masks cached, out=)", lambda i: comp.decode_rows(wire, clients, 0, out=buf), 5)
        _row(f"reject_codes m={m}", lambda i: comp.reject_codes(wire), 5)


if __name__ == "__main__":
    main(*(t(a) for t, a in zip((int, float, int), sys.argv[1:])))
