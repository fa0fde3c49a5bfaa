"""Top-k: keep the K largest-magnitude coordinates (biased, contractive).

Q(x) = Σ_{j∈S} x_j e_j with S the K indices of largest |x_j| (ties: whatever ``torch.topk`` picks
on the client's device; the server only reads what was sent). Not unbiased; contractive,
‖Q(x) − x‖² ≤ (1 − K/d)‖x‖², so δ = K/d [Stich et al. NeurIPS 2018; used by Byz-EF21 in Rammal
et al. AISTATS 2024].

Wire (wire_len = 2K float32 slots): ``[v_1 … v_K | i_1 … i_K]``, indices increasing, the values
at those indices as float32, the indices as int32 packed bit-for-bit (see :mod:`.packing`).
The server trusts nothing: :meth:`TopK.reject_codes` gives NON_FINITE for a non-finite value and
BAD_INDEX for an index outside [0, d) (negative and NaN/Inf bit patterns included) or repeated.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..validation import ACCEPTED, BAD_INDEX
from .packing import bad_index_rows, pack_indices, unpack_indices
from .registry import Compressor, CompressorSpec, register_compressor
from .sparsity import SPARSITY_PARAMS, keep_count, sparsity_problem


class TopK(Compressor):
    """Top-k with values and int32-packed indices on the wire."""

    name = "topk"
    unbiased = False
    omega = None

    def __init__(self, d: int, seed: int = 0, *, k: int | None = None, ratio: float | None = None) -> None:
        self.d = int(d)
        self.k = keep_count(self.d, k=k, ratio=ratio)
        self.wire_len = 2 * self.k
        self.delta = self.k / self.d
        self.seed = seed

    @property
    def value_len(self) -> int:
        return self.k

    def select(self, x: Tensor) -> Tensor:
        """Increasing int64 indices of the K largest |x_j| (on x's device)."""
        return torch.topk(x.abs(), self.k, sorted=False).indices.sort().values

    def encode(self, x: Tensor, *, round: int, client: int, out: Tensor) -> Tensor:
        self._check_x(x)
        self._check_out(out)
        idx = self.select(x)
        out[: self.k].copy_(x.index_select(0, idx))
        pack_indices(idx, out[self.k :])
        return out

    def indices(self, wire_rows: Tensor) -> Tensor:
        """(m, K) int32 indices held by (m, 2K) wire rows (untrusted until :meth:`reject_codes`)."""
        return unpack_indices(wire_rows[:, self.k :])

    def reject_codes(self, wire_rows: Tensor) -> Tensor:
        codes = super().reject_codes(wire_rows)
        if wire_rows.shape[1] != self.wire_len:
            return codes
        bad = bad_index_rows(self.indices(wire_rows), self.d) & (codes == ACCEPTED)
        return codes.masked_fill_(bad, BAD_INDEX)

    def decode_rows(
        self,
        wire_rows: Tensor,
        clients: np.ndarray,
        round: int,
        *,
        dtype: torch.dtype = torch.float32,
        out: Tensor | None = None,
    ) -> Tensor:
        """Row i → Σ_j v_ij e_{i_ij}. Refuses (ValueError) any index outside [0, d) rather than crash;
        duplicates must have been rejected by :meth:`reject_codes` (else which value lands is unspecified)."""
        self._check_rows(wire_rows, clients)
        idx = self.indices(wire_rows)
        if bool(((idx < 0) | (idx >= self.d)).any()):
            raise ValueError("topk: index outside [0, d) in decode; validate rows with reject_codes first")
        out = self._output(wire_rows, dtype, out)
        if wire_rows.shape[0] == 0:
            return out
        return out.scatter_(1, idx.long(), wire_rows[:, : self.k].to(out.dtype))


register_compressor(
    CompressorSpec(
        "topk",
        lambda d, seed, k=None, ratio=None: TopK(d, seed, k=k, ratio=ratio),
        "Top-k by magnitude (biased, δ = K/d); K values and K int32 indices packed into 2K float32 slots.",
        dict(SPARSITY_PARAMS),
        check=sparsity_problem,
    )
)
