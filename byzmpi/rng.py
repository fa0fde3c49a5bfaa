"""Counter-based random streams.

Every random draw in byzmpi is a pure function of ``(seed, round, purpose, client)``: the four
numbers are hashed by numpy's ``SeedSequence`` into the key of a fresh Philox stream. No generator
state is carried from one round to the next, so

* every rank computes the same round plan without talking to the others,
* a client's minibatches and masks do not depend on which rank hosts it, and
* a run resumed at round k draws exactly what the uninterrupted run drew at round k.

``purpose`` is a short name (``"sample"``, ``"batch"``, ``"attack"``...); its CRC-32 is part of the
key, so adding a purpose never shifts the draws of another.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: client id used for draws that belong to the round, not to one client
NO_CLIENT = -1
#: round id used for draws made once, before the first round (data, Byzantine ids, init)
SETUP_ROUND = -1


def seed_sequence(seed: int, round_: int, purpose: str, client: int = NO_CLIENT) -> np.random.SeedSequence:
    """The SeedSequence keyed by (seed, round, purpose, client); round and client may be -1."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return np.random.SeedSequence([seed, zlib.crc32(purpose.encode()), round_ + 1, client + 1])


def generator(seed: int, round_: int, purpose: str, client: int = NO_CLIENT) -> np.random.Generator:
    """A numpy Philox generator for (seed, round, purpose, client)."""
    return np.random.Generator(np.random.Philox(seed_sequence(seed, round_, purpose, client)))


def torch_seed(seed: int, round_: int, purpose: str, client: int = NO_CLIENT) -> int:
    """A 63-bit integer seed for torch generators, derived from the same key."""
    state = seed_sequence(seed, round_, purpose, client).generate_state(1, np.uint64)[0]
    return int(state) & ((1 << 63) - 1)


def torch_generator(
    seed: int, round_: int, purpose: str, client: int = NO_CLIENT, device: str | torch.device = "cpu"
) -> torch.Generator:
    """A torch generator on ``device`` seeded from (seed, round, purpose, client)."""
    import torch  # here, so that the numpy-only parts (round plans) load without torch

    gen = torch.Generator(device=device)
    gen.manual_seed(torch_seed(seed, round_, purpose, client))
    return gen
