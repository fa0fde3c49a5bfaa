"""statefile: client states with python scalar fields survive pack/unpack (they travel from the
hosts to rank 0 at every checkpoint) and write_state/read_state, exactly and with their types."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import Tensor

from byzmpi.statefile import pack, packed_size, read_state, unpack_into, write_state


@dataclass
class Inner:
    h: Tensor
    steps: int


@dataclass
class ScalarClient:
    m: Tensor
    count: int
    lr: float
    seen: bool
    missing: Tensor | None
    inner: Inner
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FrozenClient:
    g: Tensor
    rounds: int
    norm: float


def template() -> ScalarClient:
    return ScalarClient(
        m=torch.zeros(5),
        count=0,
        lr=0.0,
        seen=False,
        missing=None,
        inner=Inner(h=torch.zeros(3, dtype=torch.bfloat16), steps=0),
        extra={"b": torch.zeros(2, dtype=torch.float64), "a": 0},
    )


def filled() -> ScalarClient:
    return ScalarClient(
        m=torch.arange(5, dtype=torch.float32) / 3,
        count=2**53 + 1,  # not exactly representable as a float64
        lr=0.1 + 2.0**-55,
        seen=True,
        missing=None,
        inner=Inner(h=torch.tensor([1.5, -2.25, 3.0], dtype=torch.bfloat16), steps=-7),
        extra={"b": torch.tensor([1e-300, -0.0], dtype=torch.float64), "a": 12},
    )


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def assert_same(a: ScalarClient, b: ScalarClient) -> None:
    assert torch.equal(a.m, b.m) and a.m.dtype == b.m.dtype
    assert a.count == b.count and type(a.count) is int
    assert bits(a.lr) == bits(b.lr) and type(a.lr) is float
    assert a.seen is b.seen is True
    assert a.missing is None and b.missing is None
    assert a.inner.h.dtype == torch.bfloat16 and torch.equal(a.inner.h, b.inner.h)
    assert a.inner.steps == b.inner.steps == -7 and type(a.inner.steps) is int
    assert torch.equal(a.extra["b"], b.extra["b"]) and math.copysign(1.0, float(a.extra["b"][1])) == -1.0
    assert a.extra["a"] == b.extra["a"] == 12 and type(a.extra["a"]) is int


def test_pack_carries_scalar_fields() -> None:
    src = filled()
    raw = pack(src)
    assert raw.dtype == np.uint8 and raw.size == packed_size(src) == packed_size(template())
    # 5 f4 + 3 bf16 + 2 f8 tensors, int64 count, float64 lr, 1-byte flag, int64 steps, int64 a
    assert raw.size == 20 + 6 + 16 + 8 + 8 + 1 + 8 + 8
    out = unpack_into(template(), raw)
    assert_same(out, src)


def test_unpack_fills_the_template_in_place() -> None:
    t = template()
    unpack_into(t, pack(filled()))
    assert_same(t, filled())


def test_frozen_dataclass_scalars_round_trip() -> None:
    src = FrozenClient(g=torch.ones(4), rounds=9, norm=float("inf"))
    t = FrozenClient(g=torch.zeros(4), rounds=0, norm=0.0)
    unpack_into(t, pack(src))
    assert t.rounds == 9 and t.norm == math.inf and torch.equal(t.g, src.g)


def test_nan_bits_survive_packing() -> None:
    odd_nan = struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0]
    src = FrozenClient(g=torch.zeros(1), rounds=1, norm=odd_nan)
    t = FrozenClient(g=torch.zeros(1), rounds=0, norm=0.0)
    unpack_into(t, pack(src))
    assert bits(t.norm) == bits(odd_nan)


def test_wrong_byte_count_is_refused() -> None:
    raw = pack(filled())
    with pytest.raises(ValueError, match="state bytes"):
        unpack_into(template(), raw[:-1])
    with pytest.raises(ValueError, match="state bytes"):
        unpack_into(template(), np.concatenate([raw, raw[:1]]))


def test_string_fields_cannot_be_packed() -> None:
    @dataclass
    class Named:
        name: str

    with pytest.raises(TypeError, match="name"):
        pack(Named("x"))


def test_write_and_read_state_round_trip_scalars(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        write_state(f.create_group("c"), filled())
    with h5py.File(path, "r") as f:
        out = read_state(f["c"], template())
    assert_same(out, filled())


def test_read_state_refuses_a_scalar_of_the_wrong_type(tmp_path: Path) -> None:
    from byzmpi.statefile import StateFileError

    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        write_state(f.create_group("c"), filled())
        f["c"].attrs["seen"] = 1  # an integer where the state has a boolean flag
    with h5py.File(path, "r") as f, pytest.raises(StateFileError, match="c/seen"):
        read_state(f["c"], template())


@dataclass
class Store:
    x: Tensor
    rows: Tensor = field(metadata={"finite": False})


def test_a_field_declared_non_finite_may_hold_inf(tmp_path: Path) -> None:
    from byzmpi.statefile import StateFileError

    path = tmp_path / "s.h5"
    src = Store(x=torch.ones(2), rows=torch.tensor([[1.0, float("inf")], [float("nan"), 0.0]]))
    with h5py.File(path, "w") as f:
        write_state(f.create_group("s"), src)
        write_state(f.create_group("bad"), Store(x=torch.tensor([float("nan"), 0.0]), rows=torch.zeros(2, 2)))
    with h5py.File(path, "r") as f:
        out = read_state(f["s"], Store(x=torch.zeros(2), rows=torch.zeros(2, 2)))
        assert out.rows.numpy().tobytes() == src.rows.numpy().tobytes()
        with pytest.raises(StateFileError, match="bad/x"):
            read_state(f["bad"], Store(x=torch.zeros(2), rows=torch.zeros(2, 2)))
