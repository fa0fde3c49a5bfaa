"""f outliers of magnitude 1e6: robust rules stay within a few honest spreads of the honest mean."""

from __future__ import annotations

import pytest
import torch

from .helpers import rule_value

ROBUST = [
    "median",
    "trimmed_mean",
    "meamed",
    "krum",
    "multi_krum",
    "geometric_median",
    "centered_clipping",
    "mda",
    "bulyan",
    "caf",
]


def contaminated(m: int, f: int, d: int, dtype: torch.dtype, where: str, kind: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    honest = torch.randn(m - f, d, generator=g, dtype=torch.float64) + 3.0
    if kind == "same":
        byz = torch.full((f, d), 1e6, dtype=torch.float64)
    else:
        byz = 1e6 * torch.sign(torch.randn(f, d, generator=g, dtype=torch.float64))
    x = torch.cat([byz, honest]) if where == "first" else torch.cat([honest, byz])
    spread = float((honest - honest.mean(0)).norm(dim=1).pow(2).mean().sqrt())
    return x.to(dtype), honest.mean(0), spread


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("where", ["first", "last"])
@pytest.mark.parametrize("kind", ["same", "random_signs"])
@pytest.mark.parametrize("rule", ROBUST)
def test_outliers_of_magnitude_1e6(rule, kind, where, dtype):
    m, f, d = 11, 2, 40
    x, honest_mean, spread = contaminated(m, f, d, dtype, where, kind)
    out = rule_value(rule, x, f).double()
    assert float((out - honest_mean).norm()) < 3 * spread, rule


@pytest.mark.parametrize("where", ["first", "last"])
def test_monna_with_an_honest_pivot(where):
    x, honest_mean, spread = contaminated(11, 2, 40, torch.float32, where, "same")
    pivot = 5
    assert float((rule_value("monna", x, 2, trusted=pivot).double() - honest_mean).norm()) < 3 * spread


def test_mean_is_not_robust():
    x, honest_mean, spread = contaminated(11, 2, 40, torch.float64, "first", "same")
    assert float((rule_value("mean", x, 2) - honest_mean).norm()) > 1e3 * spread


@pytest.mark.parametrize("pre", [["bucketing"], ["nnm"], ["arc"]])
@pytest.mark.parametrize("rule", ["median", "krum", "geometric_median", "trimmed_mean"])
def test_with_pre_aggregators(pre, rule):
    from .helpers import aggregate

    m, f = 15, 2
    x, honest_mean, spread = contaminated(m, f, 40, torch.float32, "first", "same")
    out = aggregate(rule, x, f, pre).value.double()
    assert float((out - honest_mean).norm()) < 3 * spread, (pre, rule)
