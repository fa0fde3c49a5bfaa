"""Where a round of a deep model goes: the trace's time split of real ``byzmpi run`` rounds.

Issue 10 asks for the time split of a ResNet-18 round on the CPU (and on a GPU when one is there).
This benchmark writes a CIFAR-10 folder in the distribution's own format (``cifar-10-batches-py``
with pickled ``data_batch_1`` and ``test_batch``; random pixels and labels, so nothing is
downloaded; the loader's restricted unpickler reads it like the real files), runs one batched
``byzmpi run`` job with one config per model, and reports, per model, the medians over the rounds
after the first (warm-up) of every ``t_*`` column of the trace's ``rounds`` table (docs/trace.md:
setup, comm, compute = the slowest host's client compute, aggregate, eval, io, round) with each
column's share of ``t_round``, plus the bytes moved per round.

Setup (per model): n = 5 clients (1 Byzantine, ALIE, omniscient), all sampled every round, momentum
SGD, Krum with f = 1 (a distance rule: one Gram of the 5 messages), batch ``--batch`` per client,
P = ``--ranks`` (server + hosts; the 5 clients are spread over the hosts in blocks, so the slowest
host computes ceil(5 / (P - 1)) client gradients a round). ResNet-18 uses the CIFAR stem with
GroupNorm (``--norm``); LeNet-5 runs on 28×28×1 MNIST-format IDX files written the same way.

Run:  .venv/bin/python benchmarks/round_split.py                 (~3 min on 2 cores)
      .venv/bin/python benchmarks/round_split.py --device cuda   (GPU node; run.device = "cuda")
Writes benchmarks/results/round_split.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import gzip
import json
import pickle
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import finish, machine_info  # noqa: E402

from byzmpi.analysis import read_trace  # noqa: E402
from byzmpi.launch import mpiexec_command, run_session  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "round_split.json"
CLIENTS = 5


def write_cifar(folder: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """A ``cifar-10-batches-py`` folder laid out as distributed (random content)."""
    g = np.random.default_rng(seed)
    out = folder / "cifar-10-batches-py"
    out.mkdir(parents=True)
    for name, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in g.integers(0, 10, n)],
            b"data": g.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        (out / name).write_bytes(pickle.dumps(batch, protocol=2))
    return out


def write_idx(folder: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """MNIST-format IDX files (gzip), random content."""
    g = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        header = np.array([0x0803, n, 28, 28], dtype=">u4").tobytes()  # magic (ubyte, 3 dims), N, H, W
        pixels = g.integers(0, 256, (n, 28, 28), dtype=np.uint8).tobytes()
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + pixels))
        labels = np.array([0x0801, n], dtype=">u4").tobytes() + g.integers(0, 10, n, dtype=np.uint8).tobytes()
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    return folder


def config(name: str, dataset: str, data: Path, model: str, args: argparse.Namespace, trace: Path) -> str:
    norm = f'norm = "{args.norm}"' if model == "resnet18" else ""
    return textwrap.dedent(
        f"""\
        [run]
        name = "{name}"
        seed = 1
        rounds = {args.rounds}
        eval_every = {args.rounds}
        trace = "{trace}"
        device = "{args.device}"
        progress = "none"

        [clients]
        n = {CLIENTS}
        byzantine = 1
        per_round = {CLIENTS}

        [task]
        name = "{dataset}"
        path = "{data}"
        model = "{model}"
        batch_size = {args.batch}
        {norm}

        [method]
        name = "sgd"
        lr = 0.05
        momentum = 0.9

        [aggregator]
        name = "krum"
        f = 1

        [attack]
        name = "alie"
        """
    )


def split(trace: Path) -> dict:
    t = read_trace(trace, messages=False)
    with h5py.File(trace, "r") as f:
        dimension = int(f["final_params"].shape[0])
    rounds = t.rounds.iloc[1:]  # the first round pays one-off costs (allocation, first kernels)
    cols = [c for c in rounds.columns if c.startswith("t_") and c != "t_wall"]
    med = {c: float(statistics.median(rounds[c])) for c in cols}
    total = med.get("t_round", float("nan"))
    return {
        "rounds_measured": len(rounds),
        "median_s": med,
        "share_of_round": {c: med[c] / total for c in cols if c != "t_round"},
        "bytes_up_per_round": float(rounds["bytes_up"].median()),
        "bytes_down_per_round": float(rounds["bytes_down"].median()),
        "dimension": dimension,
        "device": t.attrs.get("device"),
        "mpi_cuda_support": t.attrs.get("mpi_cuda_support"),
        "device_buffers": t.attrs.get("device_buffers"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=3, help="MPI ranks: the server plus the hosts")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16, help="samples per client gradient")
    ap.add_argument("--norm", default="group", choices=("group", "layer", "batch"))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--models", nargs="+", default=["resnet18", "lenet5"], choices=("resnet18", "lenet5"))
    ap.add_argument("--timeout", type=float, default=1200)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="byzmpi-split-") as tmp_name:
        tmp = Path(tmp_name)
        data = {
            "resnet18": ("cifar10", write_cifar(tmp / "cifar", 2000, 256)),
            "lenet5": ("mnist", write_idx(tmp / "mnist", 2000, 256)),
        }
        configs, traces = [], {}
        for model in args.models:
            dataset, folder = data[model]
            traces[model] = tmp / f"{model}.h5"
            path = tmp / f"{model}.toml"
            path.write_text(config(f"split_{model}", dataset, folder, model, args, traces[model]))
            configs.append(str(path))
        cmd = mpiexec_command(args.ranks, ["-m", "byzmpi", "run", *configs])
        res = run_session(cmd, timeout=args.timeout, cwd=tmp)
        if res.returncode != 0:
            sys.stderr.write(res.stdout[-4000:] + res.stderr[-4000:])
            print(f"round_split: byzmpi run exited {res.returncode}", file=sys.stderr)
            return 1
        results = {model: split(traces[model]) for model in args.models}
    out = {
        "benchmark": "round_split",
        "argv": sys.argv[1:] if argv is None else argv,
        "setup": {
            "clients": CLIENTS,
            "byzantine": 1,
            "ranks": args.ranks,
            "batch": args.batch,
            "rounds": args.rounds,
            "norm": args.norm,
            "device": args.device,
            "method": "sgd momentum 0.9",
            "aggregator": "krum f=1",
            "attack": "alie (omniscient)",
            "job_seconds": res.seconds,
        },
        "results": results,
        "machine": finish(info),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for model, r in results.items():
        parts = ", ".join(f"{c[2:]} {v * 1e3:.1f} ms" for c, v in r["median_s"].items())
        print(f"{model} (d = {r['dimension']}): {parts}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
