"""Regularisers r(θ) added to every client's loss.

* ``l2``:        r(θ) = (λ/2)‖θ‖²,            ∇r = λθ   (the papers' code form: (0.01/2)‖x‖² on a9a)
* ``nonconvex``: r(θ) = λ Σ_j θ_j²/(1 + θ_j²),  ∇r_j = 2λθ_j/(1 + θ_j²)²  (Byz-DASHA-PAGE's NC setting
  with λ here = their λ/2)
* ``none``:      r = 0
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Regularizer:
    kind: str
    lam: float

    @property
    def convex(self) -> bool:
        return self.kind in ("l2", "none")

    @property
    def strongly_convex(self) -> bool:
        return self.kind == "l2" and self.lam > 0

    def value(self, theta: Tensor) -> Tensor:
        if self.kind == "l2":
            return 0.5 * self.lam * theta.dot(theta)
        if self.kind == "nonconvex":
            sq = theta * theta
            return self.lam * (sq / (1 + sq)).sum()
        return torch.zeros((), dtype=theta.dtype)

    def grad(self, theta: Tensor) -> Tensor:
        if self.kind == "l2":
            return self.lam * theta
        if self.kind == "nonconvex":
            return 2 * self.lam * theta / (1 + theta * theta) ** 2
        return torch.zeros_like(theta)
