"""The catalogue of Byzantine behaviours.

Two threat models:

* ``omniscient`` (the papers' simulation): the server builds the Byzantine messages of a round
  from the round's honest messages, ``Attack.build(AttackContext)``. The trace marks such runs as
  simulation.
* ``local``: each Byzantine host computes its clients' messages itself,
  ``Attack.local(LocalContext)``, from its own data and, for attacks that estimate statistics,
  from the coalition of the round's sampled Byzantine clients (sum and sum of squares of their
  honest messages, exchanged over a communicator of the Byzantine ranks only), as a real
  attacker inside the job would.

``flips_labels``: the Byzantine runs the honest protocol on flipped labels (client side, in both
models).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .. import rng
from ..params import Param
from ..registry import Registry


@dataclass(frozen=True)
class AttackContext:
    """What an omniscient attacker knows in one round.

    honest:   (G, L) the honest messages the server received this round (finite ones)
    own:      (B, L) the message each sampled Byzantine client would have sent had it been honest
    clients:  the B sampled Byzantine client ids, aligned with ``own``
    m:        number of messages in the round (G + B before rejections)
    defender: ``defender(byz) -> aggregate``: what the server's actual aggregator returns when the
              Byzantine rows are ``byz`` (B, L) and the honest rows are as received (for attacks
              that search their scale); None when unavailable
    model, x0, lr: the current model x^k, the initial model x^0 and the step size, for attacks that
              steer the model (shift-back); None when the method does not expose them
    n_clients, f_global: the population's number of clients n and of Byzantine clients f (the
              global (n, f) from which ALIE's default z is computed, as the official codes do);
              None when the runner does not provide them
    """

    honest: Tensor
    own: Tensor
    clients: np.ndarray
    m: int
    seed: int
    round: int
    defender: Callable[[Tensor], Tensor] | None = None
    model: Tensor | None = None
    x0: Tensor | None = None
    lr: float | None = None
    n_clients: int | None = None
    f_global: int | None = None

    @property
    def n_byzantine(self) -> int:
        return int(self.own.shape[0])

    def reference(self) -> Tensor:
        """The vectors the attacker estimates statistics from: the honest messages, or the
        Byzantines' own honest messages when no honest message reached the server."""
        return self.honest if self.honest.shape[0] > 0 else self.own

    def honest_mean(self) -> Tensor:
        """μ, the mean of :meth:`reference` (the point an attack tries to move the aggregate from)."""
        return self.reference().mean(0)

    def generator(self, client: int) -> torch.Generator:
        """The (seed, round, "attack", client) stream, on the messages' device."""
        return rng.torch_generator(self.seed, self.round, "attack", client, device=self.own.device)


@dataclass(frozen=True)
class CoalitionStats:
    """Mean and per-coordinate standard deviation (ddof = 1; 0 for a single vector) of the honest
    messages of the round's sampled Byzantine clients, known to every coalition member."""

    count: int
    mean: Tensor
    std: Tensor

    @classmethod
    def from_sums(cls, count: int, total: Tensor, total_sq: Tensor) -> CoalitionStats:
        mean = total / count
        if count < 2:
            return cls(count, mean, torch.zeros_like(mean))
        var = (total_sq - count * mean * mean).clamp_(min=0.0) / (count - 1)
        return cls(count, mean, var.sqrt_())


@dataclass(frozen=True)
class LocalContext:
    """What a Byzantine host knows in the ``local`` threat model.

    own:       (b, L) the honest messages of this host's sampled Byzantine clients
    clients:   their ids, aligned with ``own``
    coalition: statistics over every sampled Byzantine client's honest message (None unless the
               attack declares ``needs_coalition``)
    m, n_byzantine: messages and Byzantine messages in the round (from the public round plan)
    n_clients, f_global: the population's number of clients n and of Byzantine clients f (see
               AttackContext); None when the runner does not provide them
    """

    own: Tensor
    clients: np.ndarray
    coalition: CoalitionStats | None
    m: int
    n_byzantine: int
    seed: int
    round: int
    n_clients: int | None = None
    f_global: int | None = None

    def generator(self, client: int) -> torch.Generator:
        return rng.torch_generator(self.seed, self.round, "attack", client, device=self.own.device)


@dataclass(frozen=True)
class Attack:
    name: str
    build: Callable[..., Tensor]  # omniscient: build(ctx: AttackContext, **params) -> (B, L)
    doc: str
    params: dict[str, Param] = field(default_factory=dict)
    local: Callable[..., Tensor] | None = None  # local: local(ctx: LocalContext, **params) -> (b, L)
    needs_coalition: bool = False  # ``local`` reads ctx.coalition
    flips_labels: bool = False  # honest protocol on flipped labels, computed by the client
    needs_defender: bool = False  # ``build`` calls ctx.defender (scale searches)
    needs_trajectory: bool = False  # ``build`` reads ctx.model, ctx.x0, ctx.lr (Method.trajectory)


ATTACKS: Registry[Attack] = Registry("attack", "attack")


def register_attack(attack: Attack, *, replace: bool = False) -> Attack:
    """Add ``attack`` to the catalogue (a user's own attack included)."""
    return ATTACKS.register(attack, replace=replace)
