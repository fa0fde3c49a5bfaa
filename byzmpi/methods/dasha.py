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
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..compressors import Compressor
from ..compressors.codec import WireCodec
from ..errors import ConfigError
from ..params import Param
from ..plan import RoundPlan
from ..tasks import Task
from ..validation import finite_rows
from .base import Aggregator, MethodSpec, RoundInfo, finite_norm, finite_vector, register_method
from .clipping import CLIP_PARAMS, DifferenceClipping, StepState
from .step_info import refused_step


@dataclass
class DashaServer(StepState):
    """x^t, x^0, the aggregate g^t (also the clipping reference), and the server's copy of every
    client's g_i as an (n, d) tensor."""

    g_clients: Tensor


@dataclass
class DashaClient:
    h: Tensor
    g: Tensor


class ByzDashaPage:
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
        self.codec = WireCodec(compressor, "first")  # round 0 sends uncompressed full gradients
        omega = compressor.omega if compressor.omega is not None else 0.0
        self.a = a if a is not None else 1.0 / (2.0 * omega + 1.0)
        self.downlink_len = 2 * task.dim

    def init_server(self, x0: Tensor) -> DashaServer:
        x = x0.to(self.dtype).clone()
        return DashaServer(
            x=x,
            x0=x.clone(),
            g=torch.zeros_like(x),
            step_norm=0.0,
            started=False,
            g_clients=torch.zeros(self.n, self.task.dim, dtype=self.dtype, device=x.device),
        )

    def init_client(self, client: int) -> DashaClient:
        return DashaClient(h=torch.zeros(self.task.dim), g=torch.zeros(self.task.dim))

    def model(self, server: DashaServer) -> Tensor:
        return server.x

    def estimator_view(self, server: DashaServer, rows: Tensor, clients: np.ndarray, plan: RoundPlan) -> Tensor:
        """The stored g_i the rule aggregates after adding each client's m_i (round 0: g_i = m_i)."""
        if plan.round == 0:
            return rows
        idx = torch.from_numpy(np.asarray(clients, dtype=np.int64))
        return server.g_clients[idx].to(rows.dtype) + rows

    def message_for(self, server: DashaServer, vectors: Tensor, clients: np.ndarray, plan: RoundPlan) -> Tensor:
        """The m_j that sets a Byzantine's stored g_j to ``vectors`` (the authors' code sets g_j directly)."""
        if plan.round == 0:
            return vectors
        idx = torch.from_numpy(np.asarray(clients, dtype=np.int64))
        return vectors - server.g_clients[idx].to(vectors.dtype)

    def downlink(self, server: DashaServer, plan: RoundPlan, out: Tensor) -> None:
        d = self.task.dim
        out[:d].copy_(server.x - self.lr * server.g)
        out[d:].copy_(server.x)

    def client_message(self, state: DashaClient, down: Tensor, plan: RoundPlan, client: int) -> Tensor:
        d, task = self.task.dim, self.task
        x_next, x_cur = down[:d], down[d:]
        if plan.round == 0:
            grad = task.local_gradient(x_next, client)
            state.h.copy_(grad)
            state.g.copy_(self.codec.roundtrip(grad, plan, client))
            return grad
        if plan.full:
            h_new = task.local_gradient(x_next, client)
        else:
            idx = task.batch(client, plan.round)
            h_new = state.h + task.gradient(x_next, idx) - task.gradient(x_cur, idx)
        v = h_new - state.h - self.a * (state.g - state.h)
        state.g.add_(self.codec.roundtrip(v, plan, client))  # the server adds the same decoded m_i
        state.h.copy_(h_new)
        return v

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
        step = finite_norm(x_next - server.x)
        # the radius α‖x^{t+1} − x^t‖ uses the step the clients just took (the clip_mult form, c·‖g^t‖, too)
        server.step_norm = step
        # a stored g_i that is not finite (accumulated 1e38 messages, say) leaves the aggregation and is counted
        valid = finite_rows(server.g_clients)
        ids = np.arange(self.n)
        stored = server.g_clients if bool(valid.all()) else server.g_clients[valid]
        g, radius, clipped = self.clipping.aggregate(
            aggregate, stored, server, clients=ids[valid.numpy()], dropped=int((~valid).sum())
        )
        norm = finite_norm(g)
        if not np.isfinite(norm) or not finite_vector(x_next - self.lr * g):  # never step to a non-finite model
            return refused_step(norm, radius, clipped, invalid_states=int((~valid).sum()))
        server.x, server.g, server.started = x_next, g.clone(), True
        return RoundInfo(
            aggregate_norm=norm,
            update_norm=step,
            clip_radius=radius,
            clipped=clipped,
            invalid_states=int((~valid).sum()),
        )


def _check(params: dict[str, Any], cfg: Any) -> None:
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
        estimator=True,
    )
)
