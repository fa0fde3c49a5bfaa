"""Partitions of a dataset's samples over n clients: pure functions returning index arrays.

* ``full``: every client holds the whole dataset (homogeneous, ζ = 0; the papers' a9a setting).
* ``iid``: a seeded random permutation cut into n near-equal shards.
* ``strided``: client i holds samples i, i + n, i + 2n, ... of the file's order.
* ``dirichlet``: for each class c, proportions p_c ~ Dir(α·1_n) split the class's samples
  (label skew; small α is more heterogeneous). Redrawn until every client holds at least
  ``min_size`` samples.
* ``natural``: the generating client of each synthetic sample.
"""

from __future__ import annotations

import numpy as np

from ..errors import SetupError


def full(n_samples: int, n_clients: int) -> list[np.ndarray]:
    idx = np.arange(n_samples)
    return [idx] * n_clients


def iid(n_samples: int, n_clients: int, gen: np.random.Generator) -> list[np.ndarray]:
    return [np.sort(s) for s in np.array_split(gen.permutation(n_samples), n_clients)]


def strided(n_samples: int, n_clients: int) -> list[np.ndarray]:
    return [np.arange(i, n_samples, n_clients) for i in range(n_clients)]


def natural(groups: np.ndarray, n_clients: int) -> list[np.ndarray]:
    """Client i holds {j : groups[j] = i} in increasing order (ids outside [0, n) belong to no client).

    One stable sort of the group ids, O(S log S) for S samples, instead of one comparison pass
    per client (O(n·S): 1.9 s per rank at n = 10⁴, S = 4·10⁵). The shards are slices of one array.
    """
    ids = np.asarray(groups)
    if ids.dtype.kind not in "iu":
        raise SetupError(f"task.partition: 'natural' needs integer client ids, got {ids.dtype}")
    order = np.argsort(ids, kind="stable")
    bounds = np.searchsorted(ids[order], np.arange(n_clients + 1), side="left")
    return [order[bounds[i] : bounds[i + 1]] for i in range(n_clients)]


def dirichlet(
    labels: np.ndarray, n_clients: int, alpha: float, gen: np.random.Generator, min_size: int = 1, max_tries: int = 100
) -> list[np.ndarray]:
    classes = np.unique(labels)
    for _ in range(max_tries):
        shards: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for c in classes:
            members = gen.permutation(np.flatnonzero(labels == c))
            cuts = (np.cumsum(gen.dirichlet(np.full(n_clients, alpha))) * members.size).astype(np.int64)[:-1]
            for i, part in enumerate(np.split(members, cuts)):
                shards[i].append(part)
        out = [np.sort(np.concatenate(s)) for s in shards]
        if min(s.size for s in out) >= min_size:
            return out
    raise SetupError(
        f"task.alpha: a Dirichlet({alpha}) split left a client with fewer than {min_size} samples "
        f"in {max_tries} draws; raise alpha or use fewer clients"
    )


def partition(
    kind: str,
    *,
    n_samples: int,
    n_clients: int,
    labels: np.ndarray,
    groups: np.ndarray | None,
    alpha: float,
    gen: np.random.Generator,
    min_size: int = 1,
) -> list[np.ndarray]:
    """Dispatch on the partition name; raises SetupError when ``natural`` has no groups."""
    if kind == "full":
        return full(n_samples, n_clients)
    if kind == "iid":
        return iid(n_samples, n_clients, gen)
    if kind == "strided":
        return strided(n_samples, n_clients)
    if kind == "dirichlet":
        return dirichlet(labels, n_clients, alpha, gen, min_size=min_size)
    if kind == "natural":
        if groups is None:
            raise SetupError("task.partition: 'natural' needs the synthetic dataset")
        return natural(groups, n_clients)
    raise SetupError(f"task.partition: unknown partition {kind!r}")
