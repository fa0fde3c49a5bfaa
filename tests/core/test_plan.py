"""Round plans: coin, sample sizes, sorted distinct ids, Byzantine flags."""

from __future__ import annotations

import numpy as np
import pytest

from byzmpi.plan import Sampler, choose_byzantine, sample_clients


def make(**kw):
    args = dict(seed=4, n=20, per_round=5, full_round=12, p=0.0, byzantine_ids=np.array([1, 7, 13]))
    args.update(kw)
    return Sampler(**args)


def test_sizes_follow_the_coin():
    s = make(p=0.3)
    seen = set()
    for k in range(300):
        plan = s.plan(k)
        assert plan.full == s.coin(k)
        assert plan.m == (12 if plan.full else 5)
        seen.add(plan.full)
    assert seen == {True, False}


def test_p_zero_and_one():
    assert all(make(p=0.0).plan(k).m == 5 for k in range(50))
    assert all(make(p=1.0).plan(k).m == 12 for k in range(50))
    assert not any(make(p=0.0).coin(k) for k in range(50))


def test_first_full_forces_round_zero_only():
    s = make(p=0.0, first_full=True)
    assert s.coin(0) and s.plan(0).m == 12
    assert not any(s.coin(k) for k in range(1, 50))
    assert make(p=0.0).plan(0).m == 5


def test_sampled_ids_are_sorted_distinct_and_in_range():
    s = make(p=0.5)
    for k in range(200):
        ids = s.plan(k).sampled
        assert np.all(np.diff(ids) > 0)
        assert ids.min() >= 0 and ids.max() < 20


def test_full_sample_is_every_client():
    s = make(per_round=20, full_round=25)
    assert np.array_equal(s.plan(3).sampled, np.arange(20))
    assert np.array_equal(sample_clients(0, 0, 6, 6), np.arange(6))


def test_coin_frequency_is_p():
    p, rounds = 0.3, 4000
    freq = np.mean([make(p=p).coin(k) for k in range(rounds)])
    sigma = np.sqrt(p * (1 - p) / rounds)
    assert abs(freq - p) < 4 * sigma


def test_every_client_is_sampled_about_equally():
    s = make(p=0.0)
    counts = np.bincount(np.concatenate([s.plan(k).sampled for k in range(2000)]), minlength=20)
    expected = 2000 * 5 / 20  # 500, binomial sd ~ 19
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected * (1 - 5 / 20)))


def test_plan_is_a_pure_function_of_seed_and_round():
    a, b = make(p=0.4), make(p=0.4)
    for k in (17, 3, 0, 17):
        pa, pb = a.plan(k), b.plan(k)
        assert pa.full == pb.full and np.array_equal(pa.sampled, pb.sampled)
    assert any(not np.array_equal(make(seed=5).plan(k).sampled, make(seed=4).plan(k).sampled) for k in range(5))
    assert any(not np.array_equal(a.plan(k).sampled, a.plan(k + 1).sampled) for k in range(5))


def test_byzantine_flags_align_with_sampled():
    byz = np.array([1, 7, 13])
    s = make(byzantine_ids=byz, p=0.5)
    for k in range(100):
        plan = s.plan(k)
        assert plan.byzantine.dtype == bool and plan.byzantine.shape == plan.sampled.shape
        assert np.array_equal(plan.byzantine, np.isin(plan.sampled, byz))
        assert plan.n_byzantine == int(np.isin(plan.sampled, byz).sum())
    assert s.is_byzantine(7) and not s.is_byzantine(8)


@pytest.mark.parametrize(
    "p, first_full, expected",
    [
        (0.0, False, [5]),
        (0.0, True, [5, 12]),
        (0.5, False, [5, 12]),
        (1.0, False, [12]),
    ],
)
def test_possible_sizes(p, first_full, expected):
    assert make(p=p, first_full=first_full).possible_sizes() == expected


def test_possible_sizes_cap_at_n_and_cover_what_plans_produce():
    s = make(per_round=30, full_round=40, p=0.5)
    assert s.possible_sizes() == [20]
    s = make(p=0.2, first_full=True)
    assert {s.plan(k).m for k in range(200)} <= set(s.possible_sizes())


def test_choose_byzantine_is_deterministic_sorted_distinct():
    a = choose_byzantine(9, 50, 12)
    assert np.array_equal(a, choose_byzantine(9, 50, 12))
    assert a.size == 12 and np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 50
    assert not np.array_equal(a, choose_byzantine(10, 50, 12))
    assert choose_byzantine(9, 50, 0).size == 0
