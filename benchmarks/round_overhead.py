"""How much does a byzmpi round cost on top of the bare MPI it is made of?

Three ways of running the same sampled round, per world size P and message size d (float32):

(a) raw     bare mpi4py: ``Create_group`` over the round's members, ``Bcast`` of d floats from rank 0,
            ``Gather`` of d floats from each sampled host into rank 0 (``IN_PLACE`` at the root), ``Free``.
(b) comm    the same through ``byzmpi.comm``, as the runner does it: ``World.round_comm`` + ``bcast`` +
            ``gather_rows`` (Gatherv) of rows of d + TELEMETRY floats (the payload, then the host's
            compute seconds, staging seconds and staged flag: the runner's telemetry travels in the
            same gather, no second collective).
(b') checked the same with the checked receive path instead (``run.receive = "checked"``, issue 13
            item 1): each host ``send_checked`` (its rows with their telemetry, one point-to-point
            message), the server ``gather_checked`` (per member: ``Mprobe`` + ``Get_count`` +
            ``Message.Recv``), so a wrong-length message is never written into the buffer.
(c) full    a whole ``byzmpi run`` round with the benchmark-only method ``bench_echo`` (plugin
            ``benchmarks/round_overhead_plugin.py``, loaded through ``run.plugins``): the client's message
            is the downlink, aggregator mean, no attack, trace (with the per-message table) to a temp dir,
            evaluation only at round 0 and after the last round. The runner decodes messages into rows
            of the task's dimension, so the task is a synthetic one of dimension d (d - 1 features plus
            the bias) with one sample per client, no regulariser (no f* to solve); it is never used for
            gradients. (c') is (c) with ``run.receive = "checked"``, in the same job, right after it.

Setup: n = P - 1 clients, one per host rank; C = P - 2 clients sampled per round (every round one
host sits out, so the round communicator really changes from round to round), the same seeded
round plans (``byzmpi.plan.Sampler``) for (a), (b), (b') and (c). (a), (b) and (b') run in the same
job, each round all three with the same plan and buffers, in an order that rotates from round to
round, so machine noise hits them alike; (c) and (c') are a separate ``byzmpi run`` job (several
configs, one job).

Timing, all on rank 0: (a)/(b) from just before ``Create_group`` to just after ``Free``; (c) the
round-to-round period (time between consecutive downlinks, recorded by the plugin), which covers
everything the runner does per round, and the trace's own ``t_round`` and time split. Medians
over the rounds after a warm-up. Bytes per round: C·d·4 up and C·d·4 down.

Run:  .venv/bin/python benchmarks/round_overhead.py          (about 2-4 minutes on 2 cores)
      .venv/bin/python benchmarks/round_overhead.py --quick  (a smoke run, results not saved)
Writes benchmarks/results/round_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from machine import machine_info  # benchmarks/machine.py (this folder is on sys.path when run as a script)

from byzmpi.launch import OPENMPI_DEFAULTS, mpiexec_command, run_session

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PLUGIN = HERE / "round_overhead_plugin.py"
RESULTS = HERE / "results" / "round_overhead.json"

RANKS = (4, 9)
SIZES = (1_000, 100_000, 1_000_000)
#: (rounds, warm-up rounds) per d
ROUNDS = {1_000: (400, 50), 100_000: (200, 20), 1_000_000: (60, 10)}
QUICK = {1_000: (40, 5), 100_000: (20, 5), 1_000_000: (8, 2)}
SEED = 5
TAG_RAW = 16384  # (a) uses Create_group tags in [16384, 32768); byzmpi's round tags are below

MPI_ENV = OPENMPI_DEFAULTS  # byzmpi's launch helper's defaults


def sampled_per_round(ranks: int) -> int:
    return ranks - 2


# ---------------------------------------------------------------------------------------------
# (a) + (b): the MPI worker, run as `mpiexec -n P python -m mpi4py round_overhead.py worker ...`
def worker(args: argparse.Namespace) -> None:
    import numpy as np
    from mpi4py import MPI

    from byzmpi.comm import World
    from byzmpi.layout import Layout
    from byzmpi.plan import Sampler

    TELEMETRY = args.telemetry  # the runner's slots per row, from the driver (this worker imports no torch)

    comm = MPI.COMM_WORLD
    world = World(comm)
    rank, size = comm.Get_rank(), comm.Get_size()
    n, c = size - 1, sampled_per_round(size)
    layout = Layout(n, size)
    sampler = Sampler(seed=SEED, n=n, per_round=c, full_round=c, p=0.0, byzantine_ids=np.zeros(0, np.int64))
    world_group = comm.Get_group()
    schedule = json.loads(args.schedule)
    out = {"mpi_library": MPI.Get_library_version().strip("\x00").strip().splitlines()[0], "sizes": {}}

    for d_text, (rounds, warmup) in schedule.items():
        d = int(d_text)
        plans = [sampler.plan(k) for k in range(rounds)]
        members = [layout.members(p.sampled) for p in plans]
        rows = [layout.rows_per_member(p.sampled) for p in plans]
        down = np.zeros(d, np.float32)
        send = np.full((1, d), rank, np.float32)  # one client per host: one row
        send_padded = np.full((1, d + TELEMETRY), rank, np.float32)  # the runner's row: payload + telemetry
        recv_raw = np.zeros((size, d), np.float32) if rank == 0 else None
        recv_rows = np.zeros((c, d + TELEMETRY), np.float32) if rank == 0 else None
        times = {"raw": [], "comm": [], "checked": []}

        def raw(k: int) -> float:
            t0 = time.perf_counter()
            group = world_group.Incl(members[k])
            sub = comm.Create_group(group, TAG_RAW + k % TAG_RAW)
            group.Free()
            sub.Bcast(down, root=0)
            if rank == 0:
                sub.Gather(MPI.IN_PLACE, recv_raw[: len(members[k])], root=0)
            else:
                sub.Gather(send[0], None, root=0)
            sub.Free()
            return time.perf_counter() - t0

        def via_comm(k: int) -> float:
            t0 = time.perf_counter()
            with world.round_comm(members[k], k) as rc:
                rc.bcast(down)
                rc.gather_rows(None if rank == 0 else send_padded, recv_rows if rank == 0 else None, rows[k])
            return time.perf_counter() - t0

        recv_checked = np.zeros((c, d + TELEMETRY), np.float32) if rank == 0 else None
        bad = [np.zeros(0, bool)]

        def checked(k: int) -> float:
            t0 = time.perf_counter()
            with world.round_comm(members[k], k) as rc:
                rc.bcast(down)
                if rank == 0:
                    bad[0] = rc.gather_checked(recv_checked, rows[k])
                else:
                    rc.send_checked(send_padded)
            return time.perf_counter() - t0

        comm.Barrier()
        kinds = (("raw", raw), ("comm", via_comm), ("checked", checked))
        for k in range(rounds):
            if rank not in members[k]:
                continue
            if rank == 0:
                down[0] = k
            order = kinds[k % 3 :] + kinds[: k % 3]  # each kind first, second and third in turn
            for name, fn in order:
                elapsed = fn(k)
                if rank == 0:
                    times[name].append(elapsed)
            # correctness, outside the timed region
            assert down[0] == k, (rank, k, down[0])
            if rank == 0:
                hosts = np.asarray(members[k][1:], np.float32)
                assert np.array_equal(recv_raw[1 : len(members[k]), 0], hosts), (k, "raw")
                assert np.array_equal(recv_rows[:, 0], hosts), (k, "comm")
                assert np.array_equal(recv_checked[:, 0], hosts) and not bad[0].any(), (k, "checked")
        comm.Barrier()
        if rank == 0:
            out["sizes"][d_text] = {name: [1e3 * t for t in ts[warmup:]] for name, ts in times.items()}
    if rank == 0:
        Path(args.out).write_text(json.dumps(out))


# ---------------------------------------------------------------------------------------------
# the driver
def run_mpi(n: int, argv: list[str], *, timeout: float, cwd: Path, env: dict[str, str]) -> tuple[int | None, str, str]:
    """``mpiexec -n N python -m mpi4py ARGV`` through byzmpi's launch helper (the venv's launcher,
    a new session, the whole session killed at the timeout)."""
    res = run_session(mpiexec_command(n, argv), timeout=timeout, cwd=cwd, env=env)
    return res.returncode, res.stdout, res.stderr


def summarise(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    q = lambda p: s[min(len(s) - 1, int(p * len(s)))]  # noqa: E731
    return {
        "median": statistics.median(s),
        "mean": statistics.fmean(s),
        "p10": q(0.1),
        "p90": q(0.9),
        "min": s[0],
        "n": len(s),
    }


CONFIG = """
[run]
name = "{name}"
seed = {seed}
rounds = {rounds}
eval_every = {eval_every}
trace = "{trace}"
progress = "none"
plugins = ["{plugin}"]
receive = "{receive}"

[clients]
n = {n}
byzantine = 0
per_round = {c}

[task]
name = "synthetic"
features = {features}
samples = {n}
test_fraction = 0.0
regularizer = "none"
batch_size = 0

[method]
name = "bench_echo"
stamps_key = "{key}"

[aggregator]
name = "mean"

[attack]
name = "none"
"""

RECEIVES = ("gatherv", "checked")
SPLIT = ("t_setup", "t_stage", "t_compute", "t_stage_hosts", "t_comm", "t_aggregate", "t_io", "t_eval", "t_round")


def full_runs(ranks: int, schedule: dict[int, tuple[int, int]], tmp: Path, env: dict[str, str], timeout: float) -> dict:
    import h5py
    import numpy as np

    n, c = ranks - 1, sampled_per_round(ranks)
    configs = []
    # per d: the default Gatherv receive (c), then the checked receive (c') right after it
    runs = [(d, receive) for d in schedule for receive in RECEIVES]
    for d, receive in runs:
        name = f"full_P{ranks}_d{d}_{receive}"
        path = tmp / f"{name}.toml"
        path.write_text(
            textwrap.dedent(
                CONFIG.format(
                    name=name,
                    seed=SEED,
                    rounds=schedule[d][0],
                    eval_every=10 * schedule[d][0],
                    trace=tmp / f"{name}.h5",
                    plugin=PLUGIN,
                    receive=receive,
                    key=f"{d}:{receive}",
                    n=n,
                    c=c,
                    features=d - 1,
                )
            )
        )
        configs.append(str(path))
    stamps_path = tmp / f"stamps_P{ranks}.json"
    run_env = {**env, "BYZMPI_BENCH_STAMPS": str(stamps_path), "BYZMPI_CACHE": str(tmp / "cache")}
    t0 = time.monotonic()
    rc, out, err = run_mpi(ranks, ["-m", "byzmpi", "run", *configs, "--json"], timeout=timeout, cwd=tmp, env=run_env)
    launch = time.monotonic() - t0
    if rc != 0:
        raise RuntimeError(f"byzmpi run on {ranks} ranks failed (rc={rc}):\n{err[-3000:]}")
    stamps = json.loads(stamps_path.read_text())
    summaries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    result: dict = {"launch_seconds": launch, "sizes": {receive: {} for receive in RECEIVES}}
    assert len(summaries) == len(runs), (len(summaries), len(runs))
    for (d, receive), summary in zip(runs, summaries):
        rounds, warmup = schedule[d]
        with h5py.File(tmp / f"full_P{ranks}_d{d}_{receive}.h5", "r") as f:
            rows = f["rounds"][warmup:]
            versions = json.loads(f.attrs["versions"])
            status = f.attrs["status"]
            assert len(f["rounds"]) == rounds and status == "finished", (d, len(f["rounds"]), status)
            assert np.all(f["rounds"]["sampled"] == c)
            assert json.loads(f.attrs["config"])["run"]["receive"] == receive
        period = np.diff(np.asarray(stamps[f"{d}:{receive}"]))[warmup:]  # downlink k -> downlink k+1
        result["sizes"][receive][str(d)] = {
            "period_ms": summarise((1e3 * period).tolist()),
            "trace_t_round_ms": summarise((1e3 * rows["t_round"].astype(float)).tolist()),
            "trace_split_ms_mean": {k: 1e3 * float(rows[k].astype(float).mean()) for k in SPLIT},
            "trace_split_ms_median": {k: 1e3 * float(np.median(rows[k].astype(float))) for k in SPLIT},
            # t_round minus the parts: what no column of the split covers (the round communicator's
            # Free, the counters and the trace row after t_io)
            "trace_unattributed_ms_mean": 1e3
            * float(rows["t_round"].astype(float).mean() - sum(rows[k].astype(float).mean() for k in SPLIT[:-1])),
            "bytes_up_per_round": int(rows["bytes_up"][0]),
            "bytes_down_per_round": int(rows["bytes_down"][0]),
            "run_wall_seconds": summary["wall_seconds"],
            "rounds": rounds,
            "warmup": warmup,
        }
    result["versions"] = versions
    return result


def driver(args: argparse.Namespace) -> int:
    import mpi4py
    import numpy as np
    import torch

    from byzmpi.runner.server import TELEMETRY

    table = QUICK if args.quick else ROUNDS
    sizes = [int(float(s)) for s in args.sizes] if args.sizes else list(SIZES)
    schedule = {d: table.get(d, (100, 10)) for d in sizes}
    env = dict(os.environ)
    for key, value in MPI_ENV.items():
        env.setdefault(key, value)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t_start = time.monotonic()
    report = {
        "benchmark": "round_overhead",
        "description": "per-round ms on rank 0: (a) bare mpi4py Create_group+Bcast+Gather+Free, (b) the same "
        "through byzmpi.comm, (c) a full byzmpi round (bench_echo plugin method, mean, trace on); (b') and (c'): "
        "(b) and (c) with the checked receive path (run.receive = checked: per-member Mprobe + Get_count + "
        "Message.Recv instead of Gatherv), ratios checked/Gatherv",
        "setup": {
            "clients": "n = P - 1, one per host rank",
            "sampled_per_round": "C = P - 2",
            "dtype": "float32",
            "seed": SEED,
            "rounds_and_warmup": {str(d): list(schedule[d]) for d in sizes},
            "statistic": "median over the rounds after warm-up (mean, p10, p90 also given)",
            "full_round_time": "period between consecutive downlinks on rank 0 (plugin timestamps)",
        },
        "machine": machine_info(),
        "versions": {"numpy": np.__version__, "torch": torch.__version__, "mpi4py": mpi4py.__version__},
        "started": started,
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="byzmpi-bench-") as tmp_text:
        tmp = Path(tmp_text)
        for ranks in args.ranks:
            c = sampled_per_round(ranks)
            print(f"[bench] P = {ranks} ranks, n = {ranks - 1} clients, C = {c} sampled per round", flush=True)
            raw_out = tmp / f"raw_P{ranks}.json"
            t0 = time.monotonic()
            rc, _, err = run_mpi(
                ranks,
                [
                    str(Path(__file__).resolve()),
                    "worker",
                    "--out",
                    str(raw_out),
                    "--schedule",
                    json.dumps({str(d): schedule[d] for d in sizes}),
                    "--telemetry",
                    str(TELEMETRY),
                ],
                timeout=args.timeout,
                cwd=tmp,
                env=env,
            )
            if rc != 0:
                print(f"[bench] raw/comm worker failed (rc={rc}):\n{err[-3000:]}", file=sys.stderr)
                return 1
            comm_launch = time.monotonic() - t0
            raw = json.loads(raw_out.read_text())
            report.setdefault("mpi_library", raw["mpi_library"])
            full = full_runs(ranks, schedule, tmp, env, args.timeout)
            report["versions"].update(full.pop("versions"))
            for d in sizes:
                a = summarise(raw["sizes"][str(d)]["raw"])
                b = summarise(raw["sizes"][str(d)]["comm"])
                bc = summarise(raw["sizes"][str(d)]["checked"])
                f = full["sizes"]["gatherv"][str(d)]
                fc = full["sizes"]["checked"][str(d)]
                row = {
                    "ranks": ranks,
                    "clients": ranks - 1,
                    "sampled": c,
                    "d": d,
                    "bytes_per_round": {"down": c * d * 4, "up": c * d * 4},
                    "raw_ms": a,
                    "comm_ms": b,
                    "full_ms": f["period_ms"],
                    "ratio_comm_over_raw": b["median"] / a["median"],
                    "ratio_full_over_raw": f["period_ms"]["median"] / a["median"],
                    "full_trace_t_round_ms": f["trace_t_round_ms"],
                    # what the runner does per round outside the trace's t_round (between-round
                    # collectives, progress, plan of the next round), median period - median t_round
                    "full_outside_t_round_ms": f["period_ms"]["median"] - f["trace_t_round_ms"]["median"],
                    "full_trace_split_ms_mean": f["trace_split_ms_mean"],
                    "full_trace_split_ms_median": f["trace_split_ms_median"],
                    "full_trace_unattributed_ms_mean": f["trace_unattributed_ms_mean"],
                    "full_run_wall_seconds": f["run_wall_seconds"],
                    # the checked receive path (run.receive = "checked") next to the default Gatherv
                    "checked_ms": bc,
                    "ratio_checked_over_comm": bc["median"] / b["median"],
                    "full_checked_ms": fc["period_ms"],
                    "ratio_full_checked_over_full": fc["period_ms"]["median"] / f["period_ms"]["median"],
                    "full_checked_trace_t_round_ms": fc["trace_t_round_ms"],
                    "full_checked_trace_split_ms_mean": fc["trace_split_ms_mean"],
                    "full_checked_trace_split_ms_median": fc["trace_split_ms_median"],
                    "full_checked_run_wall_seconds": fc["run_wall_seconds"],
                }
                report["results"].append(row)
                split = f["trace_split_ms_mean"]
                print(
                    f"[bench] P={ranks} d={d:>8}: raw {a['median']:8.3f} ms  comm {b['median']:8.3f} ms "
                    f"({row['ratio_comm_over_raw']:.2f}x)  full {f['period_ms']['median']:8.3f} ms "
                    f"({row['ratio_full_over_raw']:.2f}x)  | trace t_round {f['trace_t_round_ms']['median']:.3f}: "
                    + ", ".join(f"{k[2:]} {v:.3f}" for k, v in split.items() if k != "t_round")
                    + f", unattributed {f['trace_unattributed_ms_mean']:.3f} (means)",
                    flush=True,
                )
                print(
                    f"[bench] P={ranks} d={d:>8}: checked receive: comm {bc['median']:8.3f} ms "
                    f"({row['ratio_checked_over_comm']:.2f}x Gatherv)  full {fc['period_ms']['median']:8.3f} ms "
                    f"({row['ratio_full_checked_over_full']:.2f}x Gatherv)  | trace t_comm "
                    f"{fc['trace_split_ms_median']['t_comm']:.3f} vs {f['trace_split_ms_median']['t_comm']:.3f} "
                    "(medians)",
                    flush=True,
                )
            report.setdefault("launch_seconds", {})[str(ranks)] = {
                "raw_and_comm": comm_launch,
                "full": full["launch_seconds"],
            }
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["total_seconds"] = time.monotonic() - t_start
    if args.quick and args.out is None:
        print(json.dumps(report, indent=1)[:2000])
        return 0
    out = Path(args.out) if args.out else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"[bench] wrote {out} in {report['total_seconds']:.0f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode")
    w = sub.add_parser("worker", help="(internal) the MPI side of (a) and (b)")
    w.add_argument("--out", required=True)
    w.add_argument("--schedule", required=True, help="JSON {d: [rounds, warmup]}")
    w.add_argument("--telemetry", type=int, required=True, help="float32 slots after each row (the runner's)")
    p.add_argument("--ranks", type=int, nargs="+", default=list(RANKS))
    p.add_argument("--sizes", nargs="+", default=None, help="floats per message (default 1e3 1e5 1e6)")
    p.add_argument("--quick", action="store_true", help="few rounds; print instead of saving unless --out")
    p.add_argument("--out", default=None, help=f"result JSON (default {RESULTS.relative_to(ROOT)})")
    p.add_argument("--timeout", type=float, default=240.0, help="seconds per mpiexec launch")
    args = p.parse_args(argv)
    if args.mode == "worker":
        worker(args)
        return 0
    return driver(args)


if __name__ == "__main__":
    raise SystemExit(main())
