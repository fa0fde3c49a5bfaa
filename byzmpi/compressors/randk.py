"""Rand-k: keep K coordinates chosen uniformly without replacement, scaled by d/K.

Q(x) = (d/K)·Σ_{j∈S} x_j e_j with S a uniform K-subset of [d]. Unbiased, E‖Q(x) − x‖² = (d/K − 1)‖x‖²,
so ω = d/K − 1; density ζ = K [Gorbunov et al. ICLR 2023; Rammal et al. AISTATS 2024, §1.3 of the spec].

Wire: the K values x_S in increasing index order as float32 (wire_len = K; scaling happens on the
server). The indices never travel: S is a pure function of (seed, round, client) through the
``"mask"`` stream of :mod:`byzmpi.rng`, derived by :func:`~byzmpi.compressors.masks.random_subset`.

* ``randk``: independent masks, S_i^t from (seed, t, "mask", i) — DASHA, MARINA, PP.
* ``randk_coordinated``: one global mask per round, S^t from (seed, t, "mask") for every client —
  RoSDHB (Gupta et al. AISTATS 2026): all reconstructions share one K-dimensional subspace.

Masks are derived on the CPU with numpy (the same bits on every rank and device) and kept in a
small per-compressor cache, so encode + roundtrip + decode of one (round, client) derive it once.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor

from .. import rng
from .masks import random_subset
from .registry import Compressor, CompressorSpec, register_compressor
from .sparsity import SPARSITY_PARAMS, keep_count, sparsity_problem

MASK_PURPOSE = "mask"


class RandK(Compressor):
    """Rand-k with d/K scaling; ``coordinated=True`` gives every client of a round the same mask."""

    unbiased = True
    delta = None

    def __init__(
        self,
        d: int,
        seed: int,
        *,
        k: int | None = None,
        ratio: float | None = None,
        coordinated: bool = False,
        cache_size: int = 8,
    ) -> None:
        self.d = int(d)
        self.k = keep_count(self.d, k=k, ratio=ratio)
        self.wire_len = self.k
        self.seed = int(seed)
        self.shared_mask = bool(coordinated)
        self.name = "randk_coordinated" if coordinated else "randk"
        self.omega = self.d / self.k - 1.0
        self.scale = self.d / self.k
        self._cache: OrderedDict[tuple[int, int], Tensor] = OrderedDict()
        self._cache_size = cache_size

    def mask(self, round: int, client: int) -> Tensor:
        """Sorted int64 CPU tensor S (|S| = K) of round ``round`` for ``client`` (ignored when
        coordinated); a copy, so the caller may modify it."""
        return self._mask(round, client).clone()

    def _mask(self, round: int, client: int) -> Tensor:
        """The cached mask itself (never modified in place)."""
        key = (int(round), rng.NO_CLIENT if self.shared_mask else int(client))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        gen = rng.generator(self.seed, key[0], MASK_PURPOSE, key[1])
        idx = torch.from_numpy(random_subset(gen, self.d, self.k))
        self._cache[key] = idx
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return idx

    def encode(self, x: Tensor, *, round: int, client: int, out: Tensor) -> Tensor:
        """out = x_S (float32), S = mask(round, client)."""
        self._check_x(x)
        self._check_out(out)
        idx = self._mask(round, client).to(x.device, non_blocking=True)
        return out.copy_(x.index_select(0, idx))

    def decode_rows(
        self,
        wire_rows: Tensor,
        clients: np.ndarray,
        round: int,
        *,
        dtype: torch.dtype = torch.float32,
        out: Tensor | None = None,
    ) -> Tensor:
        """Row i → (d/K)·Σ_{j∈S_i} v_ij e_j in ``dtype`` (values and d/K both in dtype, one rounding).

        An accepted (finite) value with |v|·d/K > 3.4e38 overflows to ±Inf in float32: a server
        decoding in float32 must re-check finiteness of the decoded rows."""
        self._check_rows(wire_rows, clients)
        dev = wire_rows.device
        m = wire_rows.shape[0]
        out = self._output(wire_rows, dtype, out)
        dtype = out.dtype
        vals = wire_rows.to(dtype) * torch.tensor(self.scale, dtype=dtype, device=dev)
        if m == 0:
            return out
        if self.shared_mask:
            out.index_copy_(1, self._mask(round, rng.NO_CLIENT).to(dev), vals)
        else:
            idx = torch.stack([self._mask(round, int(c)) for c in clients]).to(dev)
            out.scatter_(1, idx, vals)
        return out


def _spec(name: str, coordinated: bool, doc: str) -> CompressorSpec:
    return CompressorSpec(
        name,
        lambda d, seed, k=None, ratio=None: RandK(d, seed, k=k, ratio=ratio, coordinated=coordinated),
        doc,
        dict(SPARSITY_PARAMS),
        check=sparsity_problem,
    )


register_compressor(
    _spec(
        "randk",
        False,
        "Rand-k, independent mask per client from (seed, round, client); "
        "K values travel, scaled by d/K on the server (ω = d/K − 1).",
    )
)
register_compressor(
    _spec(
        "randk_coordinated",
        True,
        "Rand-k with one global mask per round for all clients (RoSDHB); K values travel, scaled by d/K (ω = d/K − 1).",
    )
)
