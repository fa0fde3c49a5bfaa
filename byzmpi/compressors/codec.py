"""The wire format of a method's rounds, owned by the compressor side.

A method says what its clients send (a dense vector) and which of its rounds travel uncompressed;
a :class:`WireCodec` does everything else with the bytes: the payload width of a round, encoding
on the client, validation and decoding on the server, and — for Byzantine messages — what a client
can actually make the server decode (:meth:`WireCodec.writable`): an attacker picks any values,
but only on the coordinates its payload can carry.

``dense_rounds``: ``"never"`` (every round through the configured compressor), ``"full"`` (full
rounds, coin = 1, send uncompressed full gradients: Byz-VR-MARINA and its PP variant), ``"first"``
(round 0 is uncompressed: Byz-DASHA-PAGE's start).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..plan import RoundPlan
from .identity import Identity
from .registry import Compressor

DENSE_ROUNDS = ("never", "full", "first")


@dataclass(frozen=True)
class WireCodec:
    compressor: Compressor
    dense_rounds: str = "never"
    dense: Compressor = field(init=False)

    def __post_init__(self) -> None:
        if self.dense_rounds not in DENSE_ROUNDS:
            raise ValueError(f"dense_rounds must be one of {DENSE_ROUNDS}, got {self.dense_rounds!r}")
        object.__setattr__(self, "dense", Identity(self.compressor.d))

    def for_round(self, plan: RoundPlan) -> Compressor:
        """The compressor of this round's messages."""
        if (self.dense_rounds == "full" and plan.full) or (self.dense_rounds == "first" and plan.round == 0):
            return self.dense
        return self.compressor

    def wire_len(self, plan: RoundPlan) -> int:
        """float32 slots of one message this round."""
        return self.for_round(plan).wire_len

    @property
    def max_wire_len(self) -> int:
        """The widest message of any round (the size of the receive buffers)."""
        return max(self.compressor.wire_len, self.dense.wire_len if self.dense_rounds != "never" else 0)

    # -- client side ----------------------------------------------------------------------------
    def encode(self, v: Tensor, plan: RoundPlan, client: int, out: Tensor) -> None:
        """Write client ``client``'s payload for the dense vector v into ``out``."""
        self.for_round(plan).encode(v, round=plan.round, client=client, out=out)

    def roundtrip(self, v: Tensor, plan: RoundPlan, client: int) -> Tensor:
        """decode(encode(v)): what the server will reconstruct (for client state that must match
        the server's copy, DASHA's g_i)."""
        return self.for_round(plan).roundtrip(v, round=plan.round, client=client)

    # -- server side ----------------------------------------------------------------------------
    def reject_codes(self, wire: Tensor, plan: RoundPlan) -> Tensor:
        """uint8 reject code per received row (see :mod:`byzmpi.validation`)."""
        return self.for_round(plan).reject_codes(wire)

    def decode(
        self, wire: Tensor, clients: np.ndarray, plan: RoundPlan, dtype: torch.dtype, out: Tensor | None = None
    ) -> Tensor:
        """The accepted payloads as dense (m, d) rows (into ``out`` when given)."""
        return self.for_round(plan).decode_rows(wire, clients, plan.round, dtype=dtype, out=out)

    # -- what a Byzantine payload can carry ------------------------------------------------------
    def writable(self, v: Tensor, plan: RoundPlan, client: int) -> Tensor:
        """The closest vector to ``v`` a client can make the server decode this round: v on its mask
        (rand-k), the K largest |v_j| (top-k), v itself (identity)."""
        codec = self.for_round(plan)
        mask = codec.mask(plan.round, client)
        if mask is None:
            return codec.roundtrip(v, round=plan.round, client=client).to(v.dtype)
        out = torch.zeros_like(v)
        idx = mask.to(v.device)
        out[idx] = v[idx]
        return out

    def encode_writable(self, v: Tensor, plan: RoundPlan, client: int, out: Tensor) -> None:
        """Write the payload whose decoding is ``writable(v)`` (local attacks)."""
        codec = self.for_round(plan)
        scale = float(getattr(codec, "scale", 1.0))  # rand-k decodes values × d/K
        codec.encode(v / scale if scale != 1.0 else v, round=plan.round, client=client, out=out)
