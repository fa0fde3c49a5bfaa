"""The catalogue, and properties every registered compressor shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from byzmpi.compressors import COMPRESSORS, CompressorSpec, build_compressor, register_compressor
from byzmpi.compressors.identity import Identity
from byzmpi.params import resolve_params

SPARSE = {"randk": {"ratio": 0.1}, "randk_coordinated": {"k": 13}, "topk": {"ratio": 0.25}, "identity": {}}
WIRE_LEN = {
    "randk": lambda d, k: k,
    "randk_coordinated": lambda d, k: k,
    "topk": lambda d, k: 2 * k,
    "identity": lambda d, k: d,
}


def test_catalogue_lists_the_builtin_compressors_with_their_params():
    assert set(SPARSE) <= set(COMPRESSORS)
    for name in ("randk", "randk_coordinated", "topk"):
        assert set(COMPRESSORS[name].params) == {"k", "ratio"}
        assert COMPRESSORS[name].check({"k": None, "ratio": None}) is not None
        assert COMPRESSORS[name].check({"k": 5, "ratio": None}) is None
        assert "exceeds" in COMPRESSORS[name].check({"k": 5, "ratio": None}, 4)
    assert COMPRESSORS["identity"].params == {}
    # declared params go through the common config validation
    assert resolve_params(COMPRESSORS["randk"].params, {"ratio": 0.1}, "compressor", "randk") == {
        "k": None,
        "ratio": 0.1,
    }


def test_register_refuses_to_shadow_and_accepts_a_new_name():
    with pytest.raises(ValueError):
        register_compressor(CompressorSpec("identity", lambda d, seed: Identity(d), "dup"))
    spec = register_compressor(CompressorSpec("test-identity-copy", lambda d, seed: Identity(d), "copy"))
    try:
        assert build_compressor("test-identity-copy", 4, 0).wire_len == 4
    finally:
        del COMPRESSORS[spec.name]
    with pytest.raises(ValueError):
        build_compressor("nope", 4, 0)
    with pytest.raises(ValueError):
        build_compressor("randk", 4, 0, k=2, kk=3)


@pytest.mark.parametrize("name", list(SPARSE))
def test_decode_rows_equals_per_row_decode_and_honest_rows_are_accepted(name):
    d = 200
    comp = build_compressor(name, d, 17, **SPARSE[name])
    assert comp.wire_len == WIRE_LEN[name](d, comp.k)
    clients = np.array([5, 1, 8, 3, 0, 12])
    gen = torch.Generator().manual_seed(3)
    wire = torch.empty(len(clients), comp.wire_len)
    for i, c in enumerate(clients):
        comp.encode(torch.randn(d, generator=gen), round=6, client=int(c), out=wire[i])
    assert comp.reject_codes(wire).tolist() == [0] * len(clients)
    for dtype in (torch.float32, torch.float64):
        rows = comp.decode_rows(wire, clients, 6, dtype=dtype)
        assert rows.shape == (len(clients), d) and rows.dtype == dtype
        for i, c in enumerate(clients):
            assert torch.equal(rows[i], comp.decode(wire[i], round=6, client=int(c), dtype=dtype))
    assert comp.decode_rows(wire[:0], clients[:0], 6).shape == (0, d)
    # a reused output buffer (dirty from last round) gives the same numbers; its dtype wins
    for dtype in (torch.float32, torch.float64):
        buf = torch.full((len(clients), d), 7.0, dtype=dtype)
        got = comp.decode_rows(wire, clients, 6, out=buf)
        assert got is buf and torch.equal(buf, comp.decode_rows(wire, clients, 6, dtype=dtype))
        one = torch.full((d,), -1.0, dtype=dtype)
        comp.decode(wire[2], round=6, client=int(clients[2]), out=one)
        assert torch.equal(one, buf[2])
    with pytest.raises(ValueError):
        comp.decode_rows(wire, clients, 6, out=torch.zeros(len(clients), d + 1))


@pytest.mark.parametrize("name", list(SPARSE))
def test_shape_and_dtype_misuse_is_refused(name):
    comp = build_compressor(name, 40, 0, **SPARSE[name])
    out = torch.empty(comp.wire_len)
    with pytest.raises(ValueError):
        comp.encode(torch.zeros(41), round=0, client=0, out=out)
    with pytest.raises(ValueError):
        comp.encode(torch.zeros(40), round=0, client=0, out=torch.empty(comp.wire_len + 1))
    with pytest.raises(ValueError):
        comp.encode(torch.zeros(40), round=0, client=0, out=torch.empty(comp.wire_len, dtype=torch.float64))
    with pytest.raises(ValueError):
        comp.decode_rows(torch.zeros(2, comp.wire_len, dtype=torch.float64), np.array([0, 1]), 0)
    with pytest.raises(ValueError):
        comp.decode_rows(torch.zeros(2, comp.wire_len), np.array([0]), 0)
    with pytest.raises(ValueError):
        comp.reject_codes(torch.zeros(2, comp.wire_len, dtype=torch.float64))
    with pytest.raises(ValueError):
        comp.reject_codes(torch.zeros(comp.wire_len))


@pytest.mark.parametrize("name", list(SPARSE))
def test_mask_bounds_what_a_client_writes(name):
    comp = build_compressor(name, 64, 1, **SPARSE[name])
    q = comp.roundtrip(torch.randn(64, generator=torch.Generator().manual_seed(0)), round=2, client=3)
    mask = comp.mask(2, 3)
    if mask is None:
        return
    outside = torch.ones(64, dtype=torch.bool)
    outside[mask] = False
    assert mask.dtype == torch.int64 and len(mask) == comp.k and torch.all(q[outside] == 0)
