"""Rand-k (independent and coordinated masks): unbiasedness, variance, mask laws, wire and decode."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from byzmpi.compressors import RandK, build_compressor
from byzmpi.validation import ACCEPTED, BAD_LENGTH, NON_FINITE

from .stats import Z, chi2_upper, subset_chi2

D, K = 10, 3
X = torch.tensor([3.0, -1.0, 0.5, 2.0, -4.0, 0.0, 1.5, -2.5, 1.0, 0.25], dtype=torch.float64)


def _draws(comp: RandK, rounds: int, clients: int) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """Q(X) for every (round, client) through the real encode → decode_rows path, and the masks."""
    qs, masks = [], []
    ids = np.arange(clients)
    wire = torch.empty(clients, comp.wire_len)
    for r in range(rounds):
        for c in range(clients):
            comp.encode(X, round=r, client=c, out=wire[c])
            masks.append(tuple(comp.mask(r, c).tolist()))
        qs.append(comp.decode_rows(wire, ids, r, dtype=torch.float64))
    return torch.cat(qs), masks


@pytest.fixture(scope="module")
def independent_draws():
    # 1e5 draws = 1000 rounds × 100 clients: the mask comes from the (round, client) stream
    comp = RandK(D, seed=2024, k=K, cache_size=128)
    return _draws(comp, 1000, 100)


def test_randk_is_unbiased_over_rounds_and_clients(independent_draws):
    """Q_j = (d/K)·x_j·B_j, B_j ~ Bernoulli(K/d): Var Q_j = x_j²(d/K − 1), so the mean of N draws is
    within Z·|x_j|·√((d/K − 1)/N) of x_j (N = 1e5: 0.024·|x_j| at Z = 5)."""
    q, _ = independent_draws
    n = q.shape[0]
    tol = Z * X.abs() * math.sqrt((D / K - 1) / n)
    assert torch.all((q.mean(0) - X).abs() <= tol), (q.mean(0) - X, tol)


def test_randk_variance_is_d_over_k_minus_one(independent_draws):
    """E‖Q(x) − x‖² = (d/K − 1)‖x‖² (equality for rand-k); tolerance Z standard errors of the mean."""
    q, _ = independent_draws
    err = ((q - X) ** 2).sum(1)
    expected = (D / K - 1) * float(X.pow(2).sum())
    se = float(err.std()) / math.sqrt(err.shape[0])
    assert abs(float(err.mean()) - expected) <= Z * se, (float(err.mean()), expected, se)
    assert build_compressor("randk", D, 0, k=K).omega == pytest.approx(D / K - 1)


def test_randk_masks_are_uniform_k_subsets_across_the_stream(independent_draws):
    _, masks = independent_draws
    stat, df = subset_chi2(masks, D, K)  # 120 subsets, ~833 draws per cell
    assert stat < chi2_upper(df), (stat, df)


def test_coordinated_is_unbiased_over_rounds():
    # 1e4 rounds (one mask per round): tolerance Z·|x_j|·√((d/K − 1)/1e4) = 0.076·|x_j|
    comp = RandK(D, seed=99, k=K, coordinated=True)
    n = 10_000
    wire = torch.empty(1, K)
    q = torch.empty(n, D, dtype=torch.float64)
    for r in range(n):
        comp.encode(X, round=r, client=7, out=wire[0])
        q[r] = comp.decode_rows(wire, np.array([7]), r, dtype=torch.float64)[0]
    tol = Z * X.abs() * math.sqrt((D / K - 1) / n)
    assert torch.all((q.mean(0) - X).abs() <= tol)


def test_coordinated_mask_is_shared_in_a_round_and_fresh_across_rounds():
    comp = build_compressor("randk_coordinated", 1000, 5, ratio=0.1)
    assert comp.shared_mask and comp.k == 100
    for r in range(5):
        m0 = comp.mask(r, 0)
        assert all(torch.equal(m0, comp.mask(r, c)) for c in (1, 17, 999, -1))
    rounds = [tuple(comp.mask(r, 0).tolist()) for r in range(50)]
    assert len(set(rounds)) == 50


def test_independent_masks_differ_across_clients_and_rounds():
    comp = build_compressor("randk", 1000, 5, ratio=0.1)
    assert not comp.shared_mask
    per_client = {tuple(comp.mask(3, c).tolist()) for c in range(50)}
    per_round = {tuple(comp.mask(r, 3).tolist()) for r in range(50)}
    assert len(per_client) == 50 and len(per_round) == 50
    # and the coordinated mask of a round is none of the clients' masks
    coord = build_compressor("randk_coordinated", 1000, 5, ratio=0.1)
    assert tuple(coord.mask(3, 0).tolist()) not in per_client


@pytest.mark.parametrize("coordinated", [False, True])
def test_masks_are_deterministic_across_instances_and_cache_evictions(coordinated):
    a = RandK(5000, 42, ratio=0.2, coordinated=coordinated, cache_size=1)
    b = RandK(5000, 42, ratio=0.2, coordinated=coordinated)
    first = [a.mask(r, c).clone() for r in range(3) for c in range(3)]
    again = [a.mask(r, c) for r in range(3) for c in range(3)]  # re-derived after eviction
    fresh = [b.mask(r, c) for r in range(3) for c in range(3)]
    assert all(torch.equal(u, v) and torch.equal(u, w) for u, v, w in zip(first, again, fresh))
    handed_out = b.mask(0, 0)
    handed_out.zero_()  # a caller scribbling on its copy does not touch the cache
    assert torch.equal(b.mask(0, 0), first[0])
    other_seed = RandK(5000, 43, ratio=0.2, coordinated=coordinated)
    assert not torch.equal(first[0], other_seed.mask(0, 0))


def test_masks_are_pinned():
    """The mask is part of the protocol (client and server derive it apart): changing the derivation
    is a wire-format change. Both constructions and the complement branch are pinned."""
    assert RandK(20, 7, k=4).mask(3, 5).tolist() == [0, 5, 8, 11]
    assert RandK(20, 7, k=15).mask(3, 5).tolist() == [0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 15, 16, 17, 19]
    assert RandK(1000, 7, k=10).mask(3, 5).tolist() == [73, 200, 229, 378, 432, 585, 625, 824, 869, 888]
    assert RandK(1000, 7, k=10, coordinated=True).mask(3, 5).tolist() == [
        139,
        249,
        285,
        288,
        338,
        403,
        613,
        800,
        856,
        993,
    ]
    big = RandK(10**5, 7, ratio=0.3).mask(3, 5)  # pins the split of raw words into 32-bit keys
    assert big[:5].tolist() == [0, 2, 3, 5, 7] and int(big.sum()) == 1493814899


@pytest.mark.parametrize("name", ["randk", "randk_coordinated"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_wire_is_the_masked_values_and_decode_scales_by_d_over_k(name, dtype):
    d = 997
    comp = build_compressor(name, d, 1, k=50)
    assert comp.wire_len == comp.k == 50 and comp.wire_bytes == 200
    x = torch.randn(d, dtype=dtype, generator=torch.Generator().manual_seed(0))
    out = torch.empty(comp.wire_len)
    comp.encode(x, round=4, client=2, out=out)
    idx = comp.mask(4, 2)
    assert torch.equal(out, x[idx].float())
    for dt in (torch.float32, torch.float64):
        q = comp.decode(out, round=4, client=2, dtype=dt)
        assert q.dtype == dt and q.shape == (d,)
        assert torch.equal(q[idx], out.to(dt) * torch.tensor(d / 50, dtype=dt))
        rest = torch.ones(d, dtype=torch.bool)
        rest[idx] = False
        assert torch.all(q[rest] == 0)


@pytest.mark.parametrize("name", ["randk", "randk_coordinated"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roundtrip_equals_server_decode_bit_for_bit(name, dtype):
    comp = build_compressor(name, 300, 8, ratio=0.3)
    server = build_compressor(name, 300, 8, ratio=0.3)  # a separate process in a real run
    x = torch.randn(300, dtype=dtype, generator=torch.Generator().manual_seed(1))
    wire = torch.empty(5, comp.wire_len)
    clients = np.array([4, 0, 9, 2, 7])
    for i, c in enumerate(clients):
        comp.encode(x * (i + 1), round=11, client=int(c), out=wire[i])
    rows = server.decode_rows(wire, clients, 11, dtype=dtype)
    for i, c in enumerate(clients):
        mine = comp.roundtrip(x * (i + 1), round=11, client=int(c))
        assert mine.dtype == dtype and torch.equal(mine, rows[i])
        assert torch.equal(rows[i], server.decode(wire[i], round=11, client=int(c), dtype=dtype))


def test_reject_codes_value_checks():
    comp = build_compressor("randk", 100, 0, k=4)
    rows = torch.ones(5, 4)
    rows[1, 2] = float("nan")
    rows[2, 0] = float("inf")
    rows[3, 3] = -float("inf")
    assert comp.reject_codes(rows).tolist() == [ACCEPTED, NON_FINITE, NON_FINITE, NON_FINITE, ACCEPTED]
    assert comp.reject_codes(torch.ones(3, 5)).tolist() == [BAD_LENGTH] * 3
    assert comp.reject_codes(torch.ones(0, 4)).shape == (0,)


@pytest.mark.parametrize(
    "kw,k", [({"ratio": 0.1}, 100_000), ({"ratio": 1e-9}, 1), ({"ratio": 1.0}, 10**6), ({"k": 7}, 7)]
)
def test_k_from_k_or_ratio(kw, k):
    assert build_compressor("randk", 10**6, 0, **kw).k == k


@pytest.mark.parametrize("kw", [{}, {"k": 3, "ratio": 0.5}, {"k": 11}, {"k": 0}, {"ratio": 0.0}, {"ratio": 1.5}])
def test_k_and_ratio_misuse_is_refused(kw):
    with pytest.raises(ValueError):
        build_compressor("randk", 10, 0, **kw)


def test_large_d_mask_is_cheap_and_well_formed():
    comp = build_compressor("randk", 10**6, 3, ratio=0.1)
    idx = comp.mask(0, 0)
    assert idx.shape == (10**5,) and bool((idx[1:] > idx[:-1]).all())
    # inclusion counts per block of 10^4 coordinates: Binomial-like around 10^3 each
    counts = torch.bincount(idx // 10**4, minlength=100).double()
    assert float(((counts - 1000) ** 2 / 1000).sum()) < chi2_upper(99)
    assert Counter(idx.tolist()).most_common(1)[0][1] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["randk", "randk_coordinated"])
def test_cuda_client_and_cpu_server_agree(name):
    comp = build_compressor(name, 10_000, 1, ratio=0.25)
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(2))
    out_gpu = torch.empty(comp.wire_len, device="cuda")
    comp.encode(x.cuda(), round=1, client=3, out=out_gpu)
    out_cpu = torch.empty(comp.wire_len)
    comp.encode(x, round=1, client=3, out=out_cpu)
    assert torch.equal(out_gpu.cpu(), out_cpu)
    q_gpu = comp.roundtrip(x.cuda(), round=1, client=3)
    assert torch.equal(q_gpu.cpu(), comp.decode(out_cpu, round=1, client=3))
    rows = comp.decode_rows(out_gpu.reshape(1, -1), np.array([3]), 1)
    assert rows.device.type == "cuda" and torch.equal(rows[0].cpu(), q_gpu.cpu())


def test_a_finite_wire_value_may_overflow_when_scaled():
    """Documented hazard: validation sees finite values; d/K scaling can overflow float32."""
    comp = build_compressor("randk_coordinated", 100, 0, k=10)
    rows = torch.full((1, 10), 3.0e38)
    assert comp.reject_codes(rows).tolist() == [ACCEPTED]
    assert torch.isinf(comp.decode_rows(rows, np.array([0]), 0)).any()
    assert torch.isfinite(comp.decode_rows(rows, np.array([0]), 0, dtype=torch.float64)).all()
