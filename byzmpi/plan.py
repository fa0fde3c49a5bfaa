"""The round plan: which clients take part in round k and whether it is a full round.

Every rank computes ``Sampler.plan(k)`` on its own from the counter-based streams of
:mod:`byzmpi.rng`; no communication is needed to agree on it.

* Coin: ``c_k ~ Bernoulli(p)`` from stream ``(seed, k, "coin")`` (Byz-VR-MARINA-PP, Alg. 1, line 1).
  With ``first_full`` the coin of round 0 is forced to 1 (methods that start from g^0 = ∇f(x^0)).
* Sample: ``S_k`` uniform without replacement from ``[n]``, of size ``C = per_round`` when
  ``c_k = 0`` and ``Ĉ = full_round`` when ``c_k = 1``, from stream ``(seed, k, "sample")``.
  A sample of size n is all clients. The ids are returned sorted.
* Byzantine ids: drawn once from stream ``(seed, -1, "byzantine")`` unless listed explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import rng


@dataclass(frozen=True)
class RoundPlan:
    round: int
    full: bool
    sampled: np.ndarray  # sorted client ids
    byzantine: np.ndarray  # bool, aligned with ``sampled``

    @property
    def m(self) -> int:
        return int(self.sampled.size)

    @property
    def n_byzantine(self) -> int:
        return int(self.byzantine.sum())


def choose_byzantine(seed: int, n: int, count: int) -> np.ndarray:
    """``count`` Byzantine client ids out of ``n``, a pure function of the seed (sorted)."""
    gen = rng.generator(seed, rng.SETUP_ROUND, "byzantine")
    return np.sort(gen.choice(n, size=count, replace=False))


def sample_clients(seed: int, round_: int, n: int, size: int) -> np.ndarray:
    """``size`` distinct client ids out of ``n`` for round ``round_``, sorted."""
    if size >= n:
        return np.arange(n)
    gen = rng.generator(seed, round_, "sample")
    return np.sort(gen.choice(n, size=size, replace=False))


class Sampler:
    """Computes the :class:`RoundPlan` of any round from the seed alone."""

    def __init__(
        self,
        *,
        seed: int,
        n: int,
        per_round: int,
        full_round: int,
        p: float,
        byzantine_ids: np.ndarray,
        first_full: bool = False,
    ) -> None:
        self.seed, self.n, self.per_round, self.full_round, self.p = seed, n, per_round, full_round, p
        self.first_full = first_full
        self.byzantine_ids = np.asarray(byzantine_ids, dtype=np.int64)
        self._is_byz = np.zeros(n, dtype=bool)
        self._is_byz[self.byzantine_ids] = True

    def coin(self, k: int) -> bool:
        if self.first_full and k == 0:
            return True
        if self.p <= 0.0:
            return False
        if self.p >= 1.0:
            return True
        return bool(rng.generator(self.seed, k, "coin").random() < self.p)

    def plan(self, k: int) -> RoundPlan:
        full = self.coin(k)
        sampled = sample_clients(self.seed, k, self.n, self.full_round if full else self.per_round)
        return RoundPlan(round=k, full=full, sampled=sampled, byzantine=self._is_byz[sampled])

    def possible_sizes(self) -> list[int]:
        """Every sample size the sampler can produce (what config validation checks)."""
        sizes = set()
        if self.p < 1.0:
            sizes.add(min(self.per_round, self.n))
        if self.p > 0.0 or self.first_full:
            sizes.add(min(self.full_round, self.n))
        return sorted(sizes)

    def is_byzantine(self, client: int) -> bool:
        return bool(self._is_byz[client])
