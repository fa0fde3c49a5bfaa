"""What a training method is: explicit server and client state plus its steps.

The round loop (:mod:`byzmpi.runner`) is the same for every method; a method knows nothing of MPI:

* ``init_server(x0)`` / ``init_client(client)``: the states; ``model(server)``: the current model;
* ``downlink(server, plan, out)``: fill the flat float32 buffer the server broadcasts
  (``downlink_len`` floats);
* ``client_message(client_state, down, plan, client) -> Tensor``: the dense vector one client
  sends, computed on the task's view of that client's data (a label-flipping Byzantine client's
  view has flipped labels);
* ``server_update(server, rows, clients, plan, aggregate)``: combine the round's validated,
  decoded rows (aligned with ``clients``) with the robust ``aggregate(x, clients)`` and step;
* optional ``trajectory(server, plan, space) -> (p, x0, γ)``: the point p such that an aggregate
  v makes the next model p − γ·v (for attacks that steer it), for an attack in ``space``;
* optional (``MethodSpec.estimator``) ``estimator_view(server, rows, clients, plan)``: the vectors
  the rule aggregates for these decoded messages (g^k + Q(Δ_i), g_i, momenta), and
  ``message_for(server, vectors, clients, plan)``: the messages that produce given vectors — the
  estimator attack space (docs/design.md, "Threat models").

The bytes are not the method's business: its ``codec`` (:class:`~byzmpi.compressors.codec.WireCodec`,
the compressor side) encodes, validates and decodes the payloads, and says what a Byzantine
payload can carry.

States are dataclasses of tensors (and plain scalars): checkpoints save them exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from torch import Tensor

from ..compressors.codec import WireCodec
from ..params import Param
from ..plan import RoundPlan
from ..registry import Registry
from .step_info import Aggregator, RoundInfo, finite_norm, finite_vector

__all__ = [
    "METHODS",
    "Aggregator",
    "Method",
    "MethodSpec",
    "RoundInfo",
    "finite_norm",
    "finite_vector",
    "register_method",
]


class Method(Protocol):
    """Explicit state plus three steps (downlink, client message, server update)."""

    name: str
    downlink_len: int
    codec: WireCodec

    def init_server(self, x0: Tensor) -> Any: ...
    def init_client(self, client: int) -> Any: ...
    def model(self, server: Any) -> Tensor: ...
    def downlink(self, server: Any, plan: RoundPlan, out: Tensor) -> None: ...
    def client_message(self, state: Any, down: Tensor, plan: RoundPlan, client: int) -> Tensor: ...
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
    coin: Callable[[dict[str, Any]], tuple[float, bool]] = lambda params: (0.0, False)
    full_participation: bool = False
    check: Callable[[dict[str, Any], Any], None] | None = None
    trajectory: bool = True  # the method exposes trajectory(server, plan, space) (for attacks that steer)
    # the rule aggregates something other than the messages, and the method maps between the two:
    # estimator_view(server, rows, clients, plan) and message_for(server, vectors, clients, plan)
    estimator: bool = False


METHODS: Registry[MethodSpec] = Registry("method", "method")


def register_method(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add ``spec`` to the catalogue (a user's own method included); refuses to shadow one silently."""
    return METHODS.register(spec, replace=replace)
