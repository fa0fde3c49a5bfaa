"""Exact minimum-diameter subset of k points, given their pairwise (squared) distances.

    S* = argmin_{|S| = k} max_{i, j ∈ S} D_ij

is found without enumerating the C(m, k) subsets: for a threshold t, a subset of size k with
diameter ≤ t exists iff the "conflict graph" H_t (an edge where D_ij > t) has a vertex cover of
size ≤ m − k (remove the cover, keep a clique of the "compatible" graph). The smallest feasible t
among the distinct D_ij is found by bisection; each test is a bounded search-tree vertex-cover
search (branch on a vertex or all its neighbours; a vertex of degree > budget must go), whose
cost grows with m − k, not with C(m, k). Among the subsets of minimal diameter, the one returned
is the first in ``itertools.combinations(range(m), k)`` order (lexicographically smallest), found
greedily with the same feasibility test.

Reference for the vertex-cover search: Downey & Fellows, "Parameterized Complexity", 1999, §3.
"""

from __future__ import annotations

import numpy as np


def _cover_exists(adj: list[int], alive: int, budget: int) -> bool:
    """Whether the edges of H among the vertex set ``alive`` (bitmask) can be covered by
    ≤ ``budget`` vertices of ``alive``."""
    while True:
        best, best_deg = -1, 0
        forced = -1
        a = alive
        while a:
            low = a & -a
            v = low.bit_length() - 1
            a ^= low
            deg = (adj[v] & alive).bit_count()
            if deg > budget:
                forced = v
                break
            if deg > best_deg:
                best, best_deg = v, deg
        if forced >= 0:  # v has more conflicts than the budget: it must be removed
            alive &= ~(1 << forced)
            budget -= 1
            if budget < 0:
                return False
            continue
        if best_deg == 0:
            return True
        if budget == 0:
            return False
        v = best
        nbrs = adj[v] & alive
        # either v is removed, or all of its neighbours are
        if _cover_exists(adj, alive & ~(1 << v), budget - 1):
            return True
        k = nbrs.bit_count()
        if k > budget:
            return False
        alive &= ~nbrs & ~(1 << v)
        budget -= k


def _feasible(adj: list[int], m: int, k: int, keep: int = 0, drop: int = 0) -> bool:
    """A subset of size k containing ``keep`` (bitmask), avoiding ``drop``, with no H-edge inside."""
    budget = (m - k) - drop.bit_count()
    if budget < 0:
        return False
    alive = ((1 << m) - 1) & ~drop
    # kept vertices may not conflict with each other; their neighbours must all go
    conflicts = 0
    a = keep
    while a:
        low = a & -a
        v = low.bit_length() - 1
        a ^= low
        if adj[v] & keep:
            return False
        conflicts |= adj[v]
    conflicts &= alive
    budget -= conflicts.bit_count()
    if budget < 0:
        return False
    alive &= ~conflicts
    return _cover_exists(adj, alive & ~keep, budget)


def _conflicts(dist: np.ndarray, t: float) -> list[int]:
    m = dist.shape[0]
    over = dist > t
    np.fill_diagonal(over, False)
    return [int(sum(1 << j for j in np.flatnonzero(over[i]))) for i in range(m)]


def min_diameter_subset(dist: np.ndarray, k: int) -> tuple[int, ...]:
    """The lexicographically first k-subset of minimal diameter max_{i,j∈S} dist_ij (dist: a
    symmetric (m, m) array of distances or squared distances, zero diagonal)."""
    m = dist.shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"need 1 <= k <= m, got k={k}, m={m}")
    if k == 1:
        return (0,)
    dist = np.maximum(dist, dist.T)  # exact symmetry: the conflict graph must be undirected
    values = np.unique(dist[np.triu_indices(m, 1)])
    lo, hi = 0, len(values) - 1  # the largest value is always feasible
    while lo < hi:
        mid = (lo + hi) // 2
        if _feasible(_conflicts(dist, values[mid]), m, k):
            hi = mid
        else:
            lo = mid + 1
    adj = _conflicts(dist, values[lo])
    keep = drop = 0
    for i in range(m):
        if keep.bit_count() == k:
            break
        if _feasible(adj, m, k, keep | (1 << i), drop):
            keep |= 1 << i
        else:
            drop |= 1 << i
    chosen = tuple(i for i in range(m) if keep >> i & 1)
    if len(chosen) != k:  # pragma: no cover - the bisection guarantees a feasible subset
        raise RuntimeError(f"minimum-diameter search found {len(chosen)} of {k} points")
    return chosen


def subset_diameter(dist: np.ndarray, subset: tuple[int, ...]) -> float:
    idx = np.asarray(subset)
    return float(dist[np.ix_(idx, idx)].max()) if len(idx) > 1 else 0.0
