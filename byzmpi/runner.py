"""The SPMD round loop: the server role on rank 0, the host role on every other rank.

One round k (DESIGN.md):
1. every rank computes the same ``RoundPlan(k)`` (no communication);
2. the members (rank 0 + hosts of sampled clients) build the round communicator;
3. the server broadcasts the method's downlink buffer;
4. each host fills one fixed-length float32 payload per sampled client;
5. ``Gatherv`` brings the rows to the server in sampled-id order;
6. server: omniscient attack fills the Byzantine rows → validation → method update with the
   robust aggregate → trace rows.

The loop knows nothing of any particular method, rule or attack.
"""

from __future__ import annotations

import math
import platform
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import __version__
from .aggregators import Aggregate
from .attacks import ATTACKS, AttackContext, CoalitionStats, LocalContext
from .checkpoint import Header, load_clients, load_server, read_header, write_checkpoint
from .config import Config, build_pipeline, sampler_coin
from .compressors import COMPRESSORS, build_compressor
from .errors import ConfigError, SetupError
from .layout import Layout
from .methods import METHODS, Method, RoundInfo
from .plan import RoundPlan, Sampler
from .progress import Progress
from .signals import STOP
from .statefile import pack, packed_size, unpack_into
from .roundstats import distance, distances_to, honest_mean, row_norms
from .tasks import Task, build_task
from .tasks.optimum import optimum
from .trace import EVAL_DTYPE, MESSAGE_DTYPE, NOT_APPLICABLE, ROUND_DTYPE, TraceWriter
from .validation import ACCEPTED, effective_f, finite_codes

NAN = float("nan")
BYTES_PER_FLOAT = 4


def check_world(cfg: Config, size: int) -> None:
    """Refuse, before any collective, a world that cannot run the config."""
    if size < 2:
        raise SetupError(
            f"needs at least 2 MPI ranks (rank 0 is the server), got {size}: launch with "
            "`mpiexec -n P python -m mpi4py -m byzmpi run CONFIG` or `byzmpi run -n P CONFIG`"
        )


@dataclass
class Setup:
    """Everything a rank needs for the rounds, built identically on every rank."""

    cfg: Config
    layout: Layout
    sampler: Sampler
    task: Task
    method: Method
    f: int
    x0: torch.Tensor
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
    if mode == "auto" and header.rounds_done >= cfg.run.rounds:
        return None  # a finished run: start again from scratch
    if header.rounds_done > cfg.run.rounds:
        raise SetupError(f"checkpoint {cfg.checkpoint_path} is at round {header.rounds_done}, beyond run.rounds = "
                         f"{cfg.run.rounds}")
    if not cfg.trace_path.exists():
        raise SetupError(f"checkpoint {cfg.checkpoint_path} exists but its trace {cfg.trace_path} is missing; "
                         "run with --fresh to start again")
    return header


def setup(cfg: Config, world_size: int, rank: int) -> Setup:
    """Build the task, method and sampler (may raise ByzmpiError; no collective here)."""
    check_world(cfg, world_size)
    resume = find_resume(cfg)
    layout = Layout(cfg.clients.n, world_size)
    p, first_full = sampler_coin(cfg)
    c = cfg.clients
    sampler = Sampler(seed=cfg.run.seed, n=c.n, per_round=c.per_round, full_round=c.full_round, p=p,
                      byzantine_ids=np.asarray(c.byzantine_ids, dtype=np.int64), first_full=first_full)
    task = build_task(cfg)
    if rank == 0:
        task.f_star = optimum(task)
    dtype = torch.float64 if cfg.run.server_dtype == "float64" else torch.float32
    problem = COMPRESSORS[cfg.compressor.name].check(dict(cfg.compressor.params), task.dim)
    if problem:
        raise ConfigError("compressor", f"{cfg.compressor.name}: {problem} (the model has d = {task.dim})")
    compressor = build_compressor(cfg.compressor.name, task.dim, cfg.run.seed, **cfg.compressor.params)
    method = METHODS[cfg.method.name].build(task, seed=cfg.run.seed, dtype=dtype, compressor=compressor,
                                            n_clients=cfg.clients.n, **cfg.method.params)
    return Setup(cfg, layout, sampler, task, method, cfg.aggregator.extra["f"], task.init_params(), resume)


def _versions(world: Any) -> dict[str, str]:
    import h5py
    import mpi4py

    return {"byzmpi": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version,
            "mpi4py": mpi4py.__version__, "mpi": world.library_version()}


def inject_failure(cfg: Config, rank: int, k: int) -> None:
    """Fault injection for tests: ``debug.fail_rank`` raises at the start of ``debug.fail_round``."""
    if cfg.debug.fail_rank == rank and cfg.debug.fail_round == k:
        raise RuntimeError(f"injected failure on rank {rank} at round {k} at {time.time():.3f} (debug.fail_rank)")


# ------------------------------------------------------------------------------------------
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


class Server:
    """Rank 0: broadcasts, gathers, validates, simulates omniscient attacks, aggregates, traces."""

    def __init__(self, s: Setup, world: Any) -> None:
        self.s, self.world = s, world
        cfg, method = s.cfg, s.method
        self.state = method.init_server(s.x0)
        self.pipeline = build_pipeline(cfg)
        if s.resume is not None:
            self.state, self.pipeline.state = load_server(s.resume.path, self.state)
        self.down = torch.zeros(method.downlink_len, dtype=torch.float32)
        self.dtype = torch.float64 if cfg.run.server_dtype == "float64" else torch.float32
        self.recv = torch.zeros(max(cfg.clients.per_round, cfg.clients.full_round) * method.max_wire_len,
                                dtype=torch.float32)
        self.honest_clients = torch.ones(cfg.clients.n, dtype=torch.bool)
        self.honest_clients[list(cfg.byzantine_ids)] = False
        self.attack = ATTACKS[cfg.attack.name]
        self.attack_params = dict(cfg.attack.params)
        self.simulated = (cfg.attack.name != "none" and cfg.clients.byzantine > 0
                          and cfg.attack.extra["threat_model"] == "omniscient")
        attrs = {
            "config": cfg.to_dict(), "config_fingerprint": cfg.fingerprint(), "versions": _versions(world),
            "world_size": world.size, "n_clients": cfg.clients.n, "byzantine_ids": list(cfg.byzantine_ids),
            "method": cfg.method.name, "aggregator": cfg.aggregator.name, "attack": cfg.attack.name,
            "threat_model": cfg.attack.extra["threat_model"], "compressor": cfg.compressor.name, "seed": cfg.run.seed,
            "simulation": self.simulated, "f_star": NAN if s.task.f_star is None else s.task.f_star,
            "dim": s.task.dim, "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "accuracy_split": "test" if s.task.dataset.X_test is not None else "honest training data",
        }
        self.trace = TraceWriter(cfg.trace_path, attrs, s.task.dim, flush_rows=cfg.run.flush_every,
                                 flush_seconds=cfg.run.flush_seconds, messages=cfg.run.trace_messages,
                                 params_dtype="f8" if cfg.run.server_dtype == "float64" else "f4",
                                 resume_rows=None if s.resume is None else s.resume.trace_rows)
        self.client_sizes = [packed_size(method.init_client(c)) for c in range(cfg.clients.n)]
        self.totals = {"t_setup": 0.0, "t_compute": 0.0, "t_comm": 0.0, "t_aggregate": 0.0, "t_io": 0.0,
                       "t_eval": 0.0}
        self.bytes_up = self.bytes_down = self.rejected = 0
        self.last_eval: dict[str, float] = {}

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, done: int) -> float:
        t0 = time.perf_counter()
        ev = self.s.task.evaluate(self.s.method.model(self.state))
        self.last_eval = {"round": done, "loss": ev.loss, "accuracy": ev.accuracy, "gap": ev.gap,
                          "grad_norm_sq": ev.grad_norm_sq}
        self.trace.append("eval", np.array([(done, ev.loss, ev.accuracy, ev.gap, ev.grad_norm_sq)], EVAL_DTYPE))
        return time.perf_counter() - t0

    # -- one round ----------------------------------------------------------------------------
    def _attack(self, rows: torch.Tensor, codes: torch.Tensor, plan: RoundPlan) -> None:
        """Omniscient model: replace the Byzantine rows (decoded, dense) by the attack built from the
        honest rows, restricted to what each Byzantine's payload can carry this round."""
        byz = torch.from_numpy(plan.byzantine)
        honest_ok = ~byz & (codes == ACCEPTED)
        method, byz_clients = self.s.method, plan.sampled[plan.byzantine]

        def restrict(block: torch.Tensor) -> torch.Tensor:
            return torch.stack([method.writable(v, plan, int(c)) for v, c in zip(block.to(rows.dtype), byz_clients)])

        trial, trial_codes = rows.clone(), codes.clone()  # reused by every call of a search
        trial_codes[byz] = ACCEPTED

        def defender(byz_rows: torch.Tensor) -> torch.Tensor:
            trial[byz] = restrict(byz_rows)
            ok = finite_codes(trial, trial_codes) == ACCEPTED
            f_eff = effective_f(self.s.f, int((~ok).sum()))
            return self.pipeline.peek(trial[ok], f=f_eff, round_=plan.round).value

        view = getattr(method, "trajectory", None)
        model, x0, lr = view(self.state, plan) if view is not None else (None, None, None)
        ctx = AttackContext(honest=rows[honest_ok], own=rows[byz], clients=byz_clients, m=plan.m,
                            seed=self.s.cfg.run.seed, round=plan.round, defender=defender, model=model, x0=x0, lr=lr)
        rows[byz] = restrict(self.attack.build(ctx, **self.attack_params))
        codes[byz] = ACCEPTED

    def _receive(self, plan: RoundPlan, wire: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate the payloads, decode the accepted ones (rejected rows stay NaN), run the
        omniscient attack, and validate the decoded rows: (dense rows (m, d), reject code per row)."""
        method = self.s.method
        codes = method.reject_codes(wire, plan).clone()
        rows = torch.full((plan.m, self.s.task.dim), NAN, dtype=self.dtype)
        ok = codes == ACCEPTED
        if bool(ok.any()):
            rows[ok] = method.decode(wire[ok], plan.sampled[ok.numpy()], plan, self.dtype)
        if self.simulated and plan.n_byzantine:
            self._attack(rows, codes, plan)
        return rows, finite_codes(rows, codes)

    def round(self, k: int) -> None:
        s, cfg = self.s, self.s.cfg
        t_start = time.perf_counter()
        plan = s.sampler.plan(k)
        members = s.layout.members(plan.sampled)
        s.method.downlink(self.state, plan, self.down)
        width = s.method.wire_len(plan)
        wire = self.recv[: plan.m * width].view(plan.m, width)
        with self.world.round_comm(members, k) as rc:
            t0 = time.perf_counter()
            t_setup = t0 - t_start
            rc.bcast(self.down)
            rc.gather_rows(None, wire, s.layout.rows_per_member(plan.sampled))
            compute = rc.gather_float64(0.0)
            t_wait = time.perf_counter() - t0
        t_compute = float(compute[1:].max()) if compute is not None and len(compute) > 1 else 0.0

        t1 = time.perf_counter()
        msgs, codes = self._receive(plan, wire)
        accepted = codes == ACCEPTED
        n_rejected = int((~accepted).sum())
        rows = msgs[accepted]
        honest_rows = torch.from_numpy(~plan.byzantine)[accepted]
        f_eff = effective_f(s.f, n_rejected)
        record: dict[str, Any] = {}

        def aggregate(x: torch.Tensor) -> Aggregate:
            out = self.pipeline(x, f=f_eff, round_=k)
            if "value" not in record:
                honest = honest_rows if x.shape[0] == honest_rows.numel() else (
                    self.honest_clients if x.shape[0] == self.honest_clients.numel() else None)
                record.update(value=out.value, weights=out.weights, inputs=x, per_message=honest is honest_rows,
                              centre=None if honest is None else honest_mean(x, honest))
            return out

        if rows.shape[0] == 0:
            info = RoundInfo(skipped=True)
        else:
            info = s.method.server_update(self.state, rows, plan.sampled[accepted.numpy()], plan, aggregate)
        t_agg = time.perf_counter() - t1

        t_eval = self.evaluate(k + 1) if (k + 1) % cfg.run.eval_every == 0 or k + 1 == cfg.run.rounds else 0.0
        if t_eval:
            self.progress.update(k + 1, self._status())

        t2 = time.perf_counter()
        bytes_up = plan.m * width * BYTES_PER_FLOAT
        bytes_down = (len(members) - 1) * s.method.downlink_len * BYTES_PER_FLOAT
        centre = record.get("centre")
        self._trace_messages(k, plan, msgs, codes, accepted, record, info, width)
        self.trace.maybe_flush()
        t_io = time.perf_counter() - t2
        t_round = time.perf_counter() - t_start
        t_comm = max(t_wait - t_compute, 0.0)
        row = (k, plan.full, plan.m, plan.n_byzantine, n_rejected, info.skipped, info.aggregate_norm,
               NAN if centre is None else float(centre.norm()),
               distance(record["value"], centre) if "value" in record else NAN,
               info.update_norm, info.clip_radius, 0 if info.clipped is None else int(info.clipped.sum()),
               bytes_up, bytes_down, t_setup, t_compute, t_comm, t_agg, t_io, t_eval, t_round,
               time.perf_counter() - self.t0)
        self.trace.append("rounds", np.array([row], ROUND_DTYPE))
        for key, value in (("t_setup", t_setup), ("t_compute", t_compute), ("t_comm", t_comm),
                           ("t_aggregate", t_agg), ("t_io", t_io), ("t_eval", t_eval)):
            self.totals[key] += value
        self.bytes_up += bytes_up
        self.bytes_down += bytes_down
        self.rejected += n_rejected
        if not t_eval:
            self.progress.update(k + 1)

    def _trace_messages(self, k: int, plan: RoundPlan, msgs: torch.Tensor, codes: torch.Tensor,
                        accepted: torch.Tensor, record: dict, info: RoundInfo, width: int) -> None:
        if not self.trace.with_messages:
            return
        m = plan.m
        out = np.zeros(m, MESSAGE_DTYPE)
        out["round"] = k
        out["client"] = plan.sampled
        out["byzantine"] = plan.byzantine
        out["rejected"] = codes.numpy()
        out["norm"] = row_norms(msgs).numpy()
        out["bytes"] = width * BYTES_PER_FLOAT
        acc = accepted.numpy()
        dist = np.full(m, np.nan)
        weight = np.full(m, np.nan)
        clipped = np.full(m, NOT_APPLICABLE, dtype=np.uint8)
        if record.get("per_message"):
            dist[acc] = distances_to(record["inputs"], record["centre"]).numpy()
            if record["weights"] is not None and len(record["weights"]) == int(acc.sum()):
                weight[acc] = record["weights"].numpy()
        weight[~acc] = 0.0
        if info.clipped is not None:
            clipped[acc] = info.clipped
        out["dist_honest_mean"] = dist
        out["weight"] = weight
        out["clipped"] = clipped
        self.trace.append("messages", out)

    def _status(self) -> str:
        e = self.last_eval
        bits = [f"loss={e['loss']:.4g}", f"acc={e['accuracy']:.3f}"]
        if math.isfinite(e["gap"]):
            bits.append(f"gap={e['gap']:.3g}")
        return " ".join(bits)

    def start(self) -> None:
        cfg = self.s.cfg
        self.progress = Progress(cfg.run.rounds, mode=cfg.run.progress, every=cfg.run.log_every, name=cfg.run.name,
                                 start=self.s.start_round)
        self.t0 = time.perf_counter()
        if self.s.resume is None:
            self.totals["t_eval"] += self.evaluate(0)
        else:
            print(f"[byzmpi] {cfg.run.name}: resuming at round {self.s.start_round} from {self.s.resume.path}",
                  flush=True)

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
        write_checkpoint(cfg.checkpoint_path, config_json=cfg.to_json(), fingerprint=cfg.fingerprint(),
                         rounds_done=done, trace_rows=self.trace.rows(), complete=complete, server=self.state,
                         aggregator=self.pipeline.state, clients=clients)
        self.checkpoint_seconds = getattr(self, "checkpoint_seconds", 0.0) + time.perf_counter() - t0

    def finish(self, status: str, done: int) -> RunSummary:
        cfg = self.s.cfg
        self.progress.close()
        wall = time.perf_counter() - self.t0
        self.trace.close(status, self.s.method.model(self.state).numpy() if status == "finished" else None, done,
                         {"wall_seconds": wall, "final_eval": self.last_eval,
                          "checkpoint_seconds": getattr(self, "checkpoint_seconds", 0.0)})
        return RunSummary(done - self.s.start_round, wall, str(cfg.trace_path), dict(self.last_eval),
                          dict(self.totals), self.bytes_up, self.bytes_down, self.rejected, {"status": status})


class Host:
    """Ranks 1..P−1: compute the messages of their sampled clients (Byzantine ones included: their
    honest message in the omniscient model, their attack in the local model)."""

    def __init__(self, s: Setup, world: Any) -> None:
        self.s, self.world = s, world
        cfg = s.cfg
        self.clients = s.layout.clients_of(world.rank)
        self.states = {int(c): s.method.init_client(int(c)) for c in self.clients}
        if s.resume is not None:
            self.states = load_clients(s.resume.path, self.states)
        self.down = torch.zeros(s.method.downlink_len, dtype=torch.float32)
        self.send = torch.zeros(max(len(self.clients), 1) * s.method.max_wire_len, dtype=torch.float32)
        self.attack = ATTACKS[cfg.attack.name]
        self.attack_params = dict(cfg.attack.params)
        self.local = cfg.attack.extra["threat_model"] == "local" and cfg.attack.name != "none"
        self.is_byz = np.zeros(cfg.clients.n, dtype=bool)
        self.is_byz[np.asarray(cfg.byzantine_ids, dtype=np.int64)] = True

    def _local_attack(self, plan: RoundPlan, mine: np.ndarray, wire: torch.Tensor) -> None:
        """Local threat model: this host decodes its Byzantine clients' honest payloads, computes
        the attack (with the coalition's statistics when the attack needs them), and re-encodes it."""
        method = self.s.method
        rows = np.flatnonzero(self.is_byz[mine])
        clients = mine[rows]
        own = method.decode(wire[torch.from_numpy(rows)], clients, plan, torch.float32)
        coalition = None
        if self.attack.needs_coalition:
            byz_hosts = np.unique(self.s.layout.host[plan.sampled[plan.byzantine]]).tolist()
            sums = torch.stack([own.double().sum(0), own.double().square().sum(0)])
            self.world.coalition_sum(byz_hosts, sums, plan.round)
            coalition = CoalitionStats.from_sums(plan.n_byzantine, sums[0], sums[1])
        ctx = LocalContext(own=own, clients=clients, coalition=coalition, m=plan.m,
                           n_byzantine=plan.n_byzantine, seed=self.s.cfg.run.seed, round=plan.round)
        attack = self.attack.local(ctx, **self.attack_params)
        for row, client, v in zip(rows.tolist(), clients.tolist(), attack):
            method.encode_writable(v, plan, client, wire[row])

    def round(self, k: int) -> None:
        s = self.s
        plan = s.sampler.plan(k)
        mine = plan.sampled[s.layout.host[plan.sampled] == self.world.rank]
        if mine.size == 0:
            return
        width = s.method.wire_len(plan)
        wire = self.send[: mine.size * width].view(mine.size, width)
        with self.world.round_comm(s.layout.members(plan.sampled), k) as rc:
            rc.bcast(self.down)
            t0 = time.perf_counter()
            for j, client in enumerate(mine.tolist()):
                flip = self.attack.flips_labels and bool(self.is_byz[client])
                s.method.client_message(self.states[client], self.down, plan, client, wire[j], flip=flip)
            if self.local and self.is_byz[mine].any():
                self._local_attack(plan, mine, wire)
            elapsed = time.perf_counter() - t0
            rc.gather_rows(wire, None, s.layout.rows_per_member(plan.sampled))
            rc.gather_float64(elapsed)

    def start(self) -> None:
        pass

    def checkpoint(self, done: int, complete: bool) -> None:
        """Send this host's client states to rank 0 (client-id order)."""
        parts = [pack(self.states[int(c)]) for c in self.clients]
        self.world.gather_bytes(np.concatenate(parts) if parts else np.empty(0, dtype=np.uint8), None)

    def finish(self, status: str, done: int) -> None:
        return None


def run_rounds(s: Setup, world: Any) -> tuple[str, RunSummary | None]:
    """Run the rounds of a prepared setup on this rank.

    Returns the status (``finished`` or ``preempted``: a SIGTERM/SIGUSR1 arrived, every rank
    stopped at the same round boundary after a checkpoint) and, on the server, the summary.
    """
    cfg = s.cfg
    role: Server | Host = Server(s, world) if world.is_server else Host(s, world)
    rounds, every, sync = cfg.run.rounds, cfg.checkpoint.every, cfg.run.sync_every
    keep_checkpoint = every > 0 or s.resume is not None
    status, done = "failed", s.start_round
    stop = STOP.install()
    role.start()
    try:
        for k in range(s.start_round, rounds):
            inject_failure(cfg, world.rank, k)
            role.round(k)
            done = k + 1
            requested = world.any(stop.requested is not None) if done % sync == 0 or done == rounds else False
            if requested or (every and done % every == 0 and done < rounds):
                role.checkpoint(done, complete=False)
                keep_checkpoint = True
            if requested:
                status = "preempted"
                if world.is_server:
                    print(f"[byzmpi] {cfg.run.name}: stop requested, checkpoint at round {done} written to "
                          f"{cfg.checkpoint_path}", flush=True)
                break
        else:
            if keep_checkpoint:
                role.checkpoint(done, complete=True)
            status = "finished"
    finally:
        summary = role.finish(status, done)
    return status, summary
