"""Client compute: byzmpi's per-client gradient step against a plain torch training step.

For each model (LightNet and LeNet-5 on 1×28×28 at batch 32, ResNet-18 with the CIFAR stem on
3×32×32 at batch 16, GroupNorm and BatchNorm) and each thread count, on random uint8 images held in
memory as a byzmpi Dataset (N = 2048, random class ids), measured in the same process:

(a) byzmpi   ``Task.gradient(θ, batch)`` through :class:`TorchModel` on the client's ``Batch`` (drawn
             before the timer, as the plain loop's indices are): the gather of the uint8 rows,
             conversion and per-channel normalisation, θ's views bound into the module, autograd to
             one flat gradient, the regulariser (none: skipped).
(a+) byzmpi_draw  the same plus the seeded minibatch draw ``Task.batch(client, round)`` inside the
             timer (a numpy Generator from the (seed, round, purpose, client) stream) -- everything a
             client computes per round.
(b) plain    the textbook loop on an ordinary module holding the same parameters:
             ``model.zero_grad(set_to_none=True)``; x = normalise(X[idx].float()); ``loss =
             cross_entropy(model(x), y)``; ``loss.backward()`` (gradients in ``p.grad``, no flat vector),
             with the same indices and the same normalisation.
(c) flatbuf  the alternative design: the module's parameters and ``.grad`` re-pointed once as views of
             two flat buffers; per step θ is copied into the parameter buffer, the gradient buffer is
             zeroed, forward/backward accumulate into it (returned without a copy: the best case).

(a), (a+), (b), (c) run interleaved step by step (the order rotating every step), so machine noise
hits all alike; each is timed with ``time.perf_counter`` (wall) and ``time.process_time`` (CPU of the
process, all threads) around one step; medians over the steps after a warm-up. The first step's
gradients of (a), (b) and (c) are checked to agree. Ratio = median (a) / median (b) of wall time (the
target: within 1.2×); also given: the same for (a+), the paired ratio (median over steps of (a)/(b)
measured back to back) and the ratio of CPU-time medians, which are steadier on a shared machine.

Run:  .venv/bin/python benchmarks/client_compute.py            (10-20 minutes on 2 shared cores)
      .venv/bin/python benchmarks/client_compute.py --quick    (a smoke run, results not saved)
Writes benchmarks/results/client_compute.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results" / "client_compute.json"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from machine import finish, machine_info  # noqa: E402

from byzmpi.tasks.datasets import Dataset  # noqa: E402
from byzmpi.tasks.deep_models import model_factory  # noqa: E402
from byzmpi.tasks.regularizers import Regularizer  # noqa: E402
from byzmpi.tasks.task import Task  # noqa: E402
from byzmpi.tasks.torch_model import TorchModel  # noqa: E402

N_SAMPLES, N_CLIENTS, TARGET = 2048, 8, 1.2
#: (label, built-in name, options, input shape, batch, (steps, warm-up), quick (steps, warm-up))
CASES = [
    ("lightnet", "lightnet", {}, (1, 28, 28), 32, (600, 40), (30, 5)),
    ("lenet5", "lenet5", {}, (1, 28, 28), 32, (600, 40), (30, 5)),
    ("resnet18-group", "resnet18", {"norm": "group"}, (3, 32, 32), 16, (12, 2), (2, 1)),
    ("resnet18-batch", "resnet18", {"norm": "batch"}, (3, 32, 32), 16, (12, 2), (2, 1)),
]


def make_dataset(shape: tuple[int, ...]) -> Dataset:
    g = np.random.default_rng(0)
    X = torch.from_numpy(g.integers(0, 256, size=(N_SAMPLES, int(np.prod(shape))), dtype=np.uint8))
    y = torch.from_numpy(g.integers(0, 10, size=N_SAMPLES).astype(np.int64))
    C = shape[0]
    return Dataset("random", X, y, 10, input_shape=shape, input_norm=(tuple([127.5] * C), tuple([73.9] * C)))


def make_task(ds: Dataset, batch: int, model: TorchModel) -> Task:
    return Task(
        dataset=ds,
        shards=[np.arange(i, N_SAMPLES, N_CLIENTS) for i in range(N_CLIENTS)],
        model=model,
        regularizer=Regularizer("none", 0.0),
        batch_size=batch,
        seed=1,
        honest_ids=np.arange(N_CLIENTS),
    )


class Plain:
    """(b): an ordinary module with θ's values in its own parameters."""

    def __init__(self, factory, theta: torch.Tensor, norm: tuple, shape: tuple[int, ...]) -> None:
        self.m = factory().train()
        torch.nn.utils.vector_to_parameters(theta, self.m.parameters())
        C = shape[0]
        self.mean = torch.tensor(norm[0], dtype=torch.float32).view(1, C, *([1] * (len(shape) - 1)))
        self.inv = (1.0 / torch.tensor(norm[1], dtype=torch.float32)).view_as(self.mean)
        self.shape = shape

    def step(self, X: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> None:
        self.m.zero_grad(set_to_none=True)
        x = (X[idx].reshape(-1, *self.shape).float() - self.mean).mul_(self.inv)
        F.cross_entropy(self.m(x), y[idx]).backward()

    def flat_grad(self) -> torch.Tensor:
        return torch.cat([p.grad.reshape(-1) for p in self.m.parameters()])


class FlatBuffer(Plain):
    """(c): parameters and gradients as views of two flat buffers, θ copied in per step."""

    def __init__(self, factory, theta: torch.Tensor, norm: tuple, shape: tuple[int, ...]) -> None:
        super().__init__(factory, theta, norm, shape)
        self.flat = torch.empty_like(theta)
        self.gflat = torch.zeros_like(theta)
        offset = 0
        for p in self.m.parameters():
            n = p.numel()
            p.data = self.flat[offset : offset + n].view_as(p)
            p.grad = self.gflat[offset : offset + n].view_as(p)
            offset += n

    def step_theta(self, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        self.flat.copy_(theta)
        self.gflat.zero_()
        x = (X[idx].reshape(-1, *self.shape).float() - self.mean).mul_(self.inv)
        F.cross_entropy(self.m(x), y[idx]).backward()
        return self.gflat


def summarise(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    q = lambda p: v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))]
    return {"median_ms": statistics.median(v) * 1e3, "p10_ms": q(0.1) * 1e3, "p90_ms": q(0.9) * 1e3, "n": len(v)}


def run_case(case: tuple, threads: int, quick: bool) -> dict:
    label, name, opts, shape, batch, full, small = case
    steps, warm = small if quick else full
    torch.set_num_threads(threads)
    factory = model_factory(name, **opts)
    ds = make_dataset(shape)
    model = TorchModel(factory, input_shape=shape, input_norm=ds.input_norm)
    task = make_task(ds, batch, model)
    theta = task.init_params()
    X, y = task.dataset.X, task.dataset.y
    plain = Plain(factory, theta, task.dataset.input_norm, shape)
    flat = FlatBuffer(factory, theta, task.dataset.input_norm, shape)

    # agreement on the first batch
    idx = task.batch(0, 0).samples
    g_a = task.gradient(theta, idx)
    plain.step(X, y, idx)
    g_c = flat.step_theta(theta, X, y, idx).clone()
    g_b = plain.flat_grad()
    err_b = float((g_a - g_b).abs().max() / g_b.abs().max())
    err_c = float((g_a - g_c).abs().max() / g_b.abs().max())
    if err_b > 1e-4 or err_c > 1e-4:
        raise AssertionError(f"{label}: gradients disagree (relative max error {err_b:.2e}, {err_c:.2e})")

    keys = ("byzmpi", "byzmpi_draw", "plain", "flatbuf")
    times: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in keys}
    for step in range(steps + warm):
        client, rnd = step % N_CLIENTS, step + 1
        drawn = task.batch(client, rnd)  # (a), (b), (c) get these indices; (a+) draws them itself
        idx_b = drawn.samples

        def a() -> None:
            task.gradient(theta, drawn)

        def a_draw() -> None:
            task.gradient(theta, task.batch(client, rnd))

        def b() -> None:
            plain.step(X, y, idx_b)

        def c() -> None:
            flat.step_theta(theta, X, y, idx_b)

        order = [("byzmpi", a), ("byzmpi_draw", a_draw), ("plain", b), ("flatbuf", c)]
        k = step % len(order)
        for key, fn in order[k:] + order[:k]:
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if step >= warm:
                times[key].append(dt)
                cpu[key].append(dc)
    out = {
        "model": label,
        "dim": model.dim,
        "input_shape": list(shape),
        "batch": batch,
        "threads": threads,
        "steps": steps,
        "warmup": warm,
        "grad_rel_error_vs_plain": err_b,
        **{k: summarise(v) for k, v in times.items()},
    }
    out["cpu"] = {k: summarise(v) for k, v in cpu.items()}
    out["ratio_byzmpi_over_plain"] = out["byzmpi"]["median_ms"] / out["plain"]["median_ms"]
    out["ratio_byzmpi_draw_over_plain"] = out["byzmpi_draw"]["median_ms"] / out["plain"]["median_ms"]
    out["ratio_flatbuf_over_plain"] = out["flatbuf"]["median_ms"] / out["plain"]["median_ms"]
    # paired: the median over steps of (a)/(b) measured back to back, robust to slow load drifts
    out["paired_ratio_byzmpi_over_plain"] = statistics.median(a / b for a, b in zip(times["byzmpi"], times["plain"]))
    out["cpu_ratio_byzmpi_over_plain"] = out["cpu"]["byzmpi"]["median_ms"] / out["cpu"]["plain"]["median_ms"]
    out["meets_target"] = out["ratio_byzmpi_over_plain"] <= TARGET
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few steps, print only")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    ap.add_argument("--models", default=",".join(c[0] for c in CASES), help="comma-separated subset of the models")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    wanted = args.models.split(",")
    unknown = set(wanted) - {c[0] for c in CASES}
    if unknown:
        ap.error(f"unknown models: {', '.join(sorted(unknown))}")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    info = machine_info(watch=("byzmpi/tasks",))
    results = []
    for threads in (int(t) for t in args.threads.split(",")):
        for case in CASES:
            if case[0] not in wanted:
                continue
            r = run_case(case, threads, args.quick)
            results.append(r)
            print(
                f"{r['model']:>15} d={r['dim']:>9,} B={r['batch']:>2} threads={threads}: byzmpi "
                f"{r['byzmpi']['median_ms']:9.2f} ms  plain {r['plain']['median_ms']:9.2f} ms  flatbuf "
                f"{r['flatbuf']['median_ms']:9.2f} ms  ratio {r['ratio_byzmpi_over_plain']:.3f} (with draw "
                f"{r['ratio_byzmpi_draw_over_plain']:.3f}, paired "
                f"{r['paired_ratio_byzmpi_over_plain']:.3f}, cpu {r['cpu_ratio_byzmpi_over_plain']:.3f})",
                flush=True,
            )
    finish(info)
    doc = {
        "benchmark": "client_compute",
        "description": "ms per client gradient step: (a) byzmpi Task.gradient through TorchModel on a drawn batch, "
        "(a+) the same including the seeded batch draw, (b) a plain torch "
        "zero_grad/forward/backward step on the same model, batch and indices, (c) parameters re-pointed into a "
        "flat buffer; interleaved in one process",
        "setup": {
            "samples": N_SAMPLES,
            "clients": N_CLIENTS,
            "data": "random uint8 images in memory, per-channel normalisation in the step",
            "regularizer": "none",
            "statistic": "median over the steps after warm-up (p10, p90 also given); wall time, and process CPU "
            "time under 'cpu'",
            "target": f"byzmpi / plain <= {TARGET}",
        },
        "machine": info,
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": results,
        "all_meet_target": all(r["meets_target"] for r in results),
    }
    if args.quick:
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
