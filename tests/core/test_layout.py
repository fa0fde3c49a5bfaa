"""Client placement on ranks, round members and the gather order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byzmpi.layout import Layout


def test_one_client_per_rank():
    lay = Layout(8, 9)
    assert lay.host.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert lay.host_of(0) == 1 and lay.host_of(7) == 8
    assert lay.clients_of(0).size == 0
    assert lay.clients_of(3).tolist() == [2]


def test_several_clients_per_rank_in_contiguous_blocks():
    lay = Layout(10, 4)  # 3 hosts: [0, 3), [3, 6), [6, 10)  (h*n//H)
    assert lay.host.tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    assert lay.clients_of(1).tolist() == [0, 1, 2]
    assert lay.clients_of(3).tolist() == [6, 7, 8, 9]
    lay = Layout(20, 5)
    assert [lay.clients_of(r).tolist() for r in range(1, 5)] == [list(range(i, i + 5)) for i in (0, 5, 10, 15)]


def test_more_ranks_than_clients_leaves_the_last_ranks_idle():
    lay = Layout(3, 7)
    assert lay.host.tolist() == [1, 2, 3]
    for r in (0, 4, 5, 6):
        assert lay.clients_of(r).size == 0


def test_fewer_than_two_ranks_is_refused():
    with pytest.raises(ValueError, match="at least 2 ranks"):
        Layout(4, 1)


def test_members_and_rows_per_member():
    lay = Layout(10, 4)
    sampled = np.array([1, 2, 7, 9])
    assert lay.members(sampled) == [0, 1, 3]
    assert lay.rows_per_member(sampled) == [0, 2, 2]
    assert lay.members(np.array([4])) == [0, 2]
    assert lay.rows_per_member(np.array([4])) == [0, 1]


def test_host_array_is_read_only():
    lay = Layout(4, 3)
    with pytest.raises(ValueError):
        lay.host[0] = 2


@st.composite
def layouts_and_samples(draw):
    n = draw(st.integers(1, 40))
    ranks = draw(st.integers(2, 50))
    sampled = sorted(draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n)))
    return Layout(n, ranks), np.array(sampled, dtype=np.int64)


@settings(max_examples=200, deadline=None)
@given(layouts_and_samples())
def test_member_order_concatenation_gives_sorted_sampled_ids(case):
    lay, sampled = case
    members = lay.members(sampled)
    rows = lay.rows_per_member(sampled)
    assert members[0] == 0 and rows[0] == 0
    assert members == sorted(set(members)) and len(rows) == len(members)
    concatenated = np.concatenate([sampled[lay.host[sampled] == r] for r in members[1:]])
    assert np.array_equal(concatenated, sampled)
    assert [int(np.sum(lay.host[sampled] == r)) for r in members[1:]] == rows[1:]
    assert sum(rows) == sampled.size


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 60), st.integers(2, 70))
def test_block_distribution_properties(n, ranks):
    lay = Layout(n, ranks)
    hosts = min(ranks - 1, n)
    counts = [lay.clients_of(r).size for r in range(1, ranks)]
    assert sum(counts) == n
    assert counts[hosts:] == [0] * (ranks - 1 - hosts)
    assert max(counts[:hosts]) - min(counts[:hosts]) <= 1
    assert np.all(np.diff(lay.host) >= 0)  # contiguous, ascending
    for h in range(hosts):
        assert lay.clients_of(h + 1).tolist() == list(range(h * n // hosts, (h + 1) * n // hosts))
