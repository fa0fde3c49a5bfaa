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
from ..client_columns import ClientRows, layout
from ..methods.step_info import finite_vector
from ..progress import Progress
from ..statefile import packed_size, unpack_into
from ..trace import EVAL_DTYPE, MESSAGE_DTYPE, ROUND_DTYPE, TIME_SPLIT, TraceWriter
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


#: float32 slots after each payload row of the round's gather, written by the row's host: its
#: compute seconds, its staging seconds, and 1.0 when it staged its buffers through host memory
#: (0.0 when not). They travel in the same Gatherv as the payload (no second collective) and are
#: not counted in bytes_up, which counts the payload.
TELEMETRY = 3


def round_row(record: RoundRecord, values: dict[str, Any]) -> tuple[Any, ...]:
    """The trace's ``rounds`` row as a tuple in :data:`ROUND_DTYPE` order: timings, bytes down,
    staging and the skip reason from ``values``, everything else from the record's field of the
    same name (the by-name definition :func:`round_tuple` must equal; tests compare the two)."""
    return tuple(values[name] if name in values else getattr(record, name) for name in ROUND_DTYPE.names or ())


def round_tuple(record: RoundRecord, v: dict[str, Any]) -> tuple[Any, ...]:
    """:func:`round_row`, spelled out (a few µs cheaper per round)."""
    r = record
    return (
        r.round,
        r.full,
        r.sampled,
        r.byzantine,
        r.rejected,
        v["skipped"],
        r.aggregate_norm,
        r.honest_mean_norm,
        r.dist_honest_mean,
        r.update_norm,
        r.clip_radius,
        r.clipped,
        r.bytes_up,
        v["bytes_down"],
        v["t_setup"],
        v["t_compute"],
        v["t_comm"],
        v["t_aggregate"],
        v["t_io"],
        v["t_eval"],
        v["t_round"],
        v["t_wall"],
        v["t_stage"],
        v["t_stage_hosts"],
        v["staged_d2h"],
        v["staged_h2d"],
    )


def fill_message_rows(out: np.ndarray, record: RoundRecord) -> None:
    """The trace's ``messages`` rows of a round, written into ``out`` from the record's ``message_*`` arrays."""
    out["round"] = record.round
    out["client"] = record.message_client
    out["byzantine"] = record.message_byzantine
    out["rejected"] = record.message_rejected
    out["norm"] = record.message_norm
    out["dist_honest_mean"] = record.message_dist_honest_mean
    out["weight"] = record.message_weight
    out["clipped"] = record.message_clipped
    out["bytes"] = record.message_bytes


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


def host_times(compute: np.ndarray, stage: np.ndarray, waited: float) -> tuple[float, float, int]:
    """(compute, staging) seconds of the slowest host, the one whose compute + staging is
    largest, and how many reports were refused. A report is two floats a host sent: a pair with
    a value not finite or negative, or whose sum is longer than the server waited, is not a time
    and is ignored (counted). Without staging (stage all 0) this is :func:`compute_seconds`."""
    c = np.asarray(compute, dtype=np.float64)
    st = np.asarray(stage, dtype=np.float64)
    if c.size == 0:
        return 0.0, 0.0, 0
    if np.isfinite(c).all() and np.isfinite(st).all():  # the usual case: no float can make the sum NaN
        total = c + st
        ok = (c >= 0.0) & (st >= 0.0) & (total <= waited)
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            total = c + st
            ok = np.isfinite(total) & (c >= 0.0) & (st >= 0.0) & (total <= waited)
    if not ok.any():
        return 0.0, 0.0, int(c.size)
    i = int(np.flatnonzero(ok)[np.argmax(total[ok])])
    return float(c[i]), float(st[i]), int(c.size - np.count_nonzero(ok))


def staged_bytes(
    *, server: bool, downlink: int, gathered: int, host_flags: np.ndarray, host_rows: np.ndarray, stride: int
) -> tuple[int, int]:
    """(device → host, host → device) bytes a round copies between device and pinned host memory
    for MPI. The server, when it stages (``server``): its downlink of ``downlink`` floats out, the
    ``gathered`` floats of the round's gather in. Each member host whose report says it staged
    (``host_flags`` 1.0): the downlink in, its ``host_rows`` rows of ``stride`` floats (payload and
    telemetry) out. Float32 slots, 4 bytes each; (0, 0) when nobody stages (the CPU, CUDA-aware MPI)."""
    d2h = downlink if server else 0
    h2d = gathered if server else 0
    staged = np.asarray(host_flags) == 1.0
    h2d += int(np.count_nonzero(staged)) * downlink
    d2h += int(np.asarray(host_rows, dtype=np.int64)[staged].sum()) * stride
    return d2h * BYTES_PER_FLOAT, h2d * BYTES_PER_FLOAT


def round_members(layout: Any, sampled: np.ndarray) -> tuple[list[int], list[int]]:
    """(``layout.members(sampled)``, ``layout.rows_per_member(sampled)``) from one ``np.unique``."""
    ranks, counts = np.unique(layout.host[sampled], return_counts=True)
    return [0, *ranks.tolist()], [0, *counts.tolist()]


@dataclass
class _RoundSetup:
    """What the server knows of a round before it starts: its plan, members, rows per member and
    each member's first row (where its telemetry is read)."""

    plan: Any
    members: list[int]
    rows: list[int]
    first_rows: np.ndarray
    host_rows: np.ndarray  # rows[1:]


class Server:
    """Rank 0: broadcasts, gathers, runs the pure step, traces, checkpoints."""

    def __init__(self, s: Run, world: Any) -> None:
        self.s, self.world = s, world
        cfg, method = s.cfg, s.method
        self.server = new_server_state(s)
        if s.resume is not None:
            self.server.method, self.server.pipeline.state = load_server(s.resume.path, self.server.method)
        # MPI buffers: on the device when the library takes device memory, else pinned host memory,
        # with device twins that the method writes and the step reads (the staging copies are timed)
        where = s.device if s.device_buffers else torch.device("cpu")
        self.staged = s.device.type == "cuda" and not s.device_buffers
        pin = self.staged
        self.down = torch.zeros(method.downlink_len, dtype=torch.float32, device=where, pin_memory=pin)
        self.down_dev = torch.zeros_like(self.down, device=s.device) if self.staged else self.down
        slots = max(cfg.clients.per_round, cfg.clients.full_round) * (method.codec.max_wire_len + TELEMETRY)
        self.recv = torch.zeros(slots, dtype=torch.float32, device=where, pin_memory=pin)
        self.recv_dev = torch.zeros_like(self.recv, device=s.device) if self.staged else self.recv
        self._setups: dict[int, _RoundSetup] = {}
        self._recv_np = self.recv.numpy() if self.recv.device.type == "cpu" else None
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
        templates = [method.init_client(c) for c in range(cfg.clients.n)]
        self.client_sizes = [packed_size(t) for t in templates]
        layouts = {layout(t) for t in templates}
        #: the clients' common state layout: checkpoints store their states as columns
        self.client_layout = next(iter(layouts)) if len(layouts) == 1 else None
        del templates
        self.totals = dict.fromkeys(TIME_SPLIT, 0.0)
        self.bytes_up = self.bytes_down = self.rejected = 0
        self.staged_bytes = {"d2h": 0, "h2d": 0}
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
    def _setup(self, k: int) -> _RoundSetup:
        """Round k's plan and members (computed ahead, while the hosts compute round k − 1)."""
        ready = self._setups.pop(k, None)
        if ready is not None:
            return ready
        plan = self.s.sampler.plan(k)
        members, rows = round_members(self.s.layout, plan.sampled)
        return _RoundSetup(
            plan, members, rows, np.cumsum([0, *rows[1:-1]], dtype=np.int64), np.asarray(rows[1:], dtype=np.int64)
        )

    def _prepare(self, k: int) -> None:
        if k < self.s.cfg.run.rounds and k not in self._setups:
            self._setups = {k: self._setup(k)}

    def _telemetry(self, m: int, stride: int, width: int, first_rows: np.ndarray) -> np.ndarray:
        """The TELEMETRY slots of the given rows of the round's gather, float64 (members, TELEMETRY)."""
        if self._recv_np is not None:
            block = self._recv_np[: m * stride].reshape(m, stride)
            return block[first_rows, width:].astype(np.float64)
        block_t = self.recv[: m * stride].view(m, stride)
        return block_t[torch.from_numpy(first_rows).to(block_t.device), width:].cpu().numpy().astype(np.float64)

    def _sync(self) -> None:
        if self.staged:
            torch.cuda.synchronize(self.s.device)

    def round(self, k: int) -> None:
        s, cfg = self.s, self.s.cfg
        t_start = time.perf_counter()
        rs = self._setup(k)
        plan = rs.plan
        s.method.downlink(self.state, plan, self.down_dev)
        t_stage = 0.0
        if self.staged:  # the downlink, device -> pinned host buffer
            t = time.perf_counter()
            self.down.copy_(self.down_dev)
            self._sync()
            t_stage = time.perf_counter() - t
        width = s.method.codec.wire_len(plan)
        stride = width + TELEMETRY
        padded = self.recv[: plan.m * stride].view(plan.m, stride)
        bad_length = None
        with self.world.round_comm(rs.members, k) as rc:
            t0 = time.perf_counter()
            t_setup = t0 - t_start - t_stage
            rc.bcast(self.down)
            self._prepare(k + 1)  # while the hosts compute: inside the wait, not on its path
            if s.checked:
                bad_length = rc.gather_checked(padded, rs.rows)
            else:
                rc.gather_rows(None, padded, rs.rows)
            t_wait = time.perf_counter() - t0
        tele = self._telemetry(plan.m, stride, width, rs.first_rows)  # one report per member host
        if bad_length is not None:  # a message of the wrong length carried no report
            tele = tele[~bad_length[rs.first_rows]]
        h_compute, h_stage, bad_reports = host_times(tele[:, 0], tele[:, 1], t_wait)
        wire = padded[:, :width]
        if self.staged:  # the gathered rows, pinned host buffer -> device
            t = time.perf_counter()
            dev = self.recv_dev[: plan.m * stride].view(plan.m, stride)
            dev.copy_(padded, non_blocking=True)
            self._sync()
            t_stage += time.perf_counter() - t
            wire = dev[:, :width]
        staged_d2h = staged_h2d = 0
        if self.staged or tele[:, 2].any():
            host_rows = rs.host_rows if bad_length is None else rs.host_rows[~bad_length[rs.first_rows]]
            staged_d2h, staged_h2d = staged_bytes(
                server=self.staged,
                downlink=self.down.numel(),
                gathered=padded.numel(),
                host_flags=tele[:, 2],
                host_rows=host_rows,
                stride=stride,
            )

        t1 = time.perf_counter()
        record = step(s, self.server, plan, wire, messages=self.trace.with_messages, bad_length=bad_length)
        t_agg = time.perf_counter() - t1

        t_eval = self.evaluate(k + 1) if (k + 1) % cfg.run.eval_every == 0 or k + 1 == cfg.run.rounds else 0.0
        if t_eval:
            self.progress.update(k + 1, self._status())

        t2 = time.perf_counter()
        bytes_down = (len(rs.members) - 1) * s.method.downlink_len * BYTES_PER_FLOAT
        out = self.trace.reserve_messages(plan.m)
        if out is not None:
            fill_message_rows(out, record)
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
        t_comm = max(t_wait - h_compute - h_stage, 0.0)
        t_end = time.perf_counter()
        values = {
            "t_setup": t_setup,
            "t_compute": h_compute,
            "t_comm": t_comm,
            "t_aggregate": t_agg,
            "t_io": t_io,
            "t_eval": t_eval,
            "t_stage": t_stage,
            "t_stage_hosts": h_stage,
            "skipped": skipped,
            "bytes_down": bytes_down,
            "t_round": t_end - t_start,
            "t_wall": t_end - self.t0,
            "staged_d2h": staged_d2h,
            "staged_h2d": staged_h2d,
        }
        self.trace.append_round(round_tuple(record, values))
        totals = self.totals
        for key in TIME_SPLIT:
            totals[key] += values[key]
        self.bytes_up += record.bytes_up
        self.bytes_down += bytes_down
        self.staged_bytes["d2h"] += staged_d2h
        self.staged_bytes["h2d"] += staged_h2d
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
        order = [int(c) for r in range(self.world.size) for c in s.layout.clients_of(r)]
        clients: dict[int, Any] | ClientRows
        if self.client_layout is not None:
            clients = ClientRows.from_packed(np.asarray(order, dtype=np.int64), self.client_layout, raw)
        else:
            clients, offset = {}, 0
            for c in order:
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
                "staged_bytes": self.staged_bytes,
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
