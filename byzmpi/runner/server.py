"""Rank 0: broadcasts, gathers, validates, simulates omniscient attacks, aggregates, traces,
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
from ..aggregators import Aggregate
from ..attacks import ATTACKS, AttackContext
from ..checkpoint import load_server, write_checkpoint
from ..config import build_pipeline
from ..methods import RoundInfo
from ..plan import RoundPlan
from ..progress import Progress
from ..roundstats import distance, distances_to, honest_mean, row_norms
from ..statefile import packed_size, unpack_into
from ..trace import EVAL_DTYPE, MESSAGE_DTYPE, NOT_APPLICABLE, ROUND_DTYPE, TraceWriter
from ..validation import ACCEPTED, effective_f, finite_codes
from .setup import Setup

NAN = float("nan")
BYTES_PER_FLOAT = 4


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
        self.recv = torch.zeros(
            max(cfg.clients.per_round, cfg.clients.full_round) * method.max_wire_len, dtype=torch.float32
        )
        self.rows = torch.empty(max(cfg.clients.per_round, cfg.clients.full_round), s.task.dim, dtype=self.dtype)
        self.honest_clients = torch.ones(cfg.clients.n, dtype=torch.bool)
        self.honest_clients[list(cfg.byzantine_ids)] = False
        self.attack = ATTACKS[cfg.attack.name]
        self.attack_params = dict(cfg.attack.params)
        self.simulated = (
            cfg.attack.name != "none" and cfg.clients.byzantine > 0 and cfg.attack.extra["threat_model"] == "omniscient"
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
            "threat_model": cfg.attack.extra["threat_model"],
            "compressor": cfg.compressor.name,
            "seed": cfg.run.seed,
            "simulation": self.simulated,
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
            params_dtype="f8" if cfg.run.server_dtype == "float64" else "f4",
            resume_rows=None if s.resume is None else s.resume.trace_rows,
        )
        self.client_sizes = [packed_size(method.init_client(c)) for c in range(cfg.clients.n)]
        self.totals = {"t_setup": 0.0, "t_compute": 0.0, "t_comm": 0.0, "t_aggregate": 0.0, "t_io": 0.0, "t_eval": 0.0}
        self.bytes_up = self.bytes_down = self.rejected = 0
        self.last_eval: dict[str, float] = {}

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
        ctx = AttackContext(
            honest=rows[honest_ok],
            own=rows[byz],
            clients=byz_clients,
            m=plan.m,
            seed=self.s.cfg.run.seed,
            round=plan.round,
            defender=defender,
            model=model,
            x0=x0,
            lr=lr,
        )
        rows[byz] = restrict(self.attack.build(ctx, **self.attack_params))
        codes[byz] = ACCEPTED

    def _receive(self, plan: RoundPlan, wire: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate the payloads, decode the accepted ones (rejected rows stay NaN), run the
        omniscient attack, and validate the decoded rows: (dense rows (m, d), reject code per row)."""
        method = self.s.method
        codes = method.reject_codes(wire, plan).clone()
        rows = self.rows[: plan.m]
        ok = codes == ACCEPTED
        if bool(ok.all()):
            method.decode(wire, plan.sampled, plan, self.dtype, out=rows)
        else:
            rows.fill_(NAN)
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
        rows = msgs if n_rejected == 0 else msgs[accepted]
        honest_rows = torch.from_numpy(~plan.byzantine)[accepted]
        f_eff = effective_f(s.f, n_rejected)
        record: dict[str, Any] = {}

        def aggregate(x: torch.Tensor) -> Aggregate:
            out = self.pipeline(x, f=f_eff, round_=k)
            if "value" not in record:
                honest = (
                    honest_rows
                    if x.shape[0] == honest_rows.numel()
                    else (self.honest_clients if x.shape[0] == self.honest_clients.numel() else None)
                )
                record.update(
                    value=out.value,
                    weights=out.weights,
                    inputs=x,
                    per_message=honest is honest_rows,
                    centre=None if honest is None else honest_mean(x, honest),
                )
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
        row = (
            k,
            plan.full,
            plan.m,
            plan.n_byzantine,
            n_rejected,
            info.skipped,
            info.aggregate_norm,
            NAN if centre is None else float(centre.norm()),
            distance(record["value"], centre) if "value" in record else NAN,
            info.update_norm,
            info.clip_radius,
            0 if info.clipped is None else int(info.clipped.sum()),
            bytes_up,
            bytes_down,
            t_setup,
            t_compute,
            t_comm,
            t_agg,
            t_io,
            t_eval,
            t_round,
            time.perf_counter() - self.t0,
        )
        self.trace.append("rounds", np.array([row], ROUND_DTYPE))
        for key, value in (
            ("t_setup", t_setup),
            ("t_compute", t_compute),
            ("t_comm", t_comm),
            ("t_aggregate", t_agg),
            ("t_io", t_io),
            ("t_eval", t_eval),
        ):
            self.totals[key] += value
        self.bytes_up += bytes_up
        self.bytes_down += bytes_down
        self.rejected += n_rejected
        if not t_eval:
            self.progress.update(k + 1)

    def _trace_messages(
        self,
        k: int,
        plan: RoundPlan,
        msgs: torch.Tensor,
        codes: torch.Tensor,
        accepted: torch.Tensor,
        record: dict,
        info: RoundInfo,
        width: int,
    ) -> None:
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
        if info.clipped is not None and len(info.clipped) == int(acc.sum()):  # per message (not per client)
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
            server=self.state,
            aggregator=self.pipeline.state,
            clients=clients,
        )
        self.checkpoint_seconds = getattr(self, "checkpoint_seconds", 0.0) + time.perf_counter() - t0

    def finish(self, status: str, done: int) -> RunSummary:
        cfg = self.s.cfg
        self.progress.close()
        wall = time.perf_counter() - self.t0
        self.trace.close(
            status,
            self.s.method.model(self.state).numpy() if status == "finished" else None,
            done,
            {
                "wall_seconds": wall,
                "final_eval": self.last_eval,
                "checkpoint_seconds": getattr(self, "checkpoint_seconds", 0.0),
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
            {"status": status},
        )
