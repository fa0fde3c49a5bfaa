"""Server-side payload validation and per-round statistics."""

from __future__ import annotations

import math

import pytest
import torch

from byzmpi.roundstats import distance, distances_to, honest_mean, row_norms
from byzmpi.validation import ACCEPTED, NON_FINITE, effective_f, finite_codes, finite_rows, reject_codes

F32_MAX = torch.finfo(torch.float32).max


def rows():
    return torch.tensor(
        [
            [1.0, 2.0, 3.0],  # ordinary
            [float("nan"), 0.0, 0.0],  # NaN
            [0.0, float("inf"), 0.0],  # +Inf
            [0.0, 0.0, float("-inf")],  # -Inf
            [1e38, -1e38, 1e38],  # huge but finite
            [1e-45, -1e-45, 1e-40],  # float32 denormals
            [F32_MAX, -F32_MAX, 0.0],  # the largest finite float32
            [float("nan"), float("inf"), 1.0],
        ],
        dtype=torch.float32,
    )


def test_reject_codes_per_row():
    x = rows()
    assert x[5, 0] != 0 and x[5, 0].abs() < torch.finfo(torch.float32).tiny  # really denormal
    codes = reject_codes(x)
    assert codes.dtype == torch.uint8
    assert codes.tolist() == [ACCEPTED, NON_FINITE, NON_FINITE, NON_FINITE, ACCEPTED, ACCEPTED, ACCEPTED, NON_FINITE]
    assert finite_rows(x).tolist() == [True, False, False, False, True, True, True, False]


def test_reject_codes_in_float64_and_empty():
    x = torch.tensor([[1e300, 0.0], [float("nan"), 1.0]], dtype=torch.float64)
    assert reject_codes(x).tolist() == [ACCEPTED, NON_FINITE]
    assert reject_codes(torch.zeros(0, 5)).tolist() == []


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_finite_rows_equal_the_definition_on_views(dtype):
    """The CPU numpy path (float32/64) and the torch path (other dtypes) against the definition
    ``isfinite(x).all(1)`` evaluated value by value, on a strided column slice as the wire's
    value slots are, and finite_codes keeps earlier codes."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(40, 23, generator=gen).to(dtype)
    special = [float("nan"), float("inf"), float("-inf")]
    for i in range(0, 40, 3):
        x[i, (5 * i) % 23] = special[i % 3]
    view = x[:, 2:19]  # not contiguous
    assert not view.is_contiguous()
    expected = [all(math.isfinite(float(v)) for v in row) for row in view.tolist()]
    assert finite_rows(view).tolist() == expected
    assert reject_codes(view).tolist() == [ACCEPTED if ok else NON_FINITE for ok in expected]
    earlier = torch.tensor([7 if i % 5 == 0 else ACCEPTED for i in range(40)], dtype=torch.uint8)
    want = [c if c != ACCEPTED else (ACCEPTED if ok else NON_FINITE) for c, ok in zip(earlier.tolist(), expected)]
    assert finite_codes(view, earlier).tolist() == want


@pytest.mark.parametrize("f, rejected, expected", [(3, 0, 3), (3, 1, 2), (3, 3, 0), (3, 5, 0), (0, 2, 0)])
def test_effective_f(f, rejected, expected):
    assert effective_f(f, rejected) == expected


def test_row_norms_accumulate_in_float64():
    x = rows()
    norms = row_norms(x)
    assert norms.dtype == torch.float64
    assert norms[0].item() == pytest.approx(math.sqrt(14))
    assert norms[4].item() == pytest.approx(math.sqrt(3) * 1e38, rel=1e-6)  # float32 would overflow to inf
    assert math.isfinite(norms[6].item())
    assert math.isnan(norms[1].item()) and math.isinf(norms[2].item())


def test_honest_mean_and_distances():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [100.0, 100.0]])
    honest = torch.tensor([True, True, False])
    centre = honest_mean(x, honest)
    assert centre.tolist() == [1.0, 0.0] and centre.dtype == torch.float64
    assert distances_to(x, centre).tolist() == pytest.approx([1.0, 1.0, math.hypot(99, 100)])
    assert distance(torch.tensor([1.0, 3.0]), centre) == 3.0
    assert honest_mean(x, torch.zeros(3, dtype=torch.bool)) is None
    assert all(math.isnan(v) for v in distances_to(x, None).tolist())
    assert math.isnan(distance(x[0], None))
    assert distance(torch.tensor([float("inf"), 0.0]), centre) == float("inf")
    assert distance(torch.tensor([float("nan"), 0.0]), centre) == float("inf")  # non-finite reported as inf
