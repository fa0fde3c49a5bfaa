"""Byz-DASHA-PAGE (Rammal, Gruntkowska, Fedin, Gorbunov, Richtárik, AISTATS 2024).

Reconstructed from the authors' code (docs/algorithms.md §5.1). Momentum a = 1/(2ω + 1) (ω = d/K − 1 for
rand-k), PAGE probability p (coin c_t, shared), independent compression masks per client.
* Round 0 (forced full, all clients, uncompressed): h_i = g_i = ∇f_i(x^0) on every client, and the
  server stores each g_i; g^1 = ARAgg(g_1, ..., g_n).
* Round t ≥ 1, with x^{t+1} = x^t − γ g^t broadcast together with x^t:
      h_i' = ∇f_i(x^{t+1})                                         if c_t = 1
           = h_i + (1/b) Σ_{j∈I} [∇f_ij(x^{t+1}) − ∇f_ij(x^t)]       otherwise (same minibatch, PAGE)
      m_i  = Q_i(h_i' − h_i − a·(g_i − h_i));   g_i ← g_i + m_i;   h_i ← h_i'     (client, sends m_i)
      server: g_i ← g_i + m_i for every received m_i;  g^{t+1} = ARAgg(g_1, ..., g_n)
      (``clip = true``: g^{t+1} = g^t + ARAgg({clip_λ(g_i − g^t)}), the recipe of eq. (10)).
Byzantine clients send compressed messages that accumulate into their server-side g_j. Full
participation (the aggregate is over all n stored g_i).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..compressors import Compressor, Identity
from ..errors import ConfigError
from ..params import Param
from ..plan import RoundPlan
from ..tasks import Task
from .base import Aggregator, MethodSpec, RoundInfo, finite_norm, register_method
from .clipping import CLIP_PARAMS, DifferenceClipping, StepState
from .wire import WireMixin


@dataclass
class DashaServer(StepState):
    """x^t, x^0, the aggregate g^t (also the clipping reference), and the server's copy of every
    client's g_i as an (n, d) tensor."""

    g_clients: Tensor


@dataclass
class DashaClient:
    h: Tensor
    g: Tensor


class ByzDashaPage(WireMixin):
    name = "dasha_page"

    def __init__(
        self,
        task: Task,
        *,
        compressor: Compressor,
        n_clients: int,
        lr: float,
        p: float,
        a: float | None,
        clip: bool,
        clip_alpha: float,
        clip_mult: float | None,
        seed: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.task, self.lr, self.p, self.dtype, self.n = task, lr, p, dtype, n_clients
        self.clipping = DifferenceClipping(clip, clip_alpha, clip_mult)
        self.compressor, self.dense = compressor, Identity(task.dim)
        omega = compressor.omega if compressor.omega is not None else 0.0
        self.a = a if a is not None else 1.0 / (2.0 * omega + 1.0)
        self.downlink_len = 2 * task.dim

    def codec(self, plan: RoundPlan) -> Compressor:
        return self.dense if plan.round == 0 else self.compressor

    @property
    def max_wire_len(self) -> int:
        return max(self.compressor.wire_len, self.dense.wire_len)

    def init_server(self, x0: Tensor) -> DashaServer:
        x = x0.to(self.dtype).clone()
        return DashaServer(
            x=x,
            x0=x.clone(),
            g=torch.zeros_like(x),
            step_norm=0.0,
            started=False,
            g_clients=torch.zeros(self.n, self.task.dim, dtype=self.dtype),
        )

    def init_client(self, client: int) -> DashaClient:
        return DashaClient(h=torch.zeros(self.task.dim), g=torch.zeros(self.task.dim))

    def model(self, server: DashaServer) -> Tensor:
        return server.x

    def downlink(self, server: DashaServer, plan: RoundPlan, out: Tensor) -> None:
        d = self.task.dim
        out[:d].copy_(server.x - self.lr * server.g)
        out[d:].copy_(server.x)

    def client_message(
        self, state: DashaClient, down: Tensor, plan: RoundPlan, client: int, out: Tensor, *, flip: bool = False
    ) -> None:
        d, task = self.task.dim, self.task
        x_next, x_cur = down[:d], down[d:]
        if plan.round == 0:
            grad = task.local_gradient(x_next, client, flip=flip)
            state.h.copy_(grad)
            state.g.copy_(self.dense.roundtrip(grad, round=0, client=client))
            self.dense.encode(grad, round=0, client=client, out=out)
            return
        if plan.full:
            h_new = task.local_gradient(x_next, client, flip=flip)
        else:
            idx = task.batch(client, plan.round)
            h_new = state.h + task.gradient(x_next, idx, flip=flip) - task.gradient(x_cur, idx, flip=flip)
        v = h_new - state.h - self.a * (state.g - state.h)
        self.compressor.encode(v, round=plan.round, client=client, out=out)
        state.g.add_(self.compressor.decode(out, round=plan.round, client=client, dtype=state.g.dtype))
        state.h.copy_(h_new)

    def server_update(
        self, server: DashaServer, rows: Tensor, clients: np.ndarray, plan: RoundPlan, aggregate: Aggregator
    ) -> RoundInfo:
        idx = torch.from_numpy(np.asarray(clients, dtype=np.int64))
        rows = rows.to(self.dtype)
        if plan.round == 0:
            server.g_clients[idx] = rows
        else:
            server.g_clients[idx] += rows
        x_next = server.x - self.lr * server.g
        g, radius, clipped = self.clipping.aggregate(aggregate, server.g_clients, server)
        norm = finite_norm(g)
        if not np.isfinite(norm):
            return RoundInfo(aggregate_norm=norm, update_norm=0.0, clip_radius=radius, clipped=clipped, skipped=True)
        step = finite_norm(x_next - server.x)
        server.x, server.g, server.step_norm, server.started = x_next, g.clone(), step, True
        return RoundInfo(aggregate_norm=norm, update_norm=step, clip_radius=radius, clipped=clipped)


def _check(params: dict, cfg) -> None:
    if cfg.compressor.name == "randk_coordinated":
        raise ConfigError("compressor.name", "Byz-DASHA-PAGE uses independent masks per client (randk)")


register_method(
    MethodSpec(
        name="dasha_page",
        build=lambda task, *, seed, dtype, compressor, n_clients, **params: ByzDashaPage(
            task, compressor=compressor, n_clients=n_clients, seed=seed, dtype=dtype, **params
        ),
        doc="Byz-DASHA-PAGE (Rammal et al. 2024): compressed DASHA messages with PAGE estimators; the server "
        "aggregates every client's accumulated g_i.",
        params={
            "lr": Param("lr", float, 0.1, "step size gamma", minimum=0.0),
            "p": Param(
                "p",
                float,
                0.01,
                "PAGE probability of a full local gradient (b/m in the paper)",
                minimum=0.0,
                maximum=1.0,
            ),
            "a": Param(
                "a", float, None, "DASHA momentum (default 1/(2*omega + 1))", minimum=0.0, maximum=1.0, nullable=True
            ),
            **CLIP_PARAMS,
        },
        coin=lambda params: (params["p"], True),
        full_participation=True,
        check=_check,
        trajectory=False,
    )
)
