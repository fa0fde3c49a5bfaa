"""The server's reused-buffer statistics (:class:`byzmpi.roundstats.StatsWorkspace`) give the
reference functions' numbers bit for bit, on one chunk and on several, in float32 and float64,
with all, some or no honest rows, and on rows holding NaN, inf and 1e38. The references are the
module's definitions, which ``tests/core/test_validation.py`` checks against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from byzmpi.roundstats import CHUNK, StatsWorkspace, distance, distances_to, honest_mean, row_norms


def rows_of(m: int, d: int, dtype: torch.dtype, seed: int, hostile: bool) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(m, d, generator=gen, dtype=torch.float64) * 3 + 1).to(dtype)
    if hostile and m >= 3:
        x[1, d // 2] = float("nan")
        x[2, :] = 1e38 if dtype == torch.float32 else 1e300
        x[0, 0] = float("inf")
    return x


CASES = [
    (m, d, dtype, hostile)
    for m, d in ((1, 1), (3, 7), (5, 1000), (4, CHUNK), (3, CHUNK + 17), (6, 2 * CHUNK + 5))
    for dtype in (torch.float32, torch.float64)
    for hostile in (False, True)
]


@pytest.mark.parametrize(("m", "d", "dtype", "hostile"), CASES)
def test_workspace_equals_the_reference_bit_for_bit(m: int, d: int, dtype: torch.dtype, hostile: bool) -> None:
    ws = StatsWorkspace()
    x = rows_of(m, d, dtype, seed=m * 1000 + d, hostile=hostile)
    masks = [np.ones(m, bool), np.zeros(m, bool), np.arange(m) % 2 == 1]
    for honest in masks:
        ref_centre = honest_mean(x, torch.from_numpy(honest))
        centre = ws.honest_mean(x, honest)
        if ref_centre is None:
            assert centre is None
        else:
            assert (
                centre is not None
                and torch.equal(centre, ref_centre)
                or (
                    torch.equal(centre.isnan(), ref_centre.isnan())
                    and torch.equal(centre.nan_to_num(0.0), ref_centre.nan_to_num(0.0))
                )
            )
        norms, dists = ws.norms_and_distances(x, centre)
        assert norms is not None and dists is not None
        np.testing.assert_array_equal(norms, row_norms(x).numpy())
        np.testing.assert_array_equal(dists, distances_to(x, ref_centre).numpy())
        fused = ws.centre_norms_distances(x, honest)
        if ref_centre is None:
            assert fused[0] is None
        else:
            assert fused[0] is not None
            assert torch.equal(fused[0].nan_to_num(7.0), ref_centre.nan_to_num(7.0))
            assert torch.equal(fused[0].isnan(), ref_centre.isnan())
        np.testing.assert_array_equal(fused[1], norms)
        np.testing.assert_array_equal(fused[2], dists)
        only_d = ws.norms_and_distances(x, centre, norms=False)
        assert only_d[0] is None
        np.testing.assert_array_equal(only_d[1], dists)
        agg = x[-1].clone()
        a, b = ws.distance(agg, centre), distance(agg, ref_centre)
        assert (a == b) or (np.isnan(a) and np.isnan(b))


def test_workspace_results_do_not_alias_across_calls() -> None:
    """The norms and distances come back as copies: a later call does not change them."""
    ws = StatsWorkspace()
    x, y = rows_of(3, 50, torch.float32, 1, False), rows_of(3, 50, torch.float32, 2, False)
    first = ws.norms_and_distances(x, None)
    kept = first[0].copy()
    ws.norms_and_distances(y, None)
    np.testing.assert_array_equal(first[0], kept)
    assert np.isnan(first[1]).all()  # no centre: NaN distances, as distances_to


def test_non_contiguous_rows_go_to_the_reference() -> None:
    ws = StatsWorkspace()
    x = rows_of(40, 3, torch.float32, 3, False).T  # (3, 40), not contiguous
    norms, dists = ws.norms_and_distances(x, honest_mean(x, torch.ones(3, dtype=torch.bool)))
    np.testing.assert_array_equal(norms, row_norms(x).numpy())
    assert torch.equal(ws.honest_mean(x, np.ones(3, bool)), honest_mean(x, torch.ones(3, dtype=torch.bool)))
