"""Byz-VR-MARINA (Gorbunov et al., ICLR 2023) and Byz-VR-MARINA-PP (Malinovsky et al., NeurIPS 2024).

Algorithm 1 of Malinovsky et al. Round k (server state x^k, g^k):
1. coin c_k ~ Be(p) (shared; from the round plan); S_k of size Ĉ if c_k = 1 else C;
2. x^{k+1} = x^k − γ g^k; λ_{k+1} = α·‖x^{k+1} − x^k‖ (or clip_mult·‖g^k‖, the code's form);
   the server broadcasts (x^{k+1}, x^k), since a client sampled now may have been idle for long;
3. honest i ∈ S_k sends ∇f_i(x^{k+1}) if c_k = 1 (uncompressed), else Q_i(Δ̂_i) with
   Δ̂_i = (1/b) Σ_{j∈I_i^k} [∇f_ij(x^{k+1}) − ∇f_ij(x^k)] on ONE minibatch at both points and Q_i an
   independent compressor per client (rand-k from the (seed, round, client) stream);
4. server: c_k = 1: g^{k+1} = ARAgg({∇f_i(x^{k+1})}) (no clipping);
           c_k = 0: g^{k+1} = g^k + ARAgg({clip_λ(Q(Δ̂_i))})  — every received difference is clipped
           on the server (a Byzantine ignores client-side clipping);
           ``plus = true`` (Byz-VR-MARINA-PP+, Alg. 3): the plain mean of the clipped differences.
Round 0 is a full round (g^1 = ARAgg(∇f_i(x^0)), the usual g⁰ = ∇f(x⁰) start).
Byz-VR-MARINA is the full-participation, unclipped case (C = Ĉ = n, λ = ∞): ``vr_marina``.
Clients keep no state and do no work in rounds where they are not sampled.
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
from .base import Aggregator, MethodSpec, RoundInfo, finite_norm, finite_vector, register_method
from .clipping import CLIP_PARAMS, clip_radius, clip_rows
from .step_info import refused_step


@dataclass
class MarinaServer:
    x: Tensor  # x^k
    x0: Tensor
    g: Tensor  # g^k


@dataclass
class MarinaClient:
    """Clients of Byz-VR-MARINA(-PP) keep no state."""


class VRMarina:
    name = "vr_marina_pp"

    def __init__(
        self,
        task: Task,
        *,
        compressor: Compressor,
        lr: float,
        p: float,
        clip: bool,
        clip_alpha: float,
        clip_mult: float | None,
        plus: bool,
        full_batch: int,
        seed: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.task, self.lr, self.p, self.dtype = task, lr, p, dtype
        self.clip, self.clip_alpha, self.clip_mult, self.plus = clip, clip_alpha, clip_mult, plus
        self.full_batch = full_batch
        self.codec = WireCodec(compressor, "full")  # full rounds send uncompressed full gradients
        self.downlink_len = 2 * task.dim

    def init_server(self, x0: Tensor) -> MarinaServer:
        x = x0.to(self.dtype).clone()
        return MarinaServer(x=x, x0=x.clone(), g=torch.zeros_like(x))

    def init_client(self, client: int) -> MarinaClient:
        return MarinaClient()

    def model(self, server: MarinaServer) -> Tensor:
        return server.x

    def _next(self, server: MarinaServer) -> Tensor:
        return server.x - self.lr * server.g

    def trajectory(self, server: MarinaServer, plan: RoundPlan, space: str = "message") -> tuple[Tensor, Tensor, float]:
        """x^{k+2} = x^{k+1} − γ g^{k+1}: with g^{k+1} = v (full round, or any round in the estimator
        space, where v replaces g^{k+1}) or g^k + v (a difference round in the message space)."""
        x_next = self._next(server)
        p = x_next if plan.full or space == "estimator" else x_next - self.lr * server.g
        return p, server.x0, self.lr

    def estimator_view(self, server: MarinaServer, rows: Tensor, clients: np.ndarray, plan: RoundPlan) -> Tensor:
        """What a worker holds: g_i^{k+1} = ∇f_i (full round) or g^k + Q(Δ_i) (difference round)."""
        return rows if plan.full else server.g.to(rows.dtype) + rows

    def message_for(self, server: MarinaServer, vectors: Tensor, clients: np.ndarray, plan: RoundPlan) -> Tensor:
        """The message that makes a worker's vector ``vectors``: itself, or its difference from g^k."""
        return vectors if plan.full else vectors - server.g.to(vectors.dtype)

    def downlink(self, server: MarinaServer, plan: RoundPlan, out: Tensor) -> None:
        d = self.task.dim
        out[:d].copy_(self._next(server))
        out[d:].copy_(server.x)

    def client_message(self, state: MarinaClient, down: Tensor, plan: RoundPlan, client: int) -> Tensor:
        d, task = self.task.dim, self.task
        x_next, x_cur = down[:d], down[d:]
        if plan.full:
            if self.full_batch > 0:
                grad = task.gradient(x_next, task.batch(client, plan.round, "full-batch"))
            else:
                grad = task.local_gradient(x_next, client)
            return grad
        idx = task.batch(client, plan.round)
        return task.gradient(x_next, idx).sub_(task.gradient(x_cur, idx))

    def server_update(
        self, server: MarinaServer, rows: Tensor, clients: np.ndarray, plan: RoundPlan, aggregate: Aggregator
    ) -> RoundInfo:
        x_next = self._next(server)
        step = finite_norm(x_next - server.x)
        radius, clipped = float("nan"), None
        if plan.full:  # g^{k+1} = ARAgg(∇f_i(x^{k+1}))
            g = aggregate(rows, clients).value.to(self.dtype).clone()  # not a view of the reused rows buffer
        elif self.clip or self.plus:  # Alg. 1 line 6 / Alg. 3: g^{k+1} = g^k + Agg(clip_λ(Q(Δ_i)))
            if self.clip:
                radius = clip_radius(
                    alpha=self.clip_alpha, clip_mult=self.clip_mult, step_norm=step, g_norm=finite_norm(server.g)
                )
                rows, mask = clip_rows(rows, radius)
                clipped = mask.numpy()
            delta = rows.mean(0) if self.plus else aggregate(rows, clients).value
            g = server.g + delta.to(self.dtype)
        else:  # Byz-VR-MARINA: g^{k+1} = ARAgg(g^k + Q(Δ_i)), the vectors the workers hold
            g = aggregate(server.g.to(rows.dtype) + rows, clients).value.to(self.dtype).clone()
        norm = finite_norm(g)
        if not np.isfinite(norm) or not finite_vector(x_next - self.lr * g):  # never step to a non-finite model
            return refused_step(norm, radius, clipped)
        server.x, server.g = x_next, g
        return RoundInfo(aggregate_norm=norm, update_norm=step, clip_radius=radius, clipped=clipped)


def _build(
    task: Task, *, seed: int, dtype: torch.dtype, compressor: Compressor, n_clients: int, **params: Any
) -> VRMarina:
    return VRMarina(task, compressor=compressor, seed=seed, dtype=dtype, **params)


def _check_independent(params: dict[str, Any], cfg: Any) -> None:
    if cfg.compressor.name == "randk_coordinated":
        raise ConfigError(
            "compressor.name",
            "Byz-VR-MARINA(-PP) uses independent masks per client (randk); randk_coordinated is RoSDHB's",
        )


MARINA_PARAMS = {
    "lr": Param("lr", float, 0.1, "step size gamma", minimum=0.0),
    "p": Param("p", float, 0.01, "probability of a full-gradient round (coin c_k)", minimum=0.0, maximum=1.0),
    "full_batch": Param(
        "full_batch",
        int,
        0,
        "full rounds: 0 = full local gradient; b' > 0 = a b'-minibatch (Algorithms 4/5)",
        minimum=0,
    ),
}

register_method(
    MethodSpec(
        name="vr_marina_pp",
        build=_build,
        doc="Byz-VR-MARINA-PP (Malinovsky et al. 2024, Alg. 1): partial participation, compressed PAGE "
        "differences, server-side clipping with radius alpha*|x^{k+1}-x^k|; plus = PP+ (Alg. 3).",
        params={
            **MARINA_PARAMS,
            **{**CLIP_PARAMS, "clip": Param("clip", bool, True, "clip differences (Alg. 1)")},
            "plus": Param("plus", bool, False, "Byz-VR-MARINA-PP+: plain mean of clipped differences when c_k = 0"),
        },
        coin=lambda params: (params["p"], True),
        check=_check_independent,
        estimator=True,
    )
)

register_method(
    MethodSpec(
        name="vr_marina",
        build=lambda task, *, seed, dtype, compressor, n_clients, **params: VRMarina(
            task,
            compressor=compressor,
            seed=seed,
            dtype=dtype,
            clip=False,
            clip_alpha=1.0,
            clip_mult=None,
            plus=False,
            **params,
        ),
        doc="Byz-VR-MARINA (Gorbunov et al. 2023): full participation, compressed PAGE differences, no clipping.",
        params=dict(MARINA_PARAMS),
        coin=lambda params: (params["p"], True),
        full_participation=True,
        check=_check_independent,
        estimator=True,
    )
)
