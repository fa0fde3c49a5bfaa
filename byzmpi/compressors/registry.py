"""The catalogue of compressors and the interface every compressor implements.

A :class:`CompressorSpec` pairs a builder ``build(d, seed, **params) -> Compressor`` with its
declared parameters, so that config validation, ``byzmpi list`` and the docs read one fact; users
add their own with :func:`register_compressor`. A :class:`Compressor` is built once per run for a
model dimension d and the run's seed; every method is then a pure function of its arguments and of
(seed, round, client), so the client that encodes and the server that decodes agree without
talking (see :mod:`byzmpi.compressors` for the wire formats).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..params import Param
from ..registry import Registry
from ..validation import BAD_LENGTH, codes_from_finite, finite_rows

WIRE_DTYPE = torch.float32


class Compressor(ABC):
    """A compression operator Q: R^d → R^d and its fixed-length float32 wire format.

    Attributes (set by the subclass):

    * ``d``: model dimension; ``k``: coordinates a message carries (d for identity);
    * ``wire_len``: float32 slots on the wire per message (``wire_bytes`` = 4·wire_len, exactly
      what crosses MPI);
    * ``unbiased``: E Q(x) = x over the compressor's randomness;
    * ``omega``: variance constant, E‖Q(x) − x‖² ≤ ω‖x‖² (None when biased);
    * ``delta``: contraction constant, ‖Q(x) − x‖² ≤ (1 − δ)‖x‖² (None when not contractive);
    * ``shared_mask``: the coordinate set is the same for every client of a round.

    Conventions: ``encode`` reads x of any float dtype on any device and writes float32 into
    ``out`` (any device); ``decode`` / ``decode_rows`` return ``dtype`` on the wire's device.
    Rows given to ``decode_rows`` must have passed :meth:`reject_codes` (decode refuses indices
    outside [0, d) rather than crash, but does not re-check finiteness or duplicates).
    """

    name: str = ""
    d: int
    k: int
    wire_len: int
    unbiased: bool
    omega: float | None
    delta: float | None
    shared_mask: bool = False

    @property
    def wire_bytes(self) -> int:
        """Bytes of one message on the wire."""
        return 4 * self.wire_len

    @abstractmethod
    def encode(self, x: Tensor, *, round: int, client: int, out: Tensor) -> Tensor:
        """Client side: write client ``client``'s round-``round`` payload for x into ``out``; returns out."""

    @abstractmethod
    def decode_rows(
        self,
        wire_rows: Tensor,
        clients: np.ndarray,
        round: int,
        *,
        dtype: torch.dtype = torch.float32,
        out: Tensor | None = None,
    ) -> Tensor:
        """Server side: (m, wire_len) accepted rows, row i sent by ``clients[i]`` → (m, d) Q(x_i).

        ``out``: an (m, d) tensor on the wire's device to overwrite (its dtype wins over ``dtype``);
        reusing one saves the page faults of a fresh (m, d) allocation every round."""

    def decode(
        self, wire: Tensor, *, round: int, client: int, dtype: torch.dtype = torch.float32, out: Tensor | None = None
    ) -> Tensor:
        """Server side: one payload → Q(x) ∈ R^d (the same numbers as the matching row of decode_rows)."""
        rows_out = None if out is None else out.view(1, -1)
        return self.decode_rows(
            wire.reshape(1, -1), np.array([client], dtype=np.int64), round, dtype=dtype, out=rows_out
        )[0]

    def reject_codes(self, wire_rows: Tensor) -> Tensor:
        """uint8 code per received row (see :mod:`byzmpi.validation`): BAD_LENGTH when the row length
        is not wire_len, else NON_FINITE when a value slot is NaN/±Inf, else compressor-specific
        checks (top-k: BAD_INDEX), else ACCEPTED."""
        if wire_rows.dim() != 2 or wire_rows.dtype != WIRE_DTYPE:
            raise ValueError(
                f"{self.name}: reject_codes takes float32 (m, L) rows as received, "
                f"got {wire_rows.dtype} {tuple(wire_rows.shape)}"
            )
        if wire_rows.shape[1] != self.wire_len:
            return torch.full((wire_rows.shape[0],), BAD_LENGTH, dtype=torch.uint8, device=wire_rows.device)
        return codes_from_finite(finite_rows(wire_rows[:, : self.value_len]))

    @property
    def value_len(self) -> int:
        """Slots of the wire that hold float values (the rest, if any, hold packed indices)."""
        return self.wire_len

    def roundtrip(self, x: Tensor, *, round: int, client: int) -> Tensor:
        """decode(encode(x)) in x's dtype on x's device: what the server will reconstruct, for client
        state that must stay equal to the server's copy (DASHA: g_i += m_i). Bit-identical to the
        server's ``decode(..., dtype=x.dtype)`` of the same payload."""
        wire = torch.empty(self.wire_len, dtype=WIRE_DTYPE, device=x.device)
        self.encode(x, round=round, client=client, out=wire)
        return self.decode(wire, round=round, client=client, dtype=x.dtype)

    def mask(self, round: int, client: int) -> Tensor | None:
        """Sorted int64 indices (CPU) client ``client`` may write in round ``round``; None when it may
        write any coordinate (identity, top-k)."""
        return None

    # -- shared checks -------------------------------------------------------------------------
    def _check_x(self, x: Tensor) -> None:
        if x.dim() != 1 or x.shape[0] != self.d:
            raise ValueError(f"{self.name}: expected a vector of length d={self.d}, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{self.name}: expected a float tensor, got {x.dtype}")

    def _check_out(self, out: Tensor) -> None:
        if out.dtype != WIRE_DTYPE or out.dim() != 1 or out.shape[0] != self.wire_len:
            raise ValueError(
                f"{self.name}: out must be float32 of length wire_len={self.wire_len}, "
                f"got {out.dtype} {tuple(out.shape)}"
            )

    def _check_rows(self, wire_rows: Tensor, clients: np.ndarray) -> None:
        if wire_rows.dtype != WIRE_DTYPE or wire_rows.dim() != 2 or wire_rows.shape[1] != self.wire_len:
            raise ValueError(
                f"{self.name}: wire rows must be float32 (m, {self.wire_len}), "
                f"got {wire_rows.dtype} {tuple(wire_rows.shape)}"
            )
        if len(clients) != wire_rows.shape[0]:
            raise ValueError(f"{self.name}: {wire_rows.shape[0]} rows but {len(clients)} client ids")

    def _output(self, wire_rows: Tensor, dtype: torch.dtype, out: Tensor | None) -> Tensor:
        """A zeroed (m, d) result: ``out`` when given (checked), else a fresh tensor on the wire's device."""
        m = wire_rows.shape[0]
        if out is None:
            return torch.zeros(m, self.d, dtype=dtype, device=wire_rows.device)
        if out.shape != (m, self.d) or out.device != wire_rows.device or not out.is_floating_point():
            raise ValueError(
                f"{self.name}: out must be a float ({m}, {self.d}) tensor on {wire_rows.device}, "
                f"got {out.dtype} {tuple(out.shape)} on {out.device}"
            )
        return out.zero_()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, k={self.k}, wire_len={self.wire_len})"


@dataclass(frozen=True)
class CompressorSpec:
    """A compressor in the catalogue.

    ``build(d, seed, **params) -> Compressor`` (params resolved against ``params``; raises
    ValueError for an inconsistent combination); ``check(params, d=None) -> str | None``: the same
    consistency check as a message, for config validation before d is known (d=None) or after.
    """

    name: str
    build: Callable[..., Compressor]
    doc: str
    params: dict[str, Param] = field(default_factory=dict)
    check: Callable[..., str | None] = lambda params, d=None: None


COMPRESSORS: Registry[CompressorSpec] = Registry("compressor", "compressor")


def register_compressor(spec: CompressorSpec, *, replace: bool = False) -> CompressorSpec:
    """Add ``spec`` to the catalogue (a user's own compressor included); refuses to shadow one silently."""
    return COMPRESSORS.register(spec, replace=replace)


def build_compressor(name: str, d: int, seed: int, **params: Any) -> Compressor:
    """Look ``name`` up, fill declared defaults (the registry's one path), and build it for
    dimension d and the run's seed."""
    return COMPRESSORS.lookup(name).build(d, seed, **COMPRESSORS.resolve(name, params))
