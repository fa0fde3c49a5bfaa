"""Robust (momentum) SGD: the Krum paper's setting, with Karimireddy et al.'s client momentum, and
the clipping recipe of Malinovsky et al. (eq. 10) as an option.

Round k: the server broadcasts x^k; each sampled client i computes a minibatch gradient g_i at x^k
and sends (through the compressor) its momentum
    m_i ← β m_i + (1 − β) g_i     (``momentum_form = "ema"``, Karimireddy, He, Jaggi, ICML 2021)
    m_i ← β m_i + g_i             (``"heavy_ball"``, as in the Byz-VR-MARINA-PP code)
(β = 0 sends g_i). The server steps x^{k+1} = x^k − γ·g^k with
    g^k = Agg(m_{i∈S_k})                                        (plain)
    g^k = g^{k−1} + Agg({clip_λ(m_i − g^{k−1})}_{i∈S_k})         (``clip = true``, eq. 10; the first
                                                                 round is not clipped)
A client's momentum only advances in rounds where it is sampled.
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
class SGDServer(StepState):
    """x^k, x^0 and the clipping reference (see :class:`~byzmpi.methods.clipping.StepState`)."""


@dataclass
class SGDClient:
    momentum: Tensor | None


class RobustSGD:
    name = "sgd"

    def __init__(
        self,
        task: Task,
        *,
        compressor: Compressor,
        lr: float,
        momentum: float,
        momentum_form: str,
        clip: bool,
        clip_alpha: float,
        clip_mult: float | None,
        seed: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.task, self.lr, self.beta, self.form, self.dtype = task, lr, momentum, momentum_form, dtype
        self.clipping = DifferenceClipping(clip, clip_alpha, clip_mult)
        self.codec = WireCodec(compressor)
        self.downlink_len = task.dim

    def init_server(self, x0: Tensor) -> SGDServer:
        x = x0.to(self.dtype).clone()
        return SGDServer(x=x, x0=x.clone(), g=torch.zeros_like(x), step_norm=0.0, started=False)

    def init_client(self, client: int) -> SGDClient:
        return SGDClient(momentum=torch.zeros(self.task.dim) if self.beta > 0 else None)

    def model(self, server: SGDServer) -> Tensor:
        return server.x

    def trajectory(self, server: SGDServer, plan: RoundPlan, space: str = "message") -> tuple[Tensor, Tensor, float]:
        return server.x, server.x0, self.lr

    def downlink(self, server: SGDServer, plan: RoundPlan, out: Tensor) -> None:
        out.copy_(server.x)

    def client_message(self, state: SGDClient, down: Tensor, plan: RoundPlan, client: int) -> Tensor:
        grad = self.task.gradient(down, self.task.batch(client, plan.round))
        if state.momentum is not None:
            state.momentum.mul_(self.beta).add_(grad, alpha=1.0 - self.beta if self.form == "ema" else 1.0)
            grad = state.momentum
        return grad

    def server_update(
        self, server: SGDServer, rows: Tensor, clients: np.ndarray, plan: RoundPlan, aggregate: Aggregator
    ) -> RoundInfo:
        g, radius, clipped = self.clipping.aggregate(aggregate, rows, server, clients=clients)
        return take_step(server, g, self.lr, radius, clipped)


register_method(
    MethodSpec(
        name="sgd",
        build=lambda task, *, seed, dtype, compressor, n_clients, lr, momentum, momentum_form, clip, clip_alpha, clip_mult: (
            RobustSGD(
                task,
                compressor=compressor,
                lr=lr,
                momentum=momentum,
                momentum_form=momentum_form,
                clip=clip,
                clip_alpha=clip_alpha,
                clip_mult=clip_mult,
                seed=seed,
                dtype=dtype,
            )
        ),
        doc="Robust SGD with optional client momentum (Karimireddy et al. 2021) and optional clipping of "
        "differences (eq. 10 of Malinovsky et al. 2024); the Krum paper's setting.",
        params={
            "lr": Param("lr", float, 0.1, "step size gamma", minimum=0.0),
            "momentum": Param("momentum", float, 0.0, "client momentum beta", minimum=0.0, maximum=0.999999),
            "momentum_form": Param(
                "momentum_form", str, "ema", "ema: b*m + (1-b)*g; heavy_ball: b*m + g", choices=("ema", "heavy_ball")
            ),
            **CLIP_PARAMS,
        },
    )
)
