"""What a checkpoint of many clients costs: client states as columns against one group per client.

For n ∈ {1,000, 10,000, 100,000} clients whose state is one d-float momentum (robust SGD with
client momentum, as in ``many_clients.py``: d = 21; and d = 1,000), in one process, best of
``--repeats``, interleaved:

* **write** of the clients' part of a checkpoint, each into a fresh HDF5 file (no fsync: the same
  for all three, and the disk's flush is not what is compared):
  - ``columns``: byzmpi's writer from the packed bytes rank 0 gathers
    (``ClientRows.from_packed`` + ``write_columns``, what ``Server.checkpoint`` runs);
  - ``groups``: one group per client, ``statefile.write_state`` each (format 1, and the fallback
    for states of differing layouts), from the states unpacked on rank 0 as the server did before
    (``init_client`` + ``unpack_into`` per client);
  - ``floor``: the same bytes as one uint8 dataset (``create_dataset(data=raw)``), the least any
    HDF5 layout of them can cost;
* **read** of every client (what a resume reads over all hosts together) and of one host's share
  (n / 15, 16 ranks), through ``checkpoint.load_clients`` on each file (checks included), and the
  floor: reading the one dataset back.

Reported: ms per operation, file size, and the ratios columns / floor and groups / columns.

Run:  .venv/bin/python benchmarks/checkpoint_io.py            (about 2 minutes)
      .venv/bin/python benchmarks/checkpoint_io.py --quick    (n = 1,000 and 10,000, one repeat)
Writes benchmarks/results/checkpoint_io.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from machine import finish, machine_info  # noqa: E402

from byzmpi.checkpoint import load_clients  # noqa: E402
from byzmpi.client_columns import ClientRows, layout, write_columns  # noqa: E402
from byzmpi.methods.robust_sgd import SGDClient  # noqa: E402
from byzmpi.statefile import pack, unpack_into, write_state  # noqa: E402

RESULTS = HERE / "results" / "checkpoint_io.json"
HOST_RANKS = 15


def _best(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def measure(n: int, d: int, repeats: int, folder: Path) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(n + d)
    states = {c: SGDClient(momentum=torch.randn(d, generator=gen)) for c in range(n)}
    raw = np.concatenate([pack(states[c]) for c in range(n)])  # what the gather delivers
    ids = np.arange(n, dtype=np.int64)
    cols = layout(states[0])
    paths = {k: folder / f"{k}_{n}_{d}.h5" for k in ("columns", "groups", "floor")}

    def write_columns_file() -> None:
        with h5py.File(paths["columns"], "w") as f:
            write_columns(f.create_group("clients"), ClientRows.from_packed(ids, cols, raw))

    def write_groups_file() -> None:
        with h5py.File(paths["groups"], "w") as f:
            group = f.create_group("clients")
            offset = 0
            for c in range(n):
                state = SGDClient(momentum=torch.zeros(d))  # init_client(c)
                size = 4 * d
                unpack_into(state, raw[offset : offset + size])
                offset += size
                write_state(group.create_group(str(c)), state)

    def write_floor_file() -> None:
        with h5py.File(paths["floor"], "w") as f:
            f.create_dataset("clients", data=raw)

    writes = {"columns": write_columns_file, "groups": write_groups_file, "floor": write_floor_file}
    write_ms = dict.fromkeys(writes, float("inf"))
    for _ in range(repeats):  # interleaved
        for k, fn in writes.items():
            write_ms[k] = min(write_ms[k], _best(fn, 1))

    share = max(1, n // HOST_RANKS)
    host = range(share * 3, share * 4)  # a middle host's block

    def templates(clients: range) -> dict[int, SGDClient]:
        return {c: SGDClient(momentum=torch.zeros(d)) for c in clients}

    def read_floor() -> None:
        with h5py.File(paths["floor"], "r") as f:
            f["clients"][...]

    reads: dict[str, Callable[[], Any]] = {
        "columns_all": lambda: load_clients(paths["columns"], templates(range(n))),
        "groups_all": lambda: load_clients(paths["groups"], templates(range(n))),
        "columns_host": lambda: load_clients(paths["columns"], templates(host)),
        "groups_host": lambda: load_clients(paths["groups"], templates(host)),
        "floor_all": read_floor,
    }
    check = load_clients(paths["columns"], templates(range(n)))
    assert all(check[c].momentum.equal(states[c].momentum) for c in (0, n // 2, n - 1))
    read_ms = dict.fromkeys(reads, float("inf"))
    for _ in range(repeats):
        for k, fn in reads.items():
            read_ms[k] = min(read_ms[k], _best(fn, 1))
    sizes = {k: p.stat().st_size for k, p in paths.items()}
    for p in paths.values():
        p.unlink()
    return {
        "n": n,
        "d": d,
        "bytes_per_client": 4 * d,
        "host_clients": share,
        "write_ms": write_ms,
        "read_ms": read_ms,
        "file_bytes": sizes,
        "ratios": {
            "write_columns_over_floor": write_ms["columns"] / write_ms["floor"],
            "write_groups_over_columns": write_ms["groups"] / write_ms["columns"],
            "read_all_columns_over_floor": read_ms["columns_all"] / read_ms["floor_all"],
            "read_all_groups_over_columns": read_ms["groups_all"] / read_ms["columns_all"],
            "read_host_groups_over_columns": read_ms["groups_host"] / read_ms["columns_host"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 1,000 and 10,000 at d = 21, one repeat; prints only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    shapes = (
        [(1000, 21), (10000, 21)]
        if args.quick
        else [(1000, 21), (10000, 21), (100000, 21), (1000, 1000), (10000, 1000)]
    )
    repeats = 1 if args.quick else args.repeats
    info = machine_info()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, d in shapes:
            r = measure(n, d, repeats, Path(tmp))
            results.append(r)
            w, rd, q = r["write_ms"], r["read_ms"], r["ratios"]
            print(
                f"n={n:>6} d={d:>5}: write columns {w['columns']:8.1f} ms, groups {w['groups']:8.1f} ms, "
                f"floor {w['floor']:6.1f} ms | read all: columns {rd['columns_all']:8.1f}, groups "
                f"{rd['groups_all']:8.1f}, floor {rd['floor_all']:6.1f} ms | one host ({r['host_clients']}): "
                f"columns {rd['columns_host']:6.1f}, groups {rd['groups_host']:7.1f} ms | "
                f"groups/columns: write {q['write_groups_over_columns']:.0f}x, read {q['read_all_groups_over_columns']:.0f}x",
                flush=True,
            )
    if args.quick:
        return 0
    doc = {"benchmark": "checkpoint_io", "description": __doc__.split("\n\n")[0], "machine": info, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(finish(doc), indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
