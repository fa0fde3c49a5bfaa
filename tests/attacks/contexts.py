"""Hand-built attack contexts for the unit tests (no MPI, no runner)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from byzmpi.attacks import AttackContext, CoalitionStats, LocalContext


def t(rows, dtype=torch.float64) -> Tensor:
    return torch.tensor(rows, dtype=dtype)


def omniscient(
    honest: Tensor,
    own: Tensor,
    *,
    m: int | None = None,
    clients=None,
    seed: int = 0,
    round_: int = 0,
    defender: Callable[[Tensor], Tensor] | None = None,
    model: Tensor | None = None,
    x0: Tensor | None = None,
    lr: float | None = None,
    n_clients: int | None = None,
    f_global: int | None = None,
) -> AttackContext:
    b = own.shape[0]
    clients = np.arange(100, 100 + b) if clients is None else np.asarray(clients)
    return AttackContext(
        honest=honest,
        own=own,
        clients=clients,
        m=honest.shape[0] + b if m is None else m,
        seed=seed,
        round=round_,
        defender=defender,
        model=model,
        x0=x0,
        lr=lr,
        n_clients=n_clients,
        f_global=f_global,
    )


def coalition_of(own_all: Tensor) -> CoalitionStats:
    """The statistics the runner's Allreduce gives: from the sum and sum of squares (float64)."""
    x = own_all.to(torch.float64)
    return CoalitionStats.from_sums(x.shape[0], x.sum(0), x.square().sum(0))


def local(
    own: Tensor,
    *,
    coalition_rows: Tensor | None = None,
    m: int = 10,
    n_byzantine: int | None = None,
    clients=None,
    seed: int = 0,
    round_: int = 0,
    n_clients: int | None = None,
    f_global: int | None = None,
) -> LocalContext:
    """A host holding ``own``; the coalition is ``coalition_rows`` (default: just ``own``)."""
    rows = own if coalition_rows is None else coalition_rows
    clients = np.arange(100, 100 + own.shape[0]) if clients is None else np.asarray(clients)
    return LocalContext(
        own=own,
        clients=clients,
        coalition=coalition_of(rows),
        m=m,
        n_byzantine=rows.shape[0] if n_byzantine is None else n_byzantine,
        seed=seed,
        round=round_,
        n_clients=n_clients,
        f_global=f_global,
    )


def mean_defender(honest: Tensor) -> Callable[[Tensor], Tensor]:
    """The plain mean of honest ∪ Byzantine rows."""
    return lambda byz: torch.cat([honest, byz.to(honest.dtype)]).mean(0)
