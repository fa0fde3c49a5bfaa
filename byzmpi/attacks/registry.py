"""The catalogue of Byzantine behaviours.

In the ``omniscient`` threat model (the papers' simulation) the server builds the Byzantine
messages of a round from the round's honest messages: an :class:`Attack` is a pure function of an
:class:`AttackContext`. The trace marks such runs as simulation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .. import rng
from ..params import Param


@dataclass(frozen=True)
class AttackContext:
    """What an omniscient attacker knows in one round.

    honest:  (G, L) the honest messages the server received this round (after validation)
    own:     (B, L) the message each sampled Byzantine client would have sent had it been honest
    clients: the B sampled Byzantine client ids, aligned with ``own``
    m:       number of messages in the round (G + B before rejections)
    """

    honest: Tensor
    own: Tensor
    clients: np.ndarray
    m: int
    seed: int
    round: int

    @property
    def n_byzantine(self) -> int:
        return int(self.own.shape[0])

    def reference(self) -> Tensor:
        """The vectors the attacker estimates statistics from: the honest messages, or the
        Byzantines' own honest messages when no honest message reached the server."""
        return self.honest if self.honest.shape[0] > 0 else self.own

    def generator(self, client: int) -> torch.Generator:
        """The (seed, round, "attack", client) stream, on the messages' device."""
        return rng.torch_generator(self.seed, self.round, "attack", client, device=self.own.device)


@dataclass(frozen=True)
class Attack:
    name: str
    build: Callable[..., Tensor]  # build(ctx, **params) -> (B, L)
    doc: str
    params: dict[str, Param] = field(default_factory=dict)


ATTACKS: dict[str, Attack] = {}


def register_attack(attack: Attack, *, replace: bool = False) -> Attack:
    """Add ``attack`` to the catalogue (a user's own attack included)."""
    if attack.name in ATTACKS and not replace:
        raise ValueError(f"attack {attack.name!r} is already registered")
    ATTACKS[attack.name] = attack
    return attack
