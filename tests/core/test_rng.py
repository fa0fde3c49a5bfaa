"""Counter-based streams: every draw is a pure function of (seed, round, purpose, client)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from byzmpi import rng


def draws(*key, n=8):
    return rng.generator(*key).random(n)


def test_same_key_gives_same_draws():
    assert np.array_equal(draws(7, 3, "batch", 2), draws(7, 3, "batch", 2))
    # no hidden state: a draw made in between changes nothing
    rng.generator(7, 3, "batch", 2).random(1000)
    assert np.array_equal(draws(7, 3, "batch", 2), draws(7, 3, "batch", 2))


@pytest.mark.parametrize(
    "other",
    [
        (8, 3, "batch", 2),  # seed
        (7, 4, "batch", 2),  # round
        (7, 3, "attack", 2),  # purpose
        (7, 3, "batch", 3),  # client
        (7, 3, "batch", -1),  # round-level draw vs client 2
        (7, -1, "batch", 2),  # setup round vs round 3
    ],
)
def test_any_field_changes_the_stream(other):
    assert not np.array_equal(draws(7, 3, "batch", 2), draws(*other))


def test_no_collisions_over_a_grid_of_keys():
    keys = [
        (s, r, p, c) for s in (0, 1) for r in (-1, 0, 1, 2) for p in ("sample", "coin", "batch") for c in (-1, 0, 1, 2)
    ]
    firsts = {tuple(draws(*k, n=2)) for k in keys}
    assert len(firsts) == len(keys)
    seeds = {rng.torch_seed(*k) for k in keys}
    assert len(seeds) == len(keys)


def test_default_client_is_no_client():
    assert np.array_equal(draws(1, 2, "coin"), draws(1, 2, "coin", rng.NO_CLIENT))


def test_negative_seed_is_refused():
    with pytest.raises(ValueError, match="seed"):
        rng.generator(-1, 0, "x")


def test_torch_seed_fits_63_bits_and_is_stable():
    s = rng.torch_seed(5, 10, "attack", 4)
    assert 0 <= s < 2**63
    assert s == rng.torch_seed(5, 10, "attack", 4)
    assert s != rng.torch_seed(5, 10, "attack", 5)


def test_torch_generator_is_reproducible():
    a = torch.randn(16, generator=rng.torch_generator(3, 1, "attack", 0))
    b = torch.randn(16, generator=rng.torch_generator(3, 1, "attack", 0))
    c = torch.randn(16, generator=rng.torch_generator(3, 1, "attack", 1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert rng.torch_generator(3, 1, "attack", 0).initial_seed() == rng.torch_seed(3, 1, "attack", 0)
