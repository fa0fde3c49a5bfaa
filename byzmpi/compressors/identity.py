"""The identity compressor: the dense vector itself."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .registry import Compressor, CompressorSpec, register_compressor


class Identity(Compressor):
    """Q(x) = x. Wire: the d values as float32 (wire_len = d). Unbiased, ω = 0, δ = 1.

    ``roundtrip`` is x rounded to float32 and back: exactly what the server reads.
    """

    name = "identity"
    unbiased = True
    omega = 0.0
    delta = 1.0
    shared_mask = True

    def __init__(self, d: int, seed: int = 0) -> None:
        if d < 1:
            raise ValueError(f"identity: d must be >= 1, got {d}")
        self.d = self.k = self.wire_len = int(d)
        self.seed = seed

    def encode(self, x: Tensor, *, round: int, client: int, out: Tensor) -> Tensor:
        self._check_x(x)
        self._check_out(out)
        return out.copy_(x)

    def decode_rows(
        self,
        wire_rows: Tensor,
        clients: np.ndarray,
        round: int,
        *,
        dtype: torch.dtype = torch.float32,
        out: Tensor | None = None,
    ) -> Tensor:
        self._check_rows(wire_rows, clients)
        if out is None:
            return wire_rows.to(dtype=dtype, copy=True)
        return self._output(wire_rows, dtype, out).copy_(wire_rows)


register_compressor(
    CompressorSpec(
        "identity", lambda d, seed: Identity(d, seed), "No compression: the d values travel as float32 (wire_len = d)."
    )
)
