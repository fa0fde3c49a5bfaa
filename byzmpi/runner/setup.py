"""The one place a config becomes a :class:`Run`: what every rank builds before round 0,
identically and without communicating — the client layout, the round sampler, the task, the
compressor and the method, the aggregator pipeline, the threat model, the server dtype, the
Byzantine mask, and the checkpoint to resume from (if any). The server and the hosts take the
Run only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..aggregators import Pipeline
from ..assembly import (
    ThreatModel,
    build_pipeline,
    build_sampler,
    byzantine_mask,
    checked_receive,
    server_dtype,
    threat_model,
)
from ..checkpoint import Header, check_trace, read_header, verify_checkpoint
from ..compressors import COMPRESSORS, build_compressor
from ..devices import choose_device, make_deterministic
from ..errors import ConfigError, SetupError
from ..layout import Layout
from ..methods import METHODS, Method
from ..paths import output_path_problem
from ..plan import Sampler
from ..schema import Config
from ..tasks import Task, build_task
from ..tasks.optimum import optimum


def check_world(cfg: Config, size: int) -> None:
    """Refuse, before any collective, a world that cannot run the config."""
    if size < 2:
        raise SetupError(
            f"needs at least 2 MPI ranks (rank 0 is the server), got {size}: launch with "
            "`mpiexec -n P python -m mpi4py -m byzmpi run CONFIG` or `byzmpi run -n P CONFIG`"
        )


@dataclass
class Run:
    """Everything a rank needs for the rounds, built identically on every rank."""

    cfg: Config
    layout: Layout
    sampler: Sampler
    task: Task
    method: Method
    f: int  # Byzantine inputs the aggregator tolerates (aggregator.f)
    x0: torch.Tensor
    pipeline: Pipeline  # the configured aggregator (its state is the server's)
    threat: ThreatModel
    dtype: torch.dtype  # server model and aggregation dtype
    byzantine: np.ndarray  # bool per client id
    checked: bool  # the server receives by the checked path (run.receive)
    device: torch.device = torch.device("cpu")  # where this rank computes (run.device)
    mpi_cuda: bool | None = None  # the MPI library's answer to MPIX_Query_cuda_support (None: no such query)
    device_buffers: bool = False  # device tensors go to MPI as they are (CUDA-aware); else staged on the host
    resume: Header | None = None  # the checkpoint this run continues from

    @property
    def start_round(self) -> int:
        return self.resume.rounds_done if self.resume is not None else 0


def find_resume(cfg: Config) -> Header | None:
    """The checkpoint to continue from, per ``checkpoint.resume``; refuses another config's."""
    mode = cfg.checkpoint.resume
    if mode == "never":
        return None
    header = read_header(cfg.checkpoint_path)
    if header is None:
        if mode == "require":
            raise SetupError(f"checkpoint.resume: no checkpoint at {cfg.checkpoint_path} to resume from")
        return None
    if header.fingerprint != cfg.fingerprint():
        raise SetupError(
            f"checkpoint {cfg.checkpoint_path} was written by a different config (fingerprint {header.fingerprint} "
            f"vs {cfg.fingerprint()}): refusing to resume; delete it, change checkpoint.path, or run with --fresh"
        )
    if header.rounds_done > cfg.run.rounds:  # also under "auto": never restart over a longer run's trace
        raise SetupError(
            f"checkpoint {cfg.checkpoint_path} is at round {header.rounds_done}, beyond run.rounds = {cfg.run.rounds}; "
            "raise run.rounds to continue it, or run with --fresh to start again"
        )
    if mode == "auto" and header.rounds_done == cfg.run.rounds:
        return None  # a finished run: start again from scratch
    if not cfg.trace_path.exists():
        raise SetupError(
            f"checkpoint {cfg.checkpoint_path} exists but its trace {cfg.trace_path} is missing; "
            "run with --fresh to start again"
        )
    check_trace(header, cfg.trace_path)
    return header


def choose_devices(cfg: Config) -> tuple[torch.device, bool | None, bool]:
    """This rank's device (``run.device``), the MPI library's CUDA support, and whether device
    buffers go to MPI directly (``run.cuda_aware``); "yes" on a library that cannot is an error."""
    from ..comm.cuda import cuda_support

    device = choose_device(cfg.run.device)
    make_deterministic(device)
    support = cuda_support()
    if cfg.run.cuda_aware == "yes" and support is not True:
        raise ConfigError(
            "run.cuda_aware",
            "yes, but this MPI library "
            + ("reports no CUDA support (MPIX_Query_cuda_support() = 0)" if support is False else "has no CUDA query")
            + "; use 'auto' or 'no' (device buffers are then staged through pinned host memory)",
        )
    direct = device.type == "cuda" and (cfg.run.cuda_aware == "yes" or (cfg.run.cuda_aware == "auto" and bool(support)))
    return device, support, direct


def check_outputs(cfg: Config) -> None:
    """The trace and checkpoint paths must be writable files (checked before any round)."""
    for field, path in (("run.trace", cfg.trace_path), ("checkpoint.path", cfg.checkpoint_path)):
        problem = output_path_problem(path)
        if problem is not None:
            raise ConfigError(field, f"cannot write {str(path)[:200]!r}: {problem}")


def setup(cfg: Config, world_size: int, rank: int) -> Run:
    """Build the run (may raise ByzmpiError; no collective here)."""
    check_world(cfg, world_size)
    check_outputs(cfg)
    device, mpi_cuda, device_buffers = choose_devices(cfg)
    resume = find_resume(cfg)
    layout = Layout(cfg.clients.n, world_size)
    sampler = build_sampler(cfg)
    task = build_task(cfg).to(device)
    threat = threat_model(cfg)
    if threat.flips_labels:  # label-flipping Byzantine clients get a flipped view of their data
        task.flip_labels_of(cfg.clients.byzantine_ids)
    if rank == 0:
        task.f_star = optimum(task)
    dtype = server_dtype(cfg)
    problem = COMPRESSORS[cfg.compressor.name].check(dict(cfg.compressor.params), task.dim)
    if problem:
        raise ConfigError("compressor", f"{cfg.compressor.name}: {problem} (the model has d = {task.dim})")
    compressor = build_compressor(cfg.compressor.name, task.dim, cfg.run.seed, **cfg.compressor.params)
    method = METHODS[cfg.method.name].build(
        task, seed=cfg.run.seed, dtype=dtype, compressor=compressor, n_clients=cfg.clients.n, **cfg.method.params
    )
    x0 = task.init_params(cfg.task.init, cfg.task.init_scale)
    if resume is not None:  # refuse a bad checkpoint here, with one line, not in the first collective
        hosted = {int(c): method.init_client(int(c)) for c in layout.clients_of(rank)}
        verify_checkpoint(resume.path, method.init_server(x0) if rank == 0 else None, hosted)
    return Run(
        cfg,
        layout,
        sampler,
        task,
        method,
        cfg.aggregator.f,
        x0,
        build_pipeline(cfg),
        threat,
        dtype,
        byzantine_mask(cfg),
        checked_receive(cfg),
        device,
        mpi_cuda,
        device_buffers,
        resume,
    )


Setup = Run  # the name before the Run builder (kept for scripts that import it)
