"""What a training method is: explicit server and client state plus its steps.

The round loop (:mod:`byzmpi.runner`) is the same for every method; a method knows nothing of MPI:

* ``downlink(server, plan, out)``: fill the flat float32 buffer the server broadcasts
  (``downlink_len`` floats);
* ``client_message(client_state, down, plan, client, out, flip=False)``: fill one client's wire
  payload (``wire_len(plan)`` float32 slots) from the broadcast (``flip``: on flipped labels);
* ``reject_codes(wire, plan)`` / ``decode(wire, clients, plan, dtype)``: the server's validation
  and decoding of the round's payloads (see :mod:`byzmpi.methods.wire`);
* ``server_update(server, rows, clients, plan, aggregate)``: combine the round's validated,
  decoded rows (aligned with ``clients``) with the robust ``aggregate`` and step;
* ``model(server)``: the current model; optional ``trajectory(server, plan) -> (p, x0, γ)``: the
  point p such that an aggregate v makes the next model p − γ·v (for attacks that steer it).

States are dataclasses of tensors (and plain scalars): checkpoints save them exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from ..aggregators import Aggregate
from ..params import Param
from ..plan import RoundPlan
from ..registry import Registry

Aggregator = Callable[[Tensor], Aggregate]


@dataclass
class RoundInfo:
    """What a server step reports for the trace."""

    aggregate_norm: float = float("nan")
    update_norm: float = float("nan")
    clip_radius: float = float("nan")
    clipped: np.ndarray | None = None  # bool per row, when the method clipped
    skipped: bool = False  # the aggregate was not finite: no step was taken


class Method(Protocol):
    name: str
    downlink_len: int
    max_wire_len: int

    def init_server(self, x0: Tensor) -> Any: ...
    def init_client(self, client: int) -> Any: ...
    def model(self, server: Any) -> Tensor: ...
    def downlink(self, server: Any, plan: RoundPlan, out: Tensor) -> None: ...
    def wire_len(self, plan: RoundPlan) -> int: ...
    def client_message(
        self, state: Any, down: Tensor, plan: RoundPlan, client: int, out: Tensor, *, flip: bool = False
    ) -> None: ...
    def reject_codes(self, wire: Tensor, plan: RoundPlan) -> Tensor: ...
    def decode(self, wire: Tensor, clients: np.ndarray, plan: RoundPlan, dtype: torch.dtype) -> Tensor: ...
    def writable(self, v: Tensor, plan: RoundPlan, client: int) -> Tensor: ...
    def encode_writable(self, v: Tensor, plan: RoundPlan, client: int, out: Tensor) -> None: ...
    def server_update(
        self, server: Any, rows: Tensor, clients: np.ndarray, plan: RoundPlan, aggregate: Aggregator
    ) -> RoundInfo: ...


@dataclass(frozen=True)
class MethodSpec:
    """A method in the catalogue.

    ``build(task, *, seed, dtype, compressor, **params)``; ``coin(params) -> (p, first_full)``: the
    probability of a full round and whether round 0 is one; ``full_participation``: the method
    needs every client every round; ``check(params, cfg) -> None`` may raise ConfigError for
    combinations the method refuses.
    """

    name: str
    build: Callable[..., Method]
    doc: str
    params: dict[str, Param] = field(default_factory=dict)
    coin: Callable[[dict], tuple[float, bool]] = lambda params: (0.0, False)
    full_participation: bool = False
    check: Callable[[dict, Any], None] | None = None
    trajectory: bool = True  # the method exposes trajectory(server, plan) (for attacks that steer)


METHODS: Registry[MethodSpec] = Registry("method", "method")


def register_method(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add ``spec`` to the catalogue (a user's own method included); refuses to shadow one silently."""
    return METHODS.register(spec, replace=replace)


def finite_norm(t: Tensor) -> float:
    return float(torch.linalg.vector_norm(t.double()))
