"""int32 indices packed bit-for-bit into float32 slots (top-k's wire)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from byzmpi.compressors import bad_index_rows, pack_indices, unpack_indices

INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)


def _through_mpi_like_bytes(wire: torch.Tensor) -> torch.Tensor:
    """What a Gatherv of MPI.FLOAT does to a row: copies its bytes."""
    return torch.from_numpy(np.frombuffer(wire.numpy().tobytes(), dtype=np.float32).copy())


@settings(max_examples=200, deadline=None)
@given(st.lists(INT32, min_size=1, max_size=64))
def test_any_int32_survives_pack_copy_unpack(values):
    idx = torch.tensor(values, dtype=torch.int64)
    slots = torch.empty(len(values))
    pack_indices(idx, slots)
    copied = torch.empty_like(slots).copy_(slots)
    assert unpack_indices(copied).tolist() == values
    assert unpack_indices(_through_mpi_like_bytes(slots)).tolist() == values


def test_denormal_and_nan_patterns_survive_under_flush_to_zero():
    # 1 … 2^23 − 1 are denormal floats; 0x7F800000 is +Inf, 0x7FC00000 a quiet NaN, 0x7F800001 a
    # signalling NaN, 0x80000000 is −0.0 and 0xFFFFFFFF a negative NaN
    values = [0, 1, 2, 12345, 2**23 - 1, 2**23, 0x7F7FFFFF, 0x7F800000, 0x7F800001, 0x7FC00000, -(2**31), -1]
    idx = torch.tensor(values, dtype=torch.int64)
    slots = torch.empty(len(values))
    pack_indices(idx, slots)
    as_float = slots.tolist()
    assert as_float[1] != 0.0 and abs(as_float[1]) < 1.2e-38  # really a denormal on the wire
    # torch.set_flush_denormal returns whether the CPU supports it, not the previous mode:
    # restore the default (off) explicitly, or every later test runs with denormals flushed
    torch.set_flush_denormal(True)
    try:
        moved = torch.zeros(len(values))
        moved.copy_(slots)
        stacked = torch.stack([slots, moved])  # what the server's receive buffer holds
        assert unpack_indices(stacked[1]).tolist() == values
        assert unpack_indices(stacked)[0].tolist() == values
    finally:
        torch.set_flush_denormal(False)


def test_unpack_of_a_non_contiguous_slice_is_exact():
    rows = torch.zeros(3, 8)
    idx = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 2**23 - 5]])
    for i in range(3):
        pack_indices(idx[i], rows[i, 4:])
    assert torch.equal(unpack_indices(rows[:, 4:]), idx.to(torch.int32))


def test_bad_index_rows():
    d = 10
    idx = torch.tensor(
        [
            [0, 3, 9],  # fine
            [9, 0, 3],  # fine: unsorted but distinct
            [0, 3, 10],  # = d
            [-1, 3, 4],  # negative
            [2, 5, 2],  # duplicate
            [0x7FC00000, 1, 2],  # NaN bit pattern
        ],
        dtype=torch.int32,
    )
    assert bad_index_rows(idx, d).tolist() == [False, False, True, True, True, True]
    assert bad_index_rows(torch.tensor([[3], [10]], dtype=torch.int32), d).tolist() == [False, True]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.lists(st.lists(st.integers(-3, 14), min_size=4, max_size=4), min_size=1, max_size=6))
def test_bad_index_rows_matches_a_plain_definition(d, rows):
    expect = [any(not 0 <= v < d for v in r) or len(set(r)) < len(r) for r in rows]
    assert bad_index_rows(torch.tensor(rows, dtype=torch.int32), d).tolist() == expect
