"""Ranks 1..P−1: compute the messages of their sampled clients, run local attacks, send client
states for checkpoints."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch

from ..attacks import CoalitionStats, LocalContext
from ..checkpoint import load_clients
from ..plan import RoundPlan
from ..statefile import pack
from .server import TELEMETRY
from .setup import Run


def _to_device(state: Any, device: torch.device) -> Any:
    """A client state (a dataclass of tensors and scalars) with its tensors on ``device``."""
    if device.type == "cpu" or not dataclasses.is_dataclass(state):
        return state
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if isinstance(value, torch.Tensor):
            setattr(state, f.name, value.to(device))
    return state


class Host:
    """Ranks 1..P−1: compute the messages of their sampled clients (Byzantine ones included: their
    honest message in the omniscient model, their attack in the local model)."""

    def __init__(self, s: Run, world: Any) -> None:
        self.s, self.world = s, world
        self.clients = s.layout.clients_of(world.rank)
        self.states = {int(c): s.method.init_client(int(c)) for c in self.clients}
        if s.resume is not None:
            self.states = load_clients(s.resume.path, self.states)
        # MPI buffers on the device when the library takes device memory, else pinned host memory
        # with device twins that the clients read and write (the staging copies are timed)
        where = s.device if s.device_buffers else torch.device("cpu")
        self.staged = s.device.type == "cuda" and not s.device_buffers
        pin = self.staged
        self.down = torch.zeros(s.method.downlink_len, dtype=torch.float32, device=where, pin_memory=pin)
        self.down_dev = torch.zeros_like(self.down, device=s.device) if self.staged else self.down
        slots = max(len(self.clients), 1) * (s.method.codec.max_wire_len + TELEMETRY)
        self.send = torch.zeros(slots, dtype=torch.float32, device=where, pin_memory=pin)
        self.send_dev = torch.zeros_like(self.send, device=s.device) if self.staged else self.send
        self._send_np = self.send.numpy() if self.send.device.type == "cpu" else None
        self.states = {c: _to_device(state, s.device) for c, state in self.states.items()}
        self.attack = s.threat.attack
        self.attack_params = s.threat.params
        self.local = s.threat.local
        self.is_byz = s.byzantine

    def _local_attack(self, plan: RoundPlan, mine: np.ndarray, wire: torch.Tensor) -> None:
        """Local threat model: this host decodes its Byzantine clients' honest payloads, computes
        the attack (with the coalition's statistics when the attack needs them), and re-encodes it."""
        method = self.s.method
        rows = np.flatnonzero(self.is_byz[mine])
        clients = mine[rows]
        own = method.codec.decode(wire[torch.from_numpy(rows)], clients, plan, torch.float32)
        coalition = None
        if self.attack.needs_coalition:
            byz_hosts = np.unique(self.s.layout.host[plan.sampled[plan.byzantine]]).tolist()
            sums = torch.stack([own.double().sum(0), own.double().square().sum(0)])
            self.world.coalition_sum(byz_hosts, sums, plan.round)
            coalition = CoalitionStats.from_sums(plan.n_byzantine, sums[0], sums[1])
        ctx = LocalContext(
            own=own,
            clients=clients,
            coalition=coalition,
            m=plan.m,
            n_byzantine=plan.n_byzantine,
            seed=self.s.cfg.run.seed,
            round=plan.round,
            n_clients=self.s.cfg.clients.n,
            f_global=self.s.cfg.clients.byzantine,
        )
        assert self.attack.local is not None  # config validation refuses local runs of omniscient-only attacks
        attack = self.attack.local(ctx, **self.attack_params)
        for row, client, v in zip(rows.tolist(), clients.tolist(), attack):
            method.codec.encode_writable(v, plan, client, wire[row])

    def round(self, k: int) -> None:
        s = self.s
        plan = s.sampler.plan(k)
        hosts = s.layout.host[plan.sampled]
        mine = plan.sampled[hosts == self.world.rank]
        if mine.size == 0:
            return
        width = s.method.codec.wire_len(plan)
        stride = width + TELEMETRY
        padded = self.send[: mine.size * stride].view(mine.size, stride)  # what MPI sends
        rows = self.send_dev[: mine.size * stride].view(mine.size, stride)  # what the clients write
        wire = rows[:, :width]
        members = [0, *np.unique(hosts).tolist()]
        with self.world.round_comm(members, k) as rc:
            rc.bcast(self.down)
            t0 = time.perf_counter()
            stage = 0.0
            if self.staged:  # the downlink, pinned host buffer -> device
                self.down_dev.copy_(self.down, non_blocking=True)
                torch.cuda.synchronize(s.device)
                stage = time.perf_counter() - t0
            down = self.down_dev
            for j, client in enumerate(mine.tolist()):
                s.method.codec.encode(
                    s.method.client_message(self.states[client], down, plan, client), plan, client, wire[j]
                )
            if wire.device.type == "cuda" or s.device.type == "cuda":
                torch.cuda.synchronize(s.device)  # the payload is complete before MPI reads it
            if self.local and self.is_byz[mine].any():
                self._local_attack(plan, mine, wire)
            t1 = time.perf_counter()
            compute = t1 - t0 - stage
            if self.staged:  # the rows, device -> pinned host buffer
                padded.copy_(rows)
                stage += time.perf_counter() - t1
            self._report(padded, width, compute, stage)
            if s.checked:
                rc.send_checked(self._payload(padded))
            else:
                rc.gather_rows(padded, None, [])

    def _report(self, padded: torch.Tensor, width: int, compute: float, stage: float) -> None:
        """Write this host's telemetry (compute seconds, staging seconds, staged flag) after every row."""
        report = (compute, stage, 1.0 if self.staged else 0.0)
        if self._send_np is not None:
            self._send_np[: padded.numel()].reshape(padded.shape)[:, width:] = report
        else:
            padded[:, width:] = torch.tensor(report, dtype=torch.float32, device=padded.device)

    def _payload(self, wire: torch.Tensor) -> torch.Tensor:
        """This host's rows as sent; ``debug.wire_rank`` makes one rank send a wrong length (tests)."""
        dbg = self.s.cfg.debug
        if dbg.wire_rank != self.world.rank or dbg.wire_extra == 0:
            return wire
        flat = wire.reshape(-1)
        if dbg.wire_extra < 0:
            return flat[: max(flat.numel() + dbg.wire_extra, 0)].contiguous()
        return torch.cat([flat, torch.full((dbg.wire_extra,), 7.0)])

    def start(self) -> None:
        pass

    def checkpoint(self, done: int, complete: bool) -> None:
        """Send this host's client states to rank 0 (client-id order)."""
        parts = [pack(self.states[int(c)]) for c in self.clients]
        self.world.gather_bytes(np.concatenate(parts) if parts else np.empty(0, dtype=np.uint8), None)

    def finish(self, status: str, done: int) -> None:
        return None
