"""Many runs, one job: a grid of quickstart runs as sequential jobs vs one packed job (issue 12 item 2).

The same grid of R runs (default: the quickstart, 3 aggregators x 4 attacks x 4 seeds = 48 runs, each
cut to ``--rounds`` rounds), measured two ways in one benchmark run:

(a) sequential  one MPI job per run: ``mpiexec -n Q python -m mpi4py -m byzmpi run GRID --index i``
                (each job pays the start-up: Q ranks import torch, build the task, write a trace);
(b) packed      one MPI job for the whole grid: ``mpiexec -n P ... byzmpi run GRID --group-size Q``;
                the P ranks split into P/Q groups that run their share of the grid concurrently
                (round-robin in grid order), so the start-up is paid once.

Both through byzmpi's one launch helper (``byzmpi.launch.mpiexec_command`` + ``run_session``: the
venv's mpiexec, a new session, the whole session killed at the timeout). The sequential jobs are split
in two halves run before and after the packed job, so a change of machine load during the benchmark
hits both sides alike. Each side has its own data/optimum cache folder (``BYZMPI_CACHE``), so neither
profits from the other's cached optima.

Per-run start-up of (a): the job's wall time minus the run's own ``wall_seconds`` (its summary line);
the packed job's overhead: its wall time minus the busiest group's summed run time.

Check: every run's trace from (a) and from (b) says finished with all rounds done, and the two
``final_params`` are bit-identical (a run's result does not depend on where it ran).

Run:  .venv/bin/python benchmarks/packed.py            (48 runs; ~10 min on an idle 2-core machine)
      .venv/bin/python benchmarks/packed.py --quick    (4 runs, prints, saves nothing)
Writes benchmarks/results/packed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from byzmpi.launch import mpiexec_command, run_session

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "packed.json"
CONFIG = ROOT / "configs" / "quickstart.toml"

GRID = ["aggregator.name=mean,median,trimmed_mean", "attack.name=alie,ipm,sign_flip,gaussian"]
SEEDS = "1..4"
QUICK_GRID = ["aggregator.name=mean,median", "attack.name=alie"]
QUICK_SEEDS = "1..2"
#: Q = 2: the smallest run (a server and one host with all 8 clients); P = 2Q: two groups, i.e. two
#: compute-bound host ranks for the two cores (4Q would oversubscribe them 4x and import torch 8 times)
GROUP_SIZE = 2
RANKS = 4
ROUNDS = 50  # of the quickstart's 600: a short study run; the start-up (~20 s a job on 2 cores) dominates anyway


def grid_args(args: argparse.Namespace) -> list[str]:
    """The sweep description shared by (a) and (b): CONFIG --grid ... --seeds ... --set ..."""
    out = [str(CONFIG)]
    for g in QUICK_GRID if args.quick else GRID:
        out += ["--grid", g]
    out += ["--seeds", QUICK_SEEDS if args.quick else SEEDS]
    for s in (f"run.rounds={args.rounds}", "run.progress=none"):
        out += ["--set", s]
    return out


def expand(desc: list[str]) -> list[str]:
    """The run names of the description, in grid order (byzmpi.grid: pure, no torch)."""
    from byzmpi import grid

    configs, g, seeds, sets = [desc[0]], [], None, []
    it = iter(desc[1:])
    for flag in it:
        value = next(it)
        if flag == "--grid":
            g.append(value)
        elif flag == "--seeds":
            seeds = value
        else:
            sets.append(value)
    return [r.name for r in grid.expand(configs, g, seeds, sets)]


def summaries(stdout: str) -> dict[str, dict]:
    """{run name: summary} from ``--json`` lines (one per run; the trace path names the run)."""
    out = {}
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            s = json.loads(line)
        except json.JSONDecodeError:
            continue
        out[Path(s["trace"]).stem] = s
    return out


def launch(n: int, argv: list[str], *, cwd: Path, cache: Path, timeout: float) -> tuple[float, dict[str, dict]]:
    res = run_session(
        mpiexec_command(n, ["-m", "byzmpi", "run", *argv, "--json"]),
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "BYZMPI_CACHE": str(cache)},
    )
    if res.returncode != 0:
        raise RuntimeError(f"job of {n} ranks failed (rc={res.returncode}): {' '.join(argv)}\n{res.stderr[-3000:]}")
    return res.seconds, summaries(res.stdout)


def trace_facts(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r", locking=False) as f:
        return {
            "status": str(f.attrs["status"]),
            "rounds_done": int(f.attrs["rounds_done"]),
            "world_size": int(f.attrs["world_size"]),
            "params": f["final_params"][...].tobytes(),
        }


def stats(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "sum": sum(values),
        "n": len(values),
    }


def driver(args: argparse.Namespace) -> int:
    import mpi4py
    import numpy as np
    import torch

    sys.path.insert(0, str(HERE))
    from round_overhead import machine_info

    q, p = args.group_size, args.ranks
    if q < 2 or p % q:
        print(f"--group-size {q} must be >= 2 and divide --ranks {p}", file=sys.stderr)
        return 2
    desc = grid_args(args)
    names = expand(desc)
    report = {
        "benchmark": "packed",
        "description": "wall time of a grid of quickstart runs: (a) one mpiexec job of Q ranks per run, "
        "(b) one packed job of P ranks, --group-size Q (P/Q runs at a time, start-up paid once)",
        "grid": {"argv": desc[1:], "config": str(CONFIG.relative_to(ROOT)), "runs": len(names)},
        "rounds": args.rounds,
        "group_size": q,
        "ranks_packed": p,
        "groups": p // q,
        "ranks_sequential": q,
        "machine": machine_info(),
        "versions": {"numpy": np.__version__, "torch": torch.__version__, "mpi4py": mpi4py.__version__},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average": {},
    }
    print(
        f"[bench] {len(names)} runs of {args.rounds} rounds; sequential: {q} ranks per job; packed: {p} ranks, "
        f"--group-size {q}",
        flush=True,
    )
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="byzmpi-packed-") as tmp_text:
        tmp = Path(tmp_text)
        seq_dir, packed_dir = tmp / "sequential", tmp / "packed"
        seq_dir.mkdir()
        packed_dir.mkdir()
        # warm the page cache for the imports (the first import after a while reads from disk)
        run_session([sys.executable, "-c", "import torch, h5py, mpi4py.MPI, byzmpi.runner"], timeout=300)

        seq: dict[str, dict] = {}

        def sequential(indices: range) -> None:
            for i in indices:
                wall, got = launch(q, [*desc, "--index", str(i)], cwd=seq_dir, cache=tmp / "cache_a", timeout=300)
                s = got[names[i]]
                seq[names[i]] = {"wall_seconds": wall, "run_seconds": s["wall_seconds"]}
                print(
                    f"[bench] (a) {i + 1:>2}/{len(names)} {names[i]}: job {wall:6.2f} s, run {s['wall_seconds']:.2f} s",
                    flush=True,
                )

        half = len(names) // 2
        report["load_average"]["start"] = os.getloadavg()
        sequential(range(half))
        report["load_average"]["before_packed"] = os.getloadavg()
        packed_wall, packed = launch(
            p, [*desc, "--group-size", str(q)], cwd=packed_dir, cache=tmp / "cache_b", timeout=3600
        )
        print(f"[bench] (b) packed job: {packed_wall:.2f} s for {len(packed)} runs", flush=True)
        report["load_average"]["after_packed"] = os.getloadavg()
        sequential(range(half, len(names)))
        report["load_average"]["end"] = os.getloadavg()

        # the traces agree: same final_params per run, whichever way it ran
        mismatches = []
        for name in names:
            a = trace_facts(seq_dir / "runs" / f"{name}.h5")
            b = trace_facts(packed_dir / "runs" / f"{name}.h5")
            for t in (a, b):
                if t["status"] != "finished" or t["rounds_done"] != args.rounds or t["world_size"] != q:
                    mismatches.append(
                        {"run": name, "why": f"trace {t['status']}, {t['rounds_done']} rounds, world {t['world_size']}"}
                    )
            if a["params"] != b["params"]:
                mismatches.append({"run": name, "why": "final_params differ"})
        if set(packed) != set(names):
            mismatches.append({"run": "*", "why": f"packed job reported {len(packed)} of {len(names)} runs"})

    seq_wall = sum(v["wall_seconds"] for v in seq.values())
    startup = [v["wall_seconds"] - v["run_seconds"] for v in seq.values()]
    groups = [names[g :: p // q] for g in range(p // q)]  # batch.share_of: run j to group j mod G
    busy = [sum(packed[n]["wall_seconds"] for n in share) for share in groups]
    report["sequential"] = {
        "wall_seconds": seq_wall,
        "job_seconds": stats([v["wall_seconds"] for v in seq.values()]),
        "run_seconds": stats([v["run_seconds"] for v in seq.values()]),
        "startup_seconds_per_job": stats(startup),
        "jobs": {n: seq[n] for n in names},
    }
    report["packed"] = {
        "wall_seconds": packed_wall,
        "run_seconds": stats([packed[n]["wall_seconds"] for n in names]),
        "group_busy_seconds": busy,
        "overhead_seconds": packed_wall - max(busy),
        "runs": {n: {"run_seconds": packed[n]["wall_seconds"]} for n in names},
    }
    report["ratio_packed_over_sequential"] = packed_wall / seq_wall
    report["speedup_packed"] = seq_wall / packed_wall
    report["traces_agree"] = not mismatches
    report["mismatches"] = mismatches
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["total_seconds"] = time.monotonic() - t_start
    print(
        f"[bench] sequential {seq_wall:.1f} s ({len(names)} jobs; start-up per job median "
        f"{statistics.median(startup):.2f} s), packed {packed_wall:.1f} s (overhead {packed_wall - max(busy):.2f} s): "
        f"ratio packed/sequential {packed_wall / seq_wall:.3f} ({seq_wall / packed_wall:.2f}x faster); "
        f"traces agree: {not mismatches}",
        flush=True,
    )
    for m in mismatches:
        print(f"[bench] MISMATCH {m['run']}: {m['why']}", file=sys.stderr)
    if args.quick and args.out is None:
        return 0 if not mismatches else 1
    out = Path(args.out) if args.out else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"[bench] wrote {out} in {report['total_seconds']:.0f} s", flush=True)
    return 0 if not mismatches else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds per run (default {ROUNDS})")
    p.add_argument("--group-size", type=int, default=GROUP_SIZE, help=f"Q: ranks per run (default {GROUP_SIZE})")
    p.add_argument("--ranks", type=int, default=RANKS, help=f"P: ranks of the packed job (default {RANKS})")
    p.add_argument(
        "--quick", action="store_true", help="a 4-run grid, 20 rounds; prints instead of saving unless --out"
    )
    p.add_argument("--out", default=None, help=f"result JSON (default {RESULTS.relative_to(ROOT)})")
    args = p.parse_args(argv)
    if args.quick and args.rounds == ROUNDS:
        args.rounds = 20
    return driver(args)


if __name__ == "__main__":
    raise SystemExit(main())
