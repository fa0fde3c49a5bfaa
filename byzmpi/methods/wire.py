"""What a method sends on the wire in a round, through its compressor.

Methods that compress keep two codecs: ``compressor`` (configured) and, for methods whose full
rounds send uncompressed full gradients (Byz-VR-MARINA, its PP variant, DASHA's start), an
``identity`` one. The round loop asks the method, per round, for the payload width, the server's
validation, the decoding, and — for Byzantine messages — what a client can actually make the
server decode (:meth:`WireMixin.writable`): an attacker picks any values, but only on the
coordinates its payload can carry.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..compressors import Compressor, Identity
from ..plan import RoundPlan


class WireMixin:
    compressor: Compressor
    dense: Identity  # the uncompressed codec of full rounds
    full_rounds_dense: bool = False  # full rounds (coin = 1) travel uncompressed

    def codec(self, plan: RoundPlan) -> Compressor:
        return self.dense if plan.full and self.full_rounds_dense else self.compressor

    def wire_len(self, plan: RoundPlan) -> int:
        return self.codec(plan).wire_len

    @property
    def max_wire_len(self) -> int:
        return max(self.compressor.wire_len, self.dense.wire_len if self.full_rounds_dense else 0)

    def reject_codes(self, wire: Tensor, plan: RoundPlan) -> Tensor:
        return self.codec(plan).reject_codes(wire)

    def decode(
        self, wire: Tensor, clients: np.ndarray, plan: RoundPlan, dtype: torch.dtype, out: Tensor | None = None
    ) -> Tensor:
        """The accepted payloads as dense (m, d) rows (into ``out`` when given)."""
        return self.codec(plan).decode_rows(wire, clients, plan.round, dtype=dtype, out=out)

    def writable(self, v: Tensor, plan: RoundPlan, client: int) -> Tensor:
        """The closest vector to ``v`` a client can make the server decode this round: v on its mask
        (rand-k), the K largest |v_j| (top-k), v itself (identity)."""
        codec = self.codec(plan)
        mask = codec.mask(plan.round, client)
        if mask is None:
            return codec.roundtrip(v, round=plan.round, client=client).to(v.dtype)
        out = torch.zeros_like(v)
        idx = mask.to(v.device)
        out[idx] = v[idx]
        return out

    def encode_writable(self, v: Tensor, plan: RoundPlan, client: int, out: Tensor) -> None:
        """Write the payload whose decoding is ``writable(v)`` (local attacks)."""
        codec = self.codec(plan)
        scale = getattr(codec, "scale", 1.0)  # rand-k decodes values × d/K
        codec.encode(v / scale if scale != 1.0 else v, round=plan.round, client=client, out=out)
