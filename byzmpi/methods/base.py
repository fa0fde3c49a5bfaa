"""What a training method is: explicit server and client state plus its steps.

The round loop (:mod:`byzmpi.runner`) is the same for every method; a method knows nothing of MPI:

* ``downlink(server, plan, out)``: fill the flat float32 buffer the server broadcasts;
* ``client_message(client_state, down, plan, client, out, flip=False)``: fill one client's
  fixed-length float32 payload from the broadcast (``flip``: compute it on flipped labels);
* ``server_update(server, msgs, clients, plan, aggregate)``: combine the round's validated
  messages (rows aligned with ``clients``) with the robust ``aggregate`` and step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np
from torch import Tensor

from ..aggregators import Aggregate
from ..params import Param
from ..plan import RoundPlan

Aggregator = Callable[[Tensor], Aggregate]


@dataclass
class RoundInfo:
    """What a server step reports for the trace."""

    aggregate_norm: float = float("nan")
    update_norm: float = float("nan")
    clip_radius: float = float("nan")
    clipped: np.ndarray | None = None  # bool per message row, when the method clips
    skipped: bool = False  # the aggregate was not finite: no step was taken


class Method(Protocol):
    name: str
    downlink_len: int
    message_len: int

    def init_server(self, x0: Tensor) -> Any: ...
    def init_client(self, client: int) -> Any: ...
    def model(self, server: Any) -> Tensor: ...
    def downlink(self, server: Any, plan: RoundPlan, out: Tensor) -> None: ...
    def client_message(self, state: Any, down: Tensor, plan: RoundPlan, client: int, out: Tensor,
                       *, flip: bool = False) -> None: ...
    def server_update(self, server: Any, msgs: Tensor, clients: np.ndarray, plan: RoundPlan,
                      aggregate: Aggregator) -> RoundInfo: ...

    # optional: ``trajectory(server) -> (x^k, x^0, step)`` for attacks that steer the model


@dataclass(frozen=True)
class MethodSpec:
    """A method in the catalogue: how to build it, its parameters, and how it samples rounds."""

    name: str
    build: Callable[..., Method]  # build(task, seed=..., dtype=..., **params)
    doc: str
    params: dict[str, Param] = field(default_factory=dict)
    coin: Callable[[dict], tuple[float, bool]] = lambda params: (0.0, False)  # (p, first round full)


METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    if spec.name in METHODS and not replace:
        raise ValueError(f"method {spec.name!r} is already registered")
    METHODS[spec.name] = spec
    return spec
