"""RoSDHB: robust sparsified distributed heavy-ball (Gupta, Honsell, Xu, Gupta, Neglia, AISTATS 2026).

Reconstructed from the authors' code (docs/algorithms.md §6.1). Round t:
1. one global rand-k mask M_t (|M_t| = K) from the (seed, t, "mask") stream — nothing but the K
   values travel; the server broadcasts θ_t;
2. each sampled honest client computes a stochastic gradient g_i^t at θ_t and sends g_i^t[M_t]
   (clients keep no state);
3. the server reconstructs g̃_i = (d/K)·g_i ⊙ 1_{M_t} and updates its momentum for that client,
       m_i ← β m_i + (1 − β) g̃_i          (Polyak / heavy ball in EMA form, one per client);
4. R_t = Agg(m_i for the round's clients) (trimmed mean in the paper's code), optionally through the
   clipping recipe (eq. 10 of Malinovsky et al.); θ_{t+1} = θ_t − γ R_t.
With an independent-mask compressor (``randk``) this is the ablation of target T8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..compressors import Compressor
from ..compressors.codec import WireCodec
from ..params import Param
from ..plan import RoundPlan
from ..tasks import Task
from .base import Aggregator, MethodSpec, RoundInfo, register_method
from .clipping import CLIP_PARAMS, DifferenceClipping, StepState, take_step


@dataclass
class RosServer(StepState):
    momenta: Tensor  # (n, d), one per client, Byzantine ones included


@dataclass
class RosClient:
    """RoSDHB clients are stateless."""


class RoSDHB:
    name = "rosdhb"

    def __init__(
        self,
        task: Task,
        *,
        compressor: Compressor,
        n_clients: int,
        lr: float,
        beta: float,
        clip: bool,
        clip_alpha: float,
        clip_mult: float | None,
        seed: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.task, self.lr, self.beta, self.dtype, self.n = task, lr, beta, dtype, n_clients
        self.clipping = DifferenceClipping(clip, clip_alpha, clip_mult)
        self.codec = WireCodec(compressor)
        self.downlink_len = task.dim

    def init_server(self, x0: Tensor) -> RosServer:
        x = x0.to(self.dtype).clone()
        return RosServer(
            x=x,
            x0=x.clone(),
            g=torch.zeros_like(x),
            step_norm=0.0,
            started=False,
            momenta=torch.zeros(self.n, self.task.dim, dtype=self.dtype, device=x.device),
        )

    def init_client(self, client: int) -> RosClient:
        return RosClient()

    def model(self, server: RosServer) -> Tensor:
        return server.x

    def downlink(self, server: RosServer, plan: RoundPlan, out: Tensor) -> None:
        out.copy_(server.x)

    def client_message(self, state: RosClient, down: Tensor, plan: RoundPlan, client: int) -> Tensor:
        grad = self.task.gradient(down, self.task.batch(client, plan.round))
        return grad

    def server_update(
        self, server: RosServer, rows: Tensor, clients: np.ndarray, plan: RoundPlan, aggregate: Aggregator
    ) -> RoundInfo:
        idx = torch.from_numpy(np.asarray(clients, dtype=np.int64))
        server.momenta[idx] = server.momenta[idx] * self.beta + rows.to(self.dtype) * (1.0 - self.beta)
        g, radius, clipped = self.clipping.aggregate(aggregate, server.momenta[idx], server, clients=clients)
        return take_step(server, g, self.lr, radius, clipped)

    def trajectory(self, server: RosServer, plan: RoundPlan, space: str = "message") -> tuple[Tensor, Tensor, float]:
        return server.x, server.x0, self.lr

    def estimator_view(self, server: RosServer, rows: Tensor, clients: np.ndarray, plan: RoundPlan) -> Tensor:
        """The momenta the rule aggregates: β m_i + (1 − β) g̃_i for each decoded g̃_i."""
        idx = torch.from_numpy(np.asarray(clients, dtype=np.int64))
        return server.momenta[idx].to(rows.dtype) * self.beta + rows * (1.0 - self.beta)

    def message_for(self, server: RosServer, vectors: Tensor, clients: np.ndarray, plan: RoundPlan) -> Tensor:
        """The reconstructed g̃ that moves client i's momentum to ``vectors``: (v − β m_i)/(1 − β)."""
        idx = torch.from_numpy(np.asarray(clients, dtype=np.int64))
        return (vectors - server.momenta[idx].to(vectors.dtype) * self.beta) / (1.0 - self.beta)


register_method(
    MethodSpec(
        name="rosdhb",
        build=lambda task, *, seed, dtype, compressor, n_clients, **params: RoSDHB(
            task, compressor=compressor, n_clients=n_clients, seed=seed, dtype=dtype, **params
        ),
        doc="RoSDHB (Gupta et al. 2026): coordinated rand-k sparsification, server-side Polyak momentum per "
        "client, robust aggregation of the momenta; stateless clients.",
        params={
            "lr": Param("lr", float, 0.128, "step size gamma (the code's gamma_s * eta_c = 0.8 * 0.16)", minimum=0.0),
            "beta": Param("beta", float, 0.9, "server momentum beta (EMA form)", minimum=0.0, maximum=0.999999),
            **CLIP_PARAMS,
        },
        estimator=True,
    )
)
