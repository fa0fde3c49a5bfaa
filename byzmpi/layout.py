"""Which rank hosts which client.

Clients are logical ids ``0..n-1``; rank 0 is the server and ranks ``1..P-1`` host clients in
contiguous blocks: with ``H = min(P - 1, n)`` hosts, host ``h``
(rank ``h + 1``) holds clients ``[h*n//H, (h+1)*n//H)``. With one client per rank (the default
``P = n + 1``) client ``c`` lives on rank ``c + 1``. Ranks beyond ``n + 1`` host nothing.

Because hosts are contiguous blocks, concatenating each member host's sampled clients in rank
order yields the sampled ids in increasing order: the server's gather buffer row ``j`` is the
``j``-th smallest sampled client, whatever the number of ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Layout:
    n_clients: int
    n_ranks: int
    host: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.n_ranks < 2:
            raise ValueError("byzmpi needs at least 2 ranks: rank 0 is the server, the others host clients")
        hosts = min(self.n_ranks - 1, self.n_clients)
        starts = (np.arange(hosts + 1) * self.n_clients) // hosts
        host = np.repeat(np.arange(1, hosts + 1), np.diff(starts))
        host.setflags(write=False)
        object.__setattr__(self, "host", host)

    def host_of(self, client: int) -> int:
        """Rank hosting ``client``."""
        return int(self.host[client])

    def clients_of(self, rank: int) -> np.ndarray:
        """Client ids hosted on ``rank`` (empty for rank 0 and idle ranks)."""
        return np.flatnonzero(self.host == rank)

    def members(self, sampled: np.ndarray) -> list[int]:
        """Ranks taking part in a round that samples ``sampled``: rank 0, then each host once, ascending."""
        return [0, *np.unique(self.host[sampled]).tolist()]

    def rows_per_member(self, sampled: np.ndarray) -> list[int]:
        """Number of messages each member contributes (0 for the server), in ``members`` order."""
        ranks, counts = np.unique(self.host[sampled], return_counts=True)
        return [0, *counts.tolist()]
