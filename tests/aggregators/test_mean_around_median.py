"""Meamed / Bulyan's last step keep exactly the k values closest to the median (issue 11, bug 1).

The reference is the definition, brute force per column: order the values by (|x − med|, x) and
average the first k (byzmpi's tie rule among equally distant values: the smaller ones). No window
shortcut. Every kernel path is checked: the sorted-stack form (``on_sorted``, the torch.sort
fallback), the sorting-network form (the reduction applied to the network's rows, eagerly; the same
code the compiled kernel traces), the large-d fallback with compilation off, and, with
``BYZMPI_TEST_COMPILE=1``, the compiled kernel itself.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from byzmpi.aggregators import sorting
from byzmpi.aggregators.bulyan import bulyan, bulyan_select
from byzmpi.aggregators.meamed import meamed, mean_around_median
from byzmpi.aggregators.sorted_reductions import MeanAroundMedian
from byzmpi.aggregators.sorting import reduce_sorted_columns, reduce_sorted_columns_fallback
from byzmpi.aggregators.sorting_network import batcher_pairs, sort_rows

ISSUE = [[-2.0], [-2.0], [0.0], [1.0], [3.0]]  # the issue's example: f = 2, median 0


def closest_mean_reference(x: np.ndarray, keep: int) -> np.ndarray:
    """Per column: the mean of the ``keep`` values with the smallest |x − med| (midpoint median),
    equally distant values ordered by value (smaller first). Brute force from the definition."""
    out = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        v = x[:, j].astype(np.float64)
        med = float(np.median(v))
        order = sorted(range(len(v)), key=lambda i: (abs(v[i] - med), v[i]))
        out[j] = np.mean(v[order[:keep]])
    return out


def network_form(x: torch.Tensor, keep: int) -> torch.Tensor:
    """What the compiled kernel computes, run eagerly: the reduction on the sorting network's rows."""
    return MeanAroundMedian(keep)(sort_rows(list(x.unbind(0)), batcher_pairs(x.shape[0])))


def tied_columns(m: int, d: int, seed: int, *, dtype=torch.float64) -> torch.Tensor:
    """Small integers (many repeated values and equal distances on both sides of the median),
    plus blocks of identical 'Byzantine' rows, plus continuous columns."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, 4, (m, d), generator=g).to(dtype)
    x[: max(1, m // 3), : d // 3] = torch.randint(-3, 4, (1, d // 3), generator=g).to(dtype)  # identical rows
    x[:, d - d // 4 :] = torch.randn(m, d // 4, generator=g, dtype=dtype)
    return x


def test_issue_example_meamed():
    x = torch.tensor(ISSUE, dtype=torch.float64)
    # closest 3 to the median 0: 0 (d 0), 1 (d 1), one −2 (d 2) -> −1/3; not {−2, −2, 0} -> −4/3
    assert meamed(x, f=2).item() == pytest.approx(-1 / 3, abs=1e-15)
    assert meamed(x.float(), f=2).item() == pytest.approx(-1 / 3, abs=1e-7)
    assert network_form(x, 3).item() == pytest.approx(-1 / 3, abs=1e-15)
    # any row order
    for perm in ([4, 3, 2, 1, 0], [2, 0, 4, 1, 3], [1, 4, 0, 3, 2]):
        assert meamed(x[perm], f=2).item() == pytest.approx(-1 / 3, abs=1e-15)


def test_issue_example_bulyan():
    # m = 7 = 4f + 3 with f = 1: Krum selects {−2, −2, 0, 1, 3}; β = 3 closest to their median 0
    x = torch.tensor([-2.0, -2.0, 0.0, 1.0, 3.0, 50.0, 60.0], dtype=torch.float64)[:, None]
    assert sorted(x[bulyan_select(x, f=1), 0].tolist()) == [-2.0, -2.0, 0.0, 1.0, 3.0]
    assert bulyan(x, f=1).item() == pytest.approx(-1 / 3, abs=1e-15)


def test_tie_rule_keeps_the_smaller_of_equally_distant_values():
    col = lambda *v: torch.tensor(v, dtype=torch.float64)[:, None]  # noqa: E731
    # median 0; ±1 equally distant: the 2 closest are 0 and −1
    assert mean_around_median(col(1, 0, -1), keep=2).item() == -0.5
    # median 0; closest 4: 0, then 3 of the four values at distance 2, smaller first: −2, −2, 2
    assert mean_around_median(col(2, -2, 0, 2, -2), keep=4).item() == pytest.approx((0 - 2 - 2 + 2) / 4)
    # repeated values on the far side must not push out a strictly closer value
    assert mean_around_median(col(3, 3, 3, 0, -1, -5, -5), keep=3).item() == pytest.approx((3 + 0 - 1) / 3)
    assert mean_around_median(col(-3, -3, -3, 0, 1, 5, 5), keep=3).item() == pytest.approx((-3 + 0 + 1) / 3)


def test_reference_disagrees_with_the_lowest_window_shortcut():
    """The test's reference is not the old shortcut: on the issue's column they differ."""
    v = np.sort(np.array(ISSUE)[:, 0])
    med, k = 0.0, 3
    costs = [max(med - v[a], v[a + k - 1] - med) for a in range(len(v) - k + 1)]
    shortcut = v[int(np.argmin(costs)) :][:k].mean()
    assert shortcut == pytest.approx(-4 / 3)
    assert closest_mean_reference(np.array(ISSUE), k)[0] == pytest.approx(-1 / 3)


@pytest.mark.parametrize(
    "m,keep", [(3, 1), (3, 2), (4, 2), (5, 3), (6, 3), (6, 4), (7, 3), (8, 5), (9, 1), (9, 5), (13, 9), (16, 7)]
)
def test_small_d_paths_against_the_definition(m, keep):
    x = tied_columns(m, 600, seed=10 * m + keep)
    ref = closest_mean_reference(x.numpy(), keep)
    s = torch.sort(x, dim=0).values
    np.testing.assert_allclose(MeanAroundMedian(keep).on_sorted(s).numpy(), ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(network_form(x, keep).numpy(), ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(reduce_sorted_columns(x, MeanAroundMedian(keep)).numpy(), ref, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("m,f", [(5, 2), (7, 3), (9, 2), (10, 4), (15, 7)])
def test_meamed_against_the_definition_float32(m, f):
    x = tied_columns(m, 400, seed=m * f, dtype=torch.float32)
    ref = closest_mean_reference(x.numpy(), m - f)
    np.testing.assert_allclose(meamed(x, f=f).numpy(), ref, rtol=1e-6, atol=1e-6)


def test_large_d_fallback_with_compilation_off():
    previous = sorting.set_compile_enabled(False)
    try:
        d = sorting.COMPILE_MIN_COLUMNS + 5
        x = torch.tensor(ISSUE, dtype=torch.float32).expand(5, d).clone()
        x[:, 1::2] = tied_columns(5, d, seed=3, dtype=torch.float32)[:, 1::2]
        assert not sorting.uses_compiled_path(x)
        got = meamed(x, f=2)
        assert torch.allclose(got[0::2], torch.tensor(-1 / 3))
        cols = np.r_[0:50, d - 50 : d]
        ref = closest_mean_reference(x[:, cols].numpy(), 3)
        np.testing.assert_allclose(got[cols].numpy(), ref, rtol=1e-6, atol=1e-6)
    finally:
        sorting.set_compile_enabled(previous)


@pytest.mark.skipif(
    os.environ.get("BYZMPI_TEST_COMPILE") != "1",
    reason="compiles a kernel (tens of seconds); set BYZMPI_TEST_COMPILE=1",
)
def test_compiled_kernel_keeps_the_closest_values():
    previous = sorting.set_compile_enabled(True)
    try:
        d = sorting.COMPILE_MIN_COLUMNS + 3
        x = tied_columns(5, d, seed=4, dtype=torch.float32)
        x[:, :7] = torch.tensor(ISSUE, dtype=torch.float32)
        assert sorting.uses_compiled_path(x)
        got = reduce_sorted_columns(x, MeanAroundMedian(3))
        assert sorting._kernels[(5, MeanAroundMedian(3), x.dtype, "cpu")] is not None  # the compiled path ran
        assert torch.allclose(got[:7], torch.tensor(-1 / 3))
        assert torch.equal(got, reduce_sorted_columns_fallback(x, MeanAroundMedian(3)))
    finally:
        sorting.set_compile_enabled(previous)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_window_choice_on_integer_columns_equals_the_definition_exactly(dtype):
    """The window start is chosen by comparing r_a with r_{a+k} (a run of shifts, then none);
    on small integers (exact sums, many ties, windows entirely on one side of the median) the
    result equals the brute-force definition bit for bit, for every m <= 10 and every keep."""
    g = torch.Generator().manual_seed(12)
    for m in range(1, 11):
        x = torch.randint(-3, 4, (m, 600), generator=g).to(dtype)
        x[:, :100] = torch.randint(0, 2, (m, 100), generator=g).to(dtype) * 5  # two values only
        for keep in range(1, m + 1):
            ref = torch.from_numpy(closest_mean_reference(x.double().numpy(), keep)).to(dtype)
            s = torch.sort(x, dim=0).values
            assert torch.equal(MeanAroundMedian(keep).on_sorted(s), ref), (m, keep)
            assert torch.equal(MeanAroundMedian(keep)(sort_rows(list(x.unbind(0)))), ref), (m, keep)
