"""Robust (momentum) SGD: the Krum paper's setting, with Karimireddy et al.'s client momentum.

Round k: the server broadcasts x^k; each sampled client i computes a minibatch gradient g_i at x^k
and sends its momentum
    m_i ← β m_i + (1 − β) g_i     (``momentum_form = "ema"``, Karimireddy, He, Jaggi, ICML 2021)
    m_i ← β m_i + g_i             (``"heavy_ball"``, as in the Byz-VR-MARINA-PP code)
(β = 0 sends g_i); the server steps x^{k+1} = x^k − γ·Agg(m_{i∈S_k}).
A client's momentum only advances in rounds where it is sampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..params import Param
from ..plan import RoundPlan
from ..tasks import Task
from .base import Aggregator, MethodSpec, RoundInfo, register_method


@dataclass
class SGDServer:
    x: Tensor
    x0: Tensor


@dataclass
class SGDClient:
    momentum: Tensor | None


class RobustSGD:
    name = "sgd"

    def __init__(self, task: Task, *, lr: float, momentum: float, momentum_form: str, seed: int,
                 dtype: torch.dtype = torch.float32) -> None:
        self.task, self.lr, self.beta, self.form, self.dtype = task, lr, momentum, momentum_form, dtype
        self.downlink_len = self.message_len = task.dim

    def init_server(self, x0: Tensor) -> SGDServer:
        return SGDServer(x=x0.to(self.dtype).clone(), x0=x0.to(self.dtype).clone())

    def init_client(self, client: int) -> SGDClient:
        return SGDClient(momentum=torch.zeros(self.task.dim) if self.beta > 0 else None)

    def model(self, server: SGDServer) -> Tensor:
        return server.x

    def trajectory(self, server: SGDServer) -> tuple[Tensor, Tensor, float]:
        """(x^k, x^0, γ) for attacks that steer the model; a message v moves x by −γ·v."""
        return server.x, server.x0, self.lr

    def downlink(self, server: SGDServer, plan: RoundPlan, out: Tensor) -> None:
        out.copy_(server.x)

    def client_message(self, state: SGDClient, down: Tensor, plan: RoundPlan, client: int, out: Tensor,
                       *, flip: bool = False) -> None:
        grad = self.task.gradient(down, self.task.batch(client, plan.round), flip=flip)
        if state.momentum is None:
            out.copy_(grad)
            return
        state.momentum.mul_(self.beta).add_(grad, alpha=1.0 - self.beta if self.form == "ema" else 1.0)
        out.copy_(state.momentum)

    def server_update(self, server: SGDServer, msgs: Tensor, clients: np.ndarray, plan: RoundPlan,
                      aggregate: Aggregator) -> RoundInfo:
        agg = aggregate(msgs.to(self.dtype)).value
        norm = float(agg.norm())
        if not np.isfinite(norm):
            return RoundInfo(aggregate_norm=norm, update_norm=0.0, skipped=True)
        server.x.sub_(agg, alpha=self.lr)
        return RoundInfo(aggregate_norm=norm, update_norm=self.lr * norm)


register_method(
    MethodSpec(
        name="sgd",
        build=lambda task, *, seed, dtype, lr, momentum, momentum_form: RobustSGD(
            task, lr=lr, momentum=momentum, momentum_form=momentum_form, seed=seed, dtype=dtype),
        doc="Robust SGD with optional client momentum (Karimireddy et al. 2021); the Krum paper's setting.",
        params={
            "lr": Param("lr", float, 0.1, "step size gamma", minimum=0.0),
            "momentum": Param("momentum", float, 0.0, "client momentum beta", minimum=0.0, maximum=0.999999),
            "momentum_form": Param("momentum_form", str, "ema", "ema: b*m + (1-b)*g; heavy_ball: b*m + g",
                                   choices=("ema", "heavy_ball")),
        },
    )
)
