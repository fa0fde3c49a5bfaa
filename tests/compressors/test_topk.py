"""Top-k: exact selection and round trip, wire layout, hostile rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from byzmpi.compressors import build_compressor, pack_indices
from byzmpi.validation import ACCEPTED, BAD_INDEX, BAD_LENGTH, NON_FINITE

D, K = 50, 5


def _x(d: int = D, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _wire(values, indices) -> torch.Tensor:
    row = torch.empty(2 * len(values))
    row[: len(values)] = torch.tensor(values, dtype=torch.float32)
    pack_indices(torch.tensor(indices, dtype=torch.int64), row[len(values) :])
    return row


def test_wire_layout_is_values_then_increasing_int32_indices():
    comp = build_compressor("topk", D, 0, k=K)
    assert comp.wire_len == 2 * K and comp.wire_bytes == 8 * K
    assert not comp.unbiased and comp.omega is None and comp.delta == K / D
    x = _x()
    out = torch.empty(comp.wire_len)
    comp.encode(x, round=0, client=0, out=out)
    expect = torch.topk(x.abs(), K).indices.sort().values
    assert torch.equal(out[K:].view(torch.int32).long(), expect)
    assert torch.equal(out[:K], x[expect])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roundtrip_keeps_the_k_largest_exactly(dtype):
    comp = build_compressor("topk", D, 0, ratio=0.2)
    x = _x(dtype=dtype)
    q = comp.roundtrip(x, round=1, client=2)
    keep = torch.topk(x.abs(), comp.k).indices
    expect = torch.zeros_like(x)
    expect[keep] = x[keep].float().to(dtype)  # what float32 on the wire preserves
    assert q.dtype == dtype and torch.equal(q, expect)
    # contraction: ‖Q(x) − x‖² ≤ (1 − K/d)‖x‖²
    assert float((q - x).pow(2).sum()) <= (1 - comp.delta) * float(x.pow(2).sum()) + 1e-9


def test_identity_roundtrip_is_exact_in_float32():
    comp = build_compressor("identity", D, 0)
    assert comp.wire_len == D and comp.unbiased and comp.omega == 0.0 and comp.mask(0, 0) is None
    x = _x()
    assert torch.equal(comp.roundtrip(x, round=0, client=0), x)
    x64 = _x(dtype=torch.float64)
    assert torch.equal(comp.roundtrip(x64, round=0, client=0), x64.float().double())


def test_indices_above_the_denormal_range_and_near_d_survive():
    d = 2**24 + 10
    comp = build_compressor("topk", d, 0, k=3)
    x = torch.zeros(d)
    x[[0, 2**23 - 1, d - 1]] = torch.tensor([1.0, -2.0, 3.0])
    out = torch.empty(6)
    comp.encode(x, round=0, client=0, out=out)
    assert comp.reject_codes(out[None]).tolist() == [ACCEPTED]
    assert torch.equal(comp.decode(out, round=0, client=0), x)


def test_hostile_rows_get_the_right_codes_without_crashing():
    comp = build_compressor("topk", 10, 0, k=3)
    nan_pattern = 0x7FC00000
    rows = torch.stack(
        [
            _wire([1, 2, 3], [0, 4, 9]),  # honest
            _wire([1, float("nan"), 3], [0, 4, 9]),  # NaN value
            _wire([1, 2, float("inf")], [0, 4, 9]),  # Inf value
            _wire([1, 2, 3], [0, 4, 10]),  # index = d
            _wire([1, 2, 3], [-1, 4, 9]),  # negative index
            _wire([1, 2, 3], [4, 0, 4]),  # duplicate
            _wire([1, 2, 3], [nan_pattern, 0, 4]),  # NaN bit pattern in an index slot
            _wire([1, 2, 3], [0x7F800000, 0, 4]),  # +Inf bit pattern
            _wire([1, 2, 3], [-(2**31), 0, 4]),  # −0.0 bit pattern
            _wire([1, 2, 3], [9, 0, 4]),  # unsorted but distinct: accepted
            _wire([float("nan"), 2, 3], [5, 5, 99]),  # both wrong: NON_FINITE reported
        ]
    )
    codes = comp.reject_codes(rows)
    assert codes.dtype == torch.uint8
    assert codes.tolist() == [
        ACCEPTED,
        NON_FINITE,
        NON_FINITE,
        BAD_INDEX,
        BAD_INDEX,
        BAD_INDEX,
        BAD_INDEX,
        BAD_INDEX,
        BAD_INDEX,
        ACCEPTED,
        NON_FINITE,
    ]
    ok = codes == ACCEPTED
    dec = comp.decode_rows(rows[ok], np.array([0, 9]), 0)
    assert dec[0].tolist() == [1, 0, 0, 0, 2, 0, 0, 0, 0, 3]
    assert dec[1].tolist() == [2, 0, 0, 0, 3, 0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="reject_codes"):
        comp.decode_rows(rows[3:4], np.array([0]), 0)
    with pytest.raises(ValueError):
        comp.decode(rows[6], round=0, client=0)
    assert comp.reject_codes(torch.ones(2, 7)).tolist() == [BAD_LENGTH, BAD_LENGTH]


def test_k_equals_one_has_no_duplicate_check_but_a_range_check():
    comp = build_compressor("topk", 10, 0, k=1)
    rows = torch.stack([_wire([1.0], [3]), _wire([1.0], [10]), _wire([1.0], [0x7FC00001])])
    assert comp.reject_codes(rows).tolist() == [ACCEPTED, BAD_INDEX, BAD_INDEX]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_encode_matches_and_hostile_rows_do_not_assert():
    comp = build_compressor("topk", 1000, 0, k=50)
    x = _x(1000)
    out = torch.empty(comp.wire_len, device="cuda")
    comp.encode(x.cuda(), round=0, client=0, out=out)
    ref = torch.empty(comp.wire_len)
    comp.encode(x, round=0, client=0, out=ref)
    assert torch.equal(out.cpu(), ref)
    bad = out.clone().reshape(1, -1)
    bad[0, 50:51] = torch.tensor([5000], dtype=torch.int32, device="cuda").view(torch.float32)
    rows = torch.cat([out.reshape(1, -1), bad])
    assert comp.reject_codes(rows).tolist() == [ACCEPTED, BAD_INDEX]
    with pytest.raises(ValueError):
        comp.decode_rows(bad, np.array([0]), 0)
    torch.cuda.synchronize()  # the context is still usable
    assert torch.equal(comp.decode_rows(rows[:1], np.array([0]), 0)[0].cpu(), comp.decode(ref, round=0, client=0))
