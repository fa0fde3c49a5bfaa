"""Many logical clients on few ranks: n = 10,000 clients on 16 ranks, C of them sampled per round.

What it measures (issue 12 item 5), in one ``byzmpi run`` job of several configs:

* **start-up**: from the launch of ``mpiexec`` to the start of the first round, split into
  (i) launch → every rank has imported torch and byzmpi, initialised MPI and parsed its configs
  (the plugin's import time on each rank), (ii) → the setup of the first run is done on every rank
  (the runner's ``run 1 of K`` line, printed by rank 0 after every rank's setup agreed),
  (iii) → round 0 starts on rank 0 (the server's state, trace creation and the evaluation at
  round 0). The time of (iii) is anchored at the end of the run: rank 0's ``--json`` summary line
  arrives ``wall_seconds`` after the rounds' clock started, and round 0 starts ``t_wall[0] −
  t_round[0]`` after that clock started (both from the trace). Lines are time-stamped by this
  driver as they arrive (rank 0 prints with ``flush=True``). The setup of each later run of the job
  is the time from the previous run's summary line to its own start line.
* **memory per rank**: ``VmHWM`` (peak resident set) of every rank, read from ``/proc/self/status``
  at exit by the benchmark plugin ``many_clients_plugin.py`` (loaded through ``run.plugins``),
  next to ``VmRSS`` at the plugin's import (torch and byzmpi imported, no data yet). The peak is
  over the whole job (every run of it builds the same task).
* **per-round time** for C ∈ {4, 8, 16, 32, 64}, each in ``--reps`` runs (default 3: passes over
  the C values in alternating order, pooled): from each run's trace, the round-to-round period
  on rank 0 (differences of ``t_wall``, which also cover the runner's work between rounds) and the
  trace's ``t_round`` with its split (``t_setup``, ``t_compute``, ``t_comm``, ``t_aggregate``,
  ``t_io``; docs/trace.md), after a warm-up and without the last round (which evaluates).
  A least-squares line of per-round time against C (slope, intercept, R²); the claim "linear in C"
  is stated as holding when R² ≥ 0.95.

Setup. Data: the synthetic generator as one pool (``heterogeneity = 0``: every sample from the
same distribution, d = 20 features + bias, logistic regression with an l2 term), 400,000 samples
(10% held out), split over the n clients by a Dirichlet(α = 3) partition of the two labels (label
skew). a9a has only 32,561 rows (3 per client); the generator's own ``natural`` partition would
give every client the same number of samples and no label skew. α = 3 because a Dirichlet(α) cut
of S samples into n shards leaves a client empty with probability about (1/μ)^(2α)·c for μ =
S/(2n) samples per class and client: at α = 1 about 25 of the 10⁴ clients get nothing (the
partition redraws, and fails after 100 draws), at α = 3 fewer than 0.01. Byzantine: 10% (1,000
clients), ALIE, omniscient (the server builds the attack). Rule: coordinate-wise trimmed mean with
f = max(1, ⌊C/8⌋) (valid at every C: m = C > 2f). Methods: robust SGD with client momentum 0.9
(a d-float momentum per client, kept by the rank hosting it), all C; and RoSDHB at C = 64 (its
server keeps one momentum per client, an (n, d) tensor on rank 0 only: n·d·4 bytes = 0.84 MB
here, too small to see in the peak; the JSON states it). Batch 32, trace with the per-message
table (the defaults), evaluation only at round 0 and after the last round.

16 ranks on this machine's 2 cores is oversubscribed 8×: the per-round times are dominated by the
operating system's scheduling of 16 processes (rank 0 waits for hosts that wait for a core), and
the JSON says so. Open MPI settings as in docs/environment.md (``byzmpi.launch``).

Run:  .venv/bin/python benchmarks/many_clients.py           (about 2-4 minutes on 2 cores)
      .venv/bin/python benchmarks/many_clients.py --quick   (n = 1,000 on 4 ranks, prints, saves nothing)
Writes benchmarks/results/many_clients.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from byzmpi.launch import kill_session, mpi_env, mpiexec_command

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PLUGIN = HERE / "many_clients_plugin.py"
RESULTS = HERE / "results" / "many_clients.json"

SIZES = (4, 8, 16, 32, 64)
SEED = 1
FEATURES = 20
SPLIT = ("t_setup", "t_compute", "t_comm", "t_aggregate", "t_io", "t_eval", "t_round")
LINEAR_R2 = 0.95  # the stated criterion for "per-round time linear in C"

FULL = {
    "clients": 10_000,
    "ranks": 16,
    "samples": 400_000,
    "rounds": 250,
    "warmup": 30,
    "rosdhb_rounds": 200,
    "reps": 3,
}
QUICK = {"clients": 1_000, "ranks": 4, "samples": 40_000, "rounds": 40, "warmup": 5, "rosdhb_rounds": 40, "reps": 2}

CONFIG = """
[run]
name = "{name}"
seed = {seed}
rounds = {rounds}
eval_every = {rounds}
trace = "{trace}"
progress = "none"
plugins = ["{plugin}"]

[clients]
n = {n}
byzantine = {byzantine}
per_round = {c}

[task]
name = "synthetic"
features = {features}
samples = {samples}
heterogeneity = 0.0
test_fraction = 0.1
partition = "dirichlet"
alpha = 3.0
batch_size = 32
lam = 0.01

[method]
{method}

[aggregator]
name = "trimmed_mean"
f = {f}

[attack]
name = "alie"
"""

METHODS = {
    "sgd": 'name = "sgd"\nlr = 0.5\nmomentum = 0.9',
    "rosdhb": 'name = "rosdhb"\nlr = 0.5\nbeta = 0.9',
}


def rule_f(c: int) -> int:
    """Byzantine inputs the trimmed mean tolerates at C sampled: about 1.25× the expected 0.1·C."""
    return max(1, c // 8)


def run_names(sizes: list[int], reps: int) -> list[tuple[str, str, int]]:
    """(run name, method, C) in job order: SGD at the largest C first (its start-up is the job's),
    then SGD at the other C in increasing order; ``reps`` such passes, every other one in the
    reverse order (so a drift of the machine's load over the job hits small and large C alike);
    then RoSDHB at the largest C."""
    top = max(sizes)
    first = [("sgd", top)] + [("sgd", c) for c in sorted(sizes) if c != top]
    order = [(m, c, r) for r in range(1, reps + 1) for m, c in (first if r % 2 else first[::-1])]
    order.append(("rosdhb", top, 1))
    return [(f"{m}_C{c}_{r}", m, c) for m, c, r in order]


def write_configs(tmp: Path, p: dict, sizes: list[int]) -> list[tuple[str, str, int, Path]]:
    out = []
    for name, method, c in run_names(sizes, p["reps"]):
        path = tmp / f"{name}.toml"
        rounds = p["rounds"] if method == "sgd" else p["rosdhb_rounds"]
        path.write_text(
            textwrap.dedent(
                CONFIG.format(
                    name=name,
                    seed=SEED,
                    rounds=rounds,
                    trace=tmp / f"{name}.h5",
                    plugin=PLUGIN,
                    n=p["clients"],
                    byzantine=p["clients"] // 10,
                    c=c,
                    features=FEATURES,
                    samples=p["samples"],
                    method=METHODS[method],
                    f=rule_f(c),
                )
            )
        )
        out.append((name, method, c, path))
    return out


# ---------------------------------------------------------------------------------------------
def launch(ranks: int, argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> dict:
    """``mpiexec -n RANKS python -m mpi4py ARGV`` through byzmpi's launch helpers (the venv's
    launcher, the Open MPI defaults, a new session killed whole at the timeout), with every output
    line time-stamped (``time.time()``) as it arrives."""
    cmd = mpiexec_command(ranks, argv)
    lines: list[tuple[float, str]] = []
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t_launch = time.time()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        cwd=cwd,
        env=mpi_env(env),
        start_new_session=True,
    )

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.time(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        rc: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(proc)
        rc = None
    except BaseException:
        kill_session(proc)
        raise
    reader.join(timeout=10)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the job's processes, all waited for by now
    cpu = {"user": cpu1.ru_utime - cpu0.ru_utime, "system": cpu1.ru_stime - cpu0.ru_stime}
    return {"rc": rc, "lines": lines, "t_launch": t_launch, "t_end": time.time(), "cpu_seconds": cpu}


def summarise(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    q = lambda p: s[min(len(s) - 1, int(p * len(s)))]  # noqa: E731
    return {"median": statistics.median(s), "mean": statistics.fmean(s), "p10": q(0.1), "p90": q(0.9), "n": len(s)}


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float | bool]:
    """Least-squares y = a + b·x: slope b, intercept a, R² = 1 − SS_res/SS_tot, the largest
    residual relative to y."""
    import numpy as np

    x, y = np.asarray(xs, float), np.asarray(ys, float)
    b, a = np.polyfit(x, y, 1)
    fit = a + b * x
    ss_res, ss_tot = float(((y - fit) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    return {
        "slope_ms_per_client": float(b),
        "intercept_ms": float(a),
        "r2": r2,
        "max_relative_residual": float(np.max(np.abs(y - fit) / y)),
        "linear": bool(r2 >= LINEAR_R2),
    }


def read_trace(path: Path, warmup: int) -> dict:
    import h5py
    import numpy as np

    with h5py.File(path, "r", locking=False) as f:
        rows = f["rounds"][:]
        status = str(f.attrs["status"])
        dim = int(f.attrs["dim"])
        world = int(f.attrs["world_size"])
        n_clients = int(f.attrs["n_clients"])
        started = str(f.attrs["started"])
        wall = float(f.attrs["wall_seconds"])
        versions = json.loads(f.attrs["versions"])
        n_messages = len(f["messages"]) if "messages" in f else 0
    assert status == "finished", (path, status)
    body = rows[warmup:-1]  # after the warm-up, without the last round (it evaluates)
    period = np.diff(rows["t_wall"].astype(float))[warmup - 1 : -1]  # t_wall[k] - t_wall[k-1], k = warmup..R-2
    hosts = rows["bytes_down"][warmup:-1].astype(float) / (4 * dim)
    return {
        "raw": {"period": period, "body": body, "hosts": hosts},
        "rows": len(rows),
        "dim": dim,
        "world_size": world,
        "n_clients": n_clients,
        "trace_started": started,
        "wall_seconds": wall,
        "versions": versions,
        "messages_rows": n_messages,
        "first_round_offset_s": float(rows["t_wall"][0] - rows["t_round"][0]),
        "period_ms": summarise((1e3 * period).tolist()),
        "t_round_ms": summarise((1e3 * body["t_round"].astype(float)).tolist()),
        "split_ms_mean": {k: 1e3 * float(body[k].astype(float).mean()) for k in SPLIT},
        "split_ms_median": {k: 1e3 * float(np.median(body[k].astype(float))) for k in SPLIT},
        "unattributed_ms_mean": 1e3
        * float(body["t_round"].astype(float).mean() - sum(body[k].astype(float).mean() for k in SPLIT[:-1])),
        "hosts_per_round_mean": float(hosts.mean()),
        "sampled_per_round": int(rows["sampled"][0]),
        "byzantine_sampled_mean": float(rows["byzantine"][warmup:-1].astype(float).mean()),
        "skipped_rounds": int((rows["skipped"] != 0).sum()),
    }


def pooled(traces: list[dict]) -> dict:
    """The statistics of one (method, C) over its runs' rounds pooled, and each run's median period."""
    import numpy as np

    period = np.concatenate([t["raw"]["period"] for t in traces])
    body = np.concatenate([t["raw"]["body"] for t in traces])
    hosts = np.concatenate([t["raw"]["hosts"] for t in traces])
    return {
        "period_ms": summarise((1e3 * period).tolist()),
        "period_ms_median_per_run": [float(1e3 * np.median(t["raw"]["period"])) for t in traces],
        "t_round_ms": summarise((1e3 * body["t_round"].astype(float)).tolist()),
        "split_ms_mean": {k: 1e3 * float(body[k].astype(float).mean()) for k in SPLIT},
        "split_ms_median": {k: 1e3 * float(np.median(body[k].astype(float))) for k in SPLIT},
        "unattributed_ms_mean": 1e3
        * float(body["t_round"].astype(float).mean() - sum(body[k].astype(float).mean() for k in SPLIT[:-1])),
        "hosts_per_round_mean": float(hosts.mean()),
        "byzantine_sampled_mean": float(body["byzantine"].astype(float).mean()),
        "skipped_rounds": int(sum(t["skipped_rounds"] for t in traces)),
        "rounds_pooled": int(len(body)),
        "runs": len(traces),
    }


def two_term_fit(cs: list[float], hosts: list[float], ys: list[float]) -> dict[str, float]:
    """Least-squares y = a + b·H + c·C with H the mean number of host ranks in a round: the
    collectives and the scheduling of oversubscribed ranks cost per member host, the gradients
    and the server's per-message work per sampled client. R² as in :func:`linear_fit`."""
    import numpy as np

    A = np.column_stack([np.ones(len(cs)), hosts, cs])
    y = np.asarray(ys, float)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    fit = A @ coef
    ss_res, ss_tot = float(((y - fit) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    return {
        "intercept_ms": float(coef[0]),
        "ms_per_host": float(coef[1]),
        "ms_per_client": float(coef[2]),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
    }


def rank_records(folder: Path, ranks: int) -> list[dict]:
    records = []
    for r in range(ranks):
        path = folder / f"rank{r}.json"
        if not path.exists():
            raise RuntimeError(f"rank {r} wrote no memory record ({path}); was the plugin loaded?")
        records.append(json.loads(path.read_text()))
    return records


def memory_report(records: list[dict]) -> dict:
    mib = lambda kib: kib / 1024.0  # noqa: E731
    hwm = [mib(r["exit"]["VmHWM"]) for r in records]
    base = [mib(r["import"]["VmRSS"]) for r in records]
    hosts = hwm[1:]
    return {
        "per_rank_peak_mib": hwm,
        "per_rank_rss_at_import_mib": base,
        "per_rank_rss_at_exit_mib": [mib(r["exit"]["VmRSS"]) for r in records],
        "server_peak_mib": hwm[0],
        "host_peak_mib": {"min": min(hosts), "median": statistics.median(hosts), "max": max(hosts)},
        "peak_minus_import_mib": {
            "server": hwm[0] - base[0],
            "host_median": statistics.median(h - b for h, b in zip(hosts, base[1:])),
        },
        "sum_of_peaks_mib": sum(hwm),
    }


def startup_report(job: dict, records: list[dict], runs: list[dict]) -> dict:
    """Start-up of the job and setup of each run from the time-stamped output lines (see the
    module docstring)."""
    t0 = job["t_launch"]
    imports = [r["import"]["time"] - t0 for r in records]
    first = runs[0]
    start_line = first["t_start_line"] - t0
    rounds_clock = first["t_summary_line"] - first["trace"]["wall_seconds"] - t0  # end-anchored
    first_round = rounds_clock + first["trace"]["first_round_offset_s"]
    per_run_setup = [first["t_start_line"] - t0 - max(imports)] + [
        runs[j]["t_start_line"] - runs[j - 1]["t_summary_line"] for j in range(1, len(runs))
    ]
    return {
        "launch_to_first_round_s": first_round,
        "launch_to_all_ranks_imported_s": max(imports),
        "launch_to_first_rank_imported_s": min(imports),
        "imported_to_setup_done_s": start_line - max(imports),
        "setup_done_to_first_round_s": first_round - start_line,
        "of_which_eval_at_round_0_and_clock_start_s": first["trace"]["first_round_offset_s"],
        "setup_seconds_per_run": {r["name"]: s for r, s in zip(runs, per_run_setup)},
        "job_wall_s": job["t_end"] - t0,
        "job_cpu_seconds": job["cpu_seconds"],
    }


def driver(args: argparse.Namespace) -> int:
    import mpi4py
    import numpy as np
    import torch
    from round_overhead import machine_info

    p = dict(QUICK if args.quick else FULL)
    for key in ("clients", "ranks", "samples", "rounds", "warmup", "reps"):
        if getattr(args, key) is not None:
            p[key] = getattr(args, key)
    sizes = sorted(args.sizes)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report: dict = {
        "benchmark": "many_clients",
        "description": "n logical clients on P ranks (block layout), C sampled per round: start-up (launch to the "
        "first round), peak memory per rank (VmHWM), per-round time and its split for C in "
        f"{sizes}, and a least-squares line of per-round time against C",
        "setup": {
            "clients": p["clients"],
            "ranks": p["ranks"],
            "clients_per_host_rank": p["clients"] / (p["ranks"] - 1),
            "oversubscribed": f"{p['ranks']} ranks on {os.cpu_count()} cores",
            "data": f"synthetic pool, {p['samples']} samples (10% test), {FEATURES} features + bias, heterogeneity 0, "
            "partition dirichlet alpha = 3 over the two labels",
            "model": "logistic regression, l2 lam = 0.01 (f* solved once by L-BFGS on rank 0 during the first run's "
            "setup, cached on disk for the later runs)",
            "byzantine": f"{p['clients'] // 10} (10%), ALIE, omniscient",
            "aggregator": "trimmed_mean, f = max(1, C // 8)",
            "methods": {
                "sgd": "lr 0.5, client momentum 0.9: per-client state d floats on the hosting rank",
                "rosdhb": "lr 0.5, beta 0.9, identity compressor: per-client momentum on rank 0, an (n, d) float32 "
                "tensor",
            },
            "batch_size": 32,
            "rounds": {"sgd": p["rounds"], "rosdhb": p["rosdhb_rounds"], "warmup": p["warmup"]},
            "runs_per_sgd_C": p["reps"],
            "run_order": [name for name, _, _ in run_names(sizes, p["reps"])],
            "statistic": "per C: the median round-to-round period on rank 0 (diff of the trace's t_wall) over the "
            "rounds after warm-up, without the last (evaluating) round, pooled over the C's runs (each run's own "
            "median is listed too); the split as means of the trace columns",
            "linear_criterion": f"R^2 >= {LINEAR_R2} of a least-squares line through the per-C medians",
            "seed": SEED,
        },
        "machine": machine_info(),
        "versions": {"numpy": np.__version__, "torch": torch.__version__, "mpi4py": mpi4py.__version__},
        "started": started,
    }
    with tempfile.TemporaryDirectory(prefix="byzmpi-many-") as tmp_text:
        tmp = Path(tmp_text)
        rank_dir = tmp / "ranks"
        rank_dir.mkdir()
        configs = write_configs(tmp, p, sizes)
        run_env = {**env, "BYZMPI_BENCH_RANKS": str(rank_dir), "BYZMPI_CACHE": str(tmp / "cache")}
        print(
            f"[bench] n = {p['clients']} clients on {p['ranks']} ranks, {len(configs)} runs in one job: "
            + ", ".join(name for name, *_ in configs),
            flush=True,
        )
        job = launch(
            p["ranks"],
            ["-m", "byzmpi", "run", *[str(c[3]) for c in configs], "--json"],
            env=run_env,
            cwd=tmp,
            timeout=args.timeout,
        )
        if job["rc"] != 0:
            tail = "\n".join(text for _, text in job["lines"][-40:])
            print(f"[bench] byzmpi run failed (rc={job['rc']}):\n{tail}", file=sys.stderr)
            return 1
        starts = [(t, text) for t, text in job["lines"] if re.match(r"\[byzmpi\] run \d+ of \d+", text)]
        summaries = [(t, json.loads(text)) for t, text in job["lines"] if text.startswith("{")]
        assert len(starts) == len(summaries) == len(configs), (len(starts), len(summaries), len(configs))
        runs = []
        for (name, method, c, _), (t_start, text), (t_sum, summary) in zip(configs, starts, summaries):
            assert text.endswith(name), (text, name)
            assert summary["trace"].endswith(f"{name}.h5"), (summary["trace"], name)
            trace = read_trace(tmp / f"{name}.h5", p["warmup"])
            assert trace["sampled_per_round"] == c and trace["world_size"] == p["ranks"]
            assert trace["n_clients"] == p["clients"]
            runs.append(
                {
                    "name": name,
                    "method": method,
                    "C": c,
                    "f": rule_f(c),
                    "t_start_line": t_start,
                    "t_summary_line": t_sum,
                    "final_eval": summary["final"],
                    "trace": trace,
                }
            )
        records = rank_records(rank_dir, p["ranks"])
    report["versions"].update(runs[0]["trace"]["versions"])
    report["startup"] = startup_report(job, records, runs)
    report["memory"] = memory_report(records)
    d = runs[0]["trace"]["dim"]
    report["memory"]["rosdhb_server_momenta_mib"] = p["clients"] * d * 4 / 2**20
    report["memory"]["sgd_client_momenta_per_host_mib"] = p["clients"] / (p["ranks"] - 1) * d * 4 / 2**20
    report["memory"]["dataset_floats_per_rank_mib"] = p["samples"] * (FEATURES + 1) * 4 / 2**20
    table = []
    for method, c in sorted({(r["method"], r["C"]) for r in runs}):
        mine = [r for r in runs if (r["method"], r["C"]) == (method, c)]
        table.append(
            {
                "method": method,
                "C": c,
                "f": rule_f(c),
                **pooled([r["trace"] for r in mine]),
                "rounds_per_run": mine[0]["trace"]["rows"],
                "run_wall_seconds": [r["trace"]["wall_seconds"] for r in mine],
                "final_eval": [r["final_eval"] for r in mine],
            }
        )
    report["rounds"] = table
    sgd = [row for row in table if row["method"] == "sgd"]
    cs = [row["C"] for row in sgd]
    hosts = [row["hosts_per_round_mean"] for row in sgd]
    report["fit"] = {
        "x": "C (clients sampled per round)",
        "period_median": linear_fit(cs, [row["period_ms"]["median"] for row in sgd]),
        "period_mean": linear_fit(cs, [row["period_ms"]["mean"] for row in sgd]),
        "t_round_mean": linear_fit(cs, [row["t_round_ms"]["mean"] for row in sgd]),
        "split_mean": {k: linear_fit(cs, [row["split_ms_mean"][k] for row in sgd]) for k in SPLIT[:-2]},
        "period_median_hosts_and_clients": two_term_fit(cs, hosts, [row["period_ms"]["median"] for row in sgd]),
        "period_median_every_run": linear_fit(
            [row["C"] for row in sgd for _ in row["period_ms_median_per_run"]],
            [v for row in sgd for v in row["period_ms_median_per_run"]],
        ),
    }
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report["machine"]["load_average_at_end"] = os.getloadavg()
    print_report(report)
    if args.quick and args.out is None:
        return 0
    out = Path(args.out) if args.out else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"[bench] wrote {out}", flush=True)
    return 0


def print_report(report: dict) -> None:
    s, m = report["startup"], report["memory"]
    print(
        f"[bench] start-up {s['launch_to_first_round_s']:.1f} s (all ranks imported {s['launch_to_all_ranks_imported_s']:.1f}"
        f" s, setup {s['imported_to_setup_done_s']:.1f} s, to round 0 {s['setup_done_to_first_round_s']:.2f} s)",
        flush=True,
    )
    print(
        f"[bench] peak memory: server {m['server_peak_mib']:.0f} MiB, hosts {m['host_peak_mib']['median']:.0f} MiB "
        f"(min {m['host_peak_mib']['min']:.0f}, max {m['host_peak_mib']['max']:.0f}); import RSS "
        f"{statistics.median(m['per_rank_rss_at_import_mib']):.0f} MiB",
        flush=True,
    )
    for row in report["rounds"]:
        sp = row["split_ms_mean"]
        print(
            f"[bench] {row['method']:>6} C={row['C']:>3}: period {row['period_ms']['median']:7.2f} ms, t_round mean "
            f"{row['t_round_ms']['mean']:7.2f} (runs: "
            + ", ".join(f"{v:.2f}" for v in row["period_ms_median_per_run"])
            + ") | "
            + ", ".join(f"{k[2:]} {sp[k]:.2f}" for k in SPLIT[:-2])
            + f" | hosts/round {row['hosts_per_round_mean']:.1f}",
            flush=True,
        )
    fit = report["fit"]["period_median"]
    print(
        f"[bench] fit period = {fit['intercept_ms']:.2f} + {fit['slope_ms_per_client']:.3f}·C ms, R² = {fit['r2']:.3f}"
        f" ({'linear' if fit['linear'] else 'NOT linear'} by R² >= {LINEAR_R2})",
        flush=True,
    )
    every = report["fit"]["period_median_every_run"]
    print(
        f"[bench] fit through every run's median: {every['intercept_ms']:.2f} + {every['slope_ms_per_client']:.3f}·C ms,"
        f" R² = {every['r2']:.3f}",
        flush=True,
    )
    two = report["fit"]["period_median_hosts_and_clients"]
    print(
        f"[bench] fit period = {two['intercept_ms']:.2f} + {two['ms_per_host']:.3f}·H + {two['ms_per_client']:.3f}·C ms"
        f" (H = host ranks in the round), R² = {two['r2']:.3f}; job CPU {s['job_cpu_seconds']}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="n = 1,000 on 4 ranks, few rounds; prints unless --out")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="C values (default 4 8 16 32 64)")
    p.add_argument("--clients", type=int, default=None)
    p.add_argument("--ranks", type=int, default=None)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None, help="rounds per SGD run")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--reps", type=int, default=None, help="runs per SGD C value (default 3)")
    p.add_argument("--out", default=None, help=f"result JSON (default {RESULTS.relative_to(ROOT)})")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole job")
    return driver(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
