"""Partitions of samples over clients."""

from __future__ import annotations

import numpy as np
import pytest

from byzmpi import rng
from byzmpi.errors import SetupError
from byzmpi.tasks.partition import partition


def gen(seed=0):
    return rng.generator(seed, rng.SETUP_ROUND, "partition")


def split(kind, n_samples=103, n_clients=5, labels=None, groups=None, alpha=1.0, seed=0, **kw):
    labels = np.arange(n_samples) % 3 if labels is None else labels
    return partition(
        kind, n_samples=n_samples, n_clients=n_clients, labels=labels, groups=groups, alpha=alpha, gen=gen(seed), **kw
    )


def assert_disjoint_cover(shards, n_samples):
    joined = np.concatenate(shards)
    assert joined.size == n_samples
    assert np.array_equal(np.sort(joined), np.arange(n_samples))
    for s in shards:
        assert np.all(np.diff(s) > 0)  # sorted, no repeats


def test_full_gives_everything_to_everyone():
    shards = split("full")
    assert len(shards) == 5 and all(np.array_equal(s, np.arange(103)) for s in shards)


def test_iid_is_a_seeded_near_equal_disjoint_cover():
    shards = split("iid")
    assert_disjoint_cover(shards, 103)
    assert sorted(s.size for s in shards) == [20, 20, 21, 21, 21]
    again, other = split("iid"), split("iid", seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(shards, again))
    assert not all(np.array_equal(a, b) for a, b in zip(shards, other))
    assert not np.array_equal(shards[0], np.arange(shards[0].size))  # shuffled, not the file's order


def test_strided_by_hand():
    shards = split("strided", n_samples=10, n_clients=3)
    assert [s.tolist() for s in shards] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


def test_natural_follows_groups():
    groups = np.array([2, 0, 1, 0, 2, 2])
    shards = split("natural", n_samples=6, n_clients=3, groups=groups)
    assert [s.tolist() for s in shards] == [[1, 3], [2], [0, 4, 5]]
    with pytest.raises(SetupError, match="natural"):
        split("natural", groups=None)


def test_natural_matches_its_definition_on_many_clients():
    # definition: client i holds {j : groups[j] = i}, ascending; ids outside [0, n) belong to no one
    g = np.random.default_rng(3).integers(-2, 1205, size=20_000)  # unsorted, some ids >= n, some < 0
    n = 1200
    shards = split("natural", n_samples=g.size, n_clients=n, groups=g)
    assert len(shards) == n
    for i, s in enumerate(shards):
        assert np.array_equal(s, np.flatnonzero(g == i)), i
    assert sum(s.size for s in shards) == int(((g >= 0) & (g < n)).sum())


def test_natural_refuses_non_integer_groups():
    with pytest.raises(SetupError, match="integer"):
        split("natural", n_samples=3, n_clients=2, groups=np.array([0.0, 1.0, 1.5]))


def test_unknown_partition():
    with pytest.raises(SetupError, match="unknown partition"):
        split("round_robin")


@pytest.mark.parametrize("alpha", [0.1, 1.0, 100.0])
def test_dirichlet_is_a_seeded_disjoint_cover_with_min_size(alpha):
    labels = np.repeat([0, 1, 2, 3], 100)
    shards = split("dirichlet", n_samples=400, n_clients=8, labels=labels, alpha=alpha, min_size=5)
    assert_disjoint_cover(shards, 400)
    assert min(s.size for s in shards) >= 5
    again = split("dirichlet", n_samples=400, n_clients=8, labels=labels, alpha=alpha, min_size=5)
    assert all(np.array_equal(a, b) for a, b in zip(shards, again))


def test_dirichlet_small_alpha_is_label_skewed():
    labels = np.repeat([0, 1, 2, 3], 250)

    def skew(alpha):
        shards = split("dirichlet", n_samples=1000, n_clients=10, labels=labels, alpha=alpha)
        # mean share of each client's most common class
        return np.mean([np.bincount(labels[s], minlength=4).max() / s.size for s in shards])

    assert skew(0.05) > 0.8 > 0.4 > skew(1000.0)


def test_dirichlet_impossible_min_size_is_a_setup_error():
    with pytest.raises(SetupError, match="task.alpha"):
        split("dirichlet", n_samples=6, n_clients=5, labels=np.zeros(6, dtype=int), alpha=0.01, min_size=2)
