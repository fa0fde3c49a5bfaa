"""Rank 0: the exchange (broadcast, gather), the pure step (:mod:`.step`), the trace write,
checkpoints."""

from __future__ import annotations

import math
import platform
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..checkpoint import load_server, write_checkpoint
from ..methods.step_info import finite_vector
from ..progress import Progress
from ..statefile import packed_size, unpack_into
from ..trace import EVAL_DTYPE, MESSAGE_DTYPE, ROUND_DTYPE, TraceWriter
from .setup import Run
from .step import BYTES_PER_FLOAT, RoundRecord, new_server_state, step

NAN = float("nan")
#: skipped column: why no step was taken (0: a step was taken)
SKIP_NO_STEP, SKIP_MODEL, SKIP_REFUSED = 1, 2, 3


def _versions(world: Any) -> dict[str, str]:
    import h5py

    return {
        "byzmpi": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        **world.versions(),
    }


@dataclass
class RunSummary:
    rounds: int
    wall_seconds: float
    trace: str
    final: dict[str, float]
    time_split: dict[str, float]
    bytes_up: int
    bytes_down: int
    rejected: int
    extra: dict[str, Any] = field(default_factory=dict)


def round_row(record: RoundRecord, values: dict[str, Any]) -> np.ndarray:
    """The trace's ``rounds`` row: every column filled by name, from ``values`` (timings, bytes
    down, the skip reason) or else from the record's field of the same name."""
    row = np.zeros(1, ROUND_DTYPE)
    for name in ROUND_DTYPE.names or ():
        row[name] = values[name] if name in values else getattr(record, name)
    return row


def message_rows(record: RoundRecord) -> np.ndarray:
    """The trace's ``messages`` rows of a round, filled by name from the record's ``message_*`` arrays."""
    out = np.zeros(len(record.message_client), MESSAGE_DTYPE)
    out["round"] = record.round
    for name in MESSAGE_DTYPE.names or ():
        if name != "round":
            out[name] = getattr(record, f"message_{name}")
    return out


def compute_seconds(reported: np.ndarray | None, waited: float) -> tuple[float, int]:
    """The slowest host's compute time from the hosts' reports, and how many reports were refused:
    a report is a float a host sent, so anything not finite, negative or longer than the server
    waited for the collectives is not a time and is ignored (counted), never let into the trace."""
    if reported is None or len(reported) <= 1:
        return 0.0, 0
    values = np.asarray(reported[1:], dtype=np.float64)
    ok = np.isfinite(values) & (values >= 0.0) & (values <= waited)
    return (float(values[ok].max()) if ok.any() else 0.0), int((~ok).sum())


class Server:
    """Rank 0: broadcasts, gathers, runs the pure step, traces, checkpoints."""

    def __init__(self, s: Run, world: Any) -> None:
        self.s, self.world = s, world
        cfg, method = s.cfg, s.method
        self.server = new_server_state(s)
        if s.resume is not None:
            self.server.method, self.server.pipeline.state = load_server(s.resume.path, self.server.method)
        # MPI buffers: on the device when the library takes device memory, else pinned host memory
        where = s.device if s.device_buffers else torch.device("cpu")
        pin = s.device.type == "cuda" and not s.device_buffers
        self.down = torch.zeros(method.downlink_len, dtype=torch.float32, device=where, pin_memory=pin)
        self.recv = torch.zeros(
            max(cfg.clients.per_round, cfg.clients.full_round) * method.codec.max_wire_len,
            dtype=torch.float32,
            device=where,
            pin_memory=pin,
        )
        attrs = {
            "config": cfg.to_dict(),
            "config_fingerprint": cfg.fingerprint(),
            "versions": _versions(world),
            "world_size": world.size,
            "n_clients": cfg.clients.n,
            "byzantine_ids": list(cfg.byzantine_ids),
            "method": cfg.method.name,
            "aggregator": cfg.aggregator.name,
            "attack": cfg.attack.name,
            "threat_model": s.threat.model,
            "attack_space": s.threat.space,
            "device": str(s.device),
            "mpi_cuda_support": "unknown" if s.mpi_cuda is None else bool(s.mpi_cuda),
            "device_buffers": s.device_buffers,
            "receive": "checked" if s.checked else "gatherv",
            "compressor": cfg.compressor.name,
            "seed": cfg.run.seed,
            "simulation": s.threat.simulated,
            "f_star": NAN if s.task.f_star is None else s.task.f_star,
            "dim": s.task.dim,
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "accuracy_split": "test" if s.task.dataset.X_test is not None else "honest training data",
        }
        self.trace = TraceWriter(
            cfg.trace_path,
            attrs,
            s.task.dim,
            flush_rows=cfg.run.flush_every,
            flush_seconds=cfg.run.flush_seconds,
            messages=cfg.run.trace_messages,
            params_dtype="f8" if s.dtype == torch.float64 else "f4",
            resume_rows=None if s.resume is None else s.resume.trace_rows,
        )
        self.client_sizes = [packed_size(method.init_client(c)) for c in range(cfg.clients.n)]
        self.totals = {"t_setup": 0.0, "t_compute": 0.0, "t_comm": 0.0, "t_aggregate": 0.0, "t_io": 0.0, "t_eval": 0.0}
        self.bytes_up = self.bytes_down = self.rejected = 0
        self.counts = {"model_refused": 0, "rule_refused": 0, "telemetry_refused": 0, "invalid_states": 0}
        self.last_eval: dict[str, float] = {}

    @property
    def state(self) -> Any:
        """The method's server state."""
        return self.server.method

    @property
    def pipeline(self) -> Any:
        return self.server.pipeline

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, done: int) -> float:
        t0 = time.perf_counter()
        ev = self.s.task.evaluate(self.s.method.model(self.state))
        self.last_eval = {
            "round": done,
            "loss": ev.loss,
            "accuracy": ev.accuracy,
            "gap": ev.gap,
            "grad_norm_sq": ev.grad_norm_sq,
        }
        self.trace.append("eval", np.array([(done, ev.loss, ev.accuracy, ev.gap, ev.grad_norm_sq)], EVAL_DTYPE))
        return time.perf_counter() - t0

    # -- one round: exchange, step, trace -------------------------------------------------------
    def round(self, k: int) -> None:
        s, cfg = self.s, self.s.cfg
        t_start = time.perf_counter()
        plan = s.sampler.plan(k)
        members = s.layout.members(plan.sampled)
        s.method.downlink(self.state, plan, self.down)
        width = s.method.codec.wire_len(plan)
        wire = self.recv[: plan.m * width].view(plan.m, width)
        with self.world.round_comm(members, k) as rc:
            t0 = time.perf_counter()
            t_setup = t0 - t_start
            rc.bcast(self.down)
            bad_length = None
            if s.checked:
                bad_length, compute = rc.gather_checked(wire, s.layout.rows_per_member(plan.sampled))
            else:
                rc.gather_rows(None, wire, s.layout.rows_per_member(plan.sampled))
                compute = rc.gather_float64(0.0)
            t_wait = time.perf_counter() - t0
        t_compute, bad_reports = compute_seconds(compute, t_wait)

        t1 = time.perf_counter()
        record = step(s, self.server, plan, wire, messages=self.trace.with_messages, bad_length=bad_length)
        t_agg = time.perf_counter() - t1

        t_eval = self.evaluate(k + 1) if (k + 1) % cfg.run.eval_every == 0 or k + 1 == cfg.run.rounds else 0.0
        if t_eval:
            self.progress.update(k + 1, self._status())

        t2 = time.perf_counter()
        bytes_down = (len(members) - 1) * s.method.downlink_len * BYTES_PER_FLOAT
        if self.trace.with_messages:
            self.trace.append("messages", message_rows(record))
        self.trace.maybe_flush()
        t_io = time.perf_counter() - t2
        skipped = (
            0
            if not record.skipped
            else SKIP_REFUSED
            if record.refused
            else SKIP_MODEL
            if record.model_refused
            else SKIP_NO_STEP
        )
        times = {
            "t_setup": t_setup,
            "t_compute": t_compute,
            "t_comm": max(t_wait - t_compute, 0.0),
            "t_aggregate": t_agg,
            "t_io": t_io,
            "t_eval": t_eval,
        }
        values = {
            **times,
            "skipped": skipped,
            "bytes_down": bytes_down,
            "t_round": time.perf_counter() - t_start,
            "t_wall": time.perf_counter() - self.t0,
        }
        self.trace.append("rounds", round_row(record, values))
        for key, value in times.items():
            self.totals[key] += value
        self.bytes_up += record.bytes_up
        self.bytes_down += bytes_down
        self.rejected += record.rejected
        self.counts["model_refused"] += int(record.model_refused)
        self.counts["rule_refused"] += int(bool(record.refused))
        self.counts["telemetry_refused"] += bad_reports
        self.counts["invalid_states"] += record.invalid_states
        if not t_eval:
            self.progress.update(k + 1)

    def _status(self) -> str:
        e = self.last_eval
        bits = [f"loss={e['loss']:.4g}", f"acc={e['accuracy']:.3f}"]
        if math.isfinite(e["gap"]):
            bits.append(f"gap={e['gap']:.3g}")
        return " ".join(bits)

    def start(self) -> None:
        cfg = self.s.cfg
        self.progress = Progress(
            cfg.run.rounds, mode=cfg.run.progress, every=cfg.run.log_every, name=cfg.run.name, start=self.s.start_round
        )
        self.t0 = time.perf_counter()
        if self.s.resume is None:
            self.totals["t_eval"] += self.evaluate(0)
        else:
            print(
                f"[byzmpi] {cfg.run.name}: resuming at round {self.s.start_round} from {self.s.resume.path}", flush=True
            )

    def checkpoint(self, done: int, complete: bool) -> None:
        """Flush the trace, gather every client's state, write the checkpoint atomically."""
        s, cfg = self.s, self.s.cfg
        t0 = time.perf_counter()
        self.trace.flush()
        counts = [sum(self.client_sizes[c] for c in s.layout.clients_of(r)) for r in range(self.world.size)]
        raw = self.world.gather_bytes(np.empty(0, dtype=np.uint8), counts)
        clients, offset = {}, 0
        for c in range(cfg.clients.n):
            state = s.method.init_client(c)
            unpack_into(state, raw[offset : offset + self.client_sizes[c]])
            offset += self.client_sizes[c]
            clients[c] = state
        write_checkpoint(
            cfg.checkpoint_path,
            config_json=cfg.to_json(),
            fingerprint=cfg.fingerprint(),
            rounds_done=done,
            trace_rows=self.trace.rows(),
            complete=complete,
            server=self.server.method,
            aggregator=self.server.pipeline.state,
            clients=clients,
        )
        self.checkpoint_seconds = getattr(self, "checkpoint_seconds", 0.0) + time.perf_counter() - t0

    def finish(self, status: str, done: int) -> RunSummary:
        cfg = self.s.cfg
        self.progress.close()
        wall = time.perf_counter() - self.t0
        if status == "finished" and not finite_vector(self.s.method.model(self.state)):
            status = "failed"  # a model that is not finite is never a finished run
        self.trace.close(
            status,
            self.s.method.model(self.state).numpy() if status == "finished" else None,
            done,
            {
                "wall_seconds": wall,
                "final_eval": self.last_eval,
                "checkpoint_seconds": getattr(self, "checkpoint_seconds", 0.0),
                "refusals": self.counts,
            },
        )
        return RunSummary(
            done - self.s.start_round,
            wall,
            str(cfg.trace_path),
            dict(self.last_eval),
            dict(self.totals),
            self.bytes_up,
            self.bytes_down,
            self.rejected,
            {"status": status, **self.counts},
        )
