"""byzfl's own implementation of each byzmpi rule, for the reference column of ``aggregators.py``.

byzfl (https://pypi.org/project/byzfl/) is a benchmark-only dependency (``benchmarks/requirements.txt``,
installed with ``pip install --no-deps``): it declares torchvision and seaborn, which pull a CUDA
build of torch, but its aggregators import only numpy, torch and scipy. ``import byzfl`` runs its
package ``__init__``, which imports the training framework (torchvision, seaborn); :func:`load`
imports ``byzfl.aggregators`` under an empty parent package instead, so that nothing else loads.

Each :class:`Reference` says how byzfl is called for one byzmpi rule (its class, the arguments
that match byzmpi's defaults, the conventions that differ) and, for the agreement check, which
byzmpi parameters reproduce byzfl's convention where that is possible.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


def load() -> tuple[types.ModuleType | None, str]:
    """(byzfl.aggregators, version) or (None, why not)."""
    try:
        spec = importlib.util.find_spec("byzfl")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None, "not installed (pip install --no-deps -r benchmarks/requirements.txt)"
    if "byzfl" not in sys.modules:
        parent = types.ModuleType("byzfl")
        parent.__path__ = list(spec.submodule_search_locations)
        parent.__spec__ = spec
        sys.modules["byzfl"] = parent
    try:
        mod = importlib.import_module("byzfl.aggregators")
    except Exception as exc:  # noqa: BLE001 - any import failure: the column says why
        return None, f"import failed: {type(exc).__name__}: {exc}"
    try:
        from importlib.metadata import version

        ver = version("byzfl")
    except Exception:  # noqa: BLE001
        ver = "unknown"
    return mod, ver


@dataclass
class Reference:
    """byzfl's counterpart of one byzmpi rule.

    ``make(bz, m, f, x)`` returns the byzfl callable timed (its arguments chosen to match byzmpi's
    defaults where byzfl allows); ``check`` (optional) returns the byzfl callable whose output is
    compared with byzmpi's ``check_params`` run (the two conventions made equal where they differ);
    ``mem`` is byzfl's peak extra memory in units of the input's size (m·d floats), so that shapes
    that would not fit are skipped; ``in_place``: byzfl overwrites its input (given a fresh copy,
    outside the timing); ``feasible(m, f)`` says whether the call ends in reasonable time.
    """

    cls: str
    make: Callable[[Any, int, int], Callable[[Any], Any]]
    note: str = ""
    check: Callable[[Any, int, int], Callable[[Any], Any]] | None = None
    check_params: Callable[[int, int], dict[str, Any]] = field(default=lambda m, f: {})
    mem: Callable[[int, int], float] = field(default=lambda m, f: 1.0)
    in_place: bool = False
    feasible: Callable[[int, int], str | None] = field(default=lambda m, f: None)
    #: relative max-abs difference accepted as agreement (float32 sums); None: not compared
    tolerance: float | None = 1e-4
    check_columns: int | None = None  # compare on the first columns only (an iterative rule run to convergence)


def _mda_feasible(m: int, f: int) -> str | None:
    n = math.comb(m, m - f)
    return None if n <= 20_000 else f"byzfl's MDA enumerates all C(m, m-f) = {n:.3g} subsets (pure Python): not timed"


def _cc_with_centre(bz, f, tau, iterations, centre):
    cc = bz.CenteredClipping(L=iterations, tau=float(tau))
    cc.m = centre  # byzfl's constructor rejects every m it is given (its type check is always true)
    return cc


REFERENCES: dict[str, Reference] = {
    "mean": Reference("Average", lambda bz, m, f: bz.Average(), mem=lambda m, f: 0.0),
    "median": Reference(
        "Median",
        lambda bz, m, f: bz.Median(),
        note="numpy: np.median (midpoint); torch: torch.quantile(q=0.5), which refuses inputs over 2^24 elements",
    ),
    # torch.sort: values + int64 indices (3x) and a transposed copy; 2.0 OOM-killed m = 64, d = 1e7
    "trimmed_mean": Reference("TrMean", lambda bz, m, f: bz.TrMean(f=f), mem=lambda m, f: 4.0),
    "meamed": Reference(
        "Meamed",
        lambda bz, m, f: bz.Meamed(f=f),
        note="k = m - f values closest to the median, ties broken by argpartition (byzmpi: towards smaller values)",
        mem=lambda m, f: 8.0,
    ),
    "krum": Reference(
        "Krum",
        lambda bz, m, f: bz.Krum(f=f + 1),
        note="byzfl scores over n - f - 1 nearest others; called with f + 1 to score over m - f - 2 as byzmpi "
        "(Blanchard et al.); numpy path: scipy cdist (float64 copy, direct differences)",
        mem=lambda m, f: 2.0,
    ),
    "multi_krum": Reference(
        "MultiKrum",
        lambda bz, m, f: bz.MultiKrum(f=f),
        note="timed with byzfl's own convention (scores over n - f - 1 others, k = n - f); checked as "
        "MultiKrum(f + 1) against byzmpi k = m - f - 1 (scores over m - f - 2 others in both)",
        check=lambda bz, m, f: bz.MultiKrum(f=f + 1),
        check_params=lambda m, f: {"k": m - f - 1},
        mem=lambda m, f: 3.0,
    ),
    "geometric_median": Reference(
        "GeometricMedian",
        lambda bz, m, f: bz.GeometricMedian(nu=0.1, T=3),
        note="byzfl: T = 3 Weiszfeld steps from z = 0, absolute nu = 0.1 (its defaults), each step a pass "
        "over the m x d data; byzmpi: from the coordinate median to convergence (<= 100 steps) on one Gram. "
        "Checked at convergence (byzfl T = 500, nu = 1e-9; byzmpi tol = 1e-9) on the first 16384 columns",
        check=lambda bz, m, f: bz.GeometricMedian(nu=1e-9, T=500),
        check_params=lambda m, f: {"tol": 1e-9, "max_iter": 500, "nu": 1e-9},
        mem=lambda m, f: 3.0,
        tolerance=1e-3,
        check_columns=1 << 14,
    ),
    "centered_clipping": Reference(
        "CenteredClipping",
        lambda bz, m, f: bz.CenteredClipping(L=3, tau=10.0),
        note="called with byzmpi's defaults (L = 3, tau = 10; byzfl's are L = 1, tau = 100); both warm-start from "
        "their last output; byzfl's first call starts from 0, byzmpi's from the coordinate median: checked "
        "with byzfl started from byzmpi's start",
        mem=lambda m, f: 3.0,
    ),
    "monna": Reference("MoNNA", lambda bz, m, f: bz.MoNNA(f=f, idx=0), mem=lambda m, f: 1.0),
    "mda": Reference(
        "MDA",
        lambda bz, m, f: bz.MDA(f=f),
        note="byzfl enumerates every subset; byzmpi's exact search is a bisection with vertex-cover tests",
        mem=lambda m, f: 2.0,
        feasible=_mda_feasible,
    ),
    "caf": Reference(
        "CAF",
        lambda bz, m, f: bz.CAF(f=f),
        note="byzfl: top eigenvector by ONE power-iteration step from a random vector, tau_max over all inputs; "
        "byzmpi: exact eigenpair (m x m eigh on the Gram), tau_max over inputs still weighted. The outputs "
        "differ by design (recorded, not an error)",
        mem=lambda m, f: 5.0,
    ),
    "pre:nnm": Reference(
        "NNM",
        lambda bz, m, f: bz.NNM(f=f),
        note="byzfl gathers vectors[indices], an (m, m - f, d) copy",
        mem=lambda m, f: float(m - f + 2),
    ),
    "pre:bucketing": Reference(
        "Bucketing",
        lambda bz, m, f: bz.Bucketing(s=2),
        note="random permutations differ: outputs not compared",
        mem=lambda m, f: 2.0,
        tolerance=None,
    ),
    "pre:clipping": Reference(
        "Clipping",
        lambda bz, m, f: bz.Clipping(c=2.0),
        note="byzfl clips in place",
        mem=lambda m, f: 1.0,
        in_place=True,
    ),
    "pre:arc": Reference(
        "ARC", lambda bz, m, f: bz.ARC(f=f), note="byzfl clips in place", mem=lambda m, f: 1.0, in_place=True
    ),
}

#: elements compared per float64 block in :func:`agreement`
AGREEMENT_BLOCK = 1 << 22

#: byzmpi rules byzfl does not implement
MISSING = {"bulyan": "byzfl 0.0.11 has no Bulyan"}


def as_backend(x: torch.Tensor, backend: str):
    """The input as byzfl receives it: a numpy array (zero-copy view) or the torch tensor."""
    return x.numpy() if backend == "numpy" else x


def to_numpy(out) -> np.ndarray:
    if isinstance(out, torch.Tensor):
        return out.detach().cpu().numpy()
    return np.asarray(out)


def agreement(ours: torch.Tensor, theirs, tolerance: float) -> dict[str, Any]:
    """Max |difference| relative to max |value|, and whether it is within ``tolerance``.

    Compared in float64 over blocks of ``AGREEMENT_BLOCK`` elements: whole-array float64 copies of an
    (m, d) output (both sides, their difference, its absolute value: 8x the float32 data) OOM-killed
    the m = 64, d = 10^7 pre-aggregator runs on a 24 GiB machine.
    """
    if tolerance is None:
        return {"agree": None, "why": "not compared (randomised)"}
    a = ours.detach().cpu().numpy()
    b = to_numpy(theirs)
    if a.shape != b.shape:
        return {"agree": False, "why": f"shapes differ: byzmpi {a.shape}, byzfl {b.shape}"}
    a, b = a.reshape(-1), b.reshape(-1)
    diff = scale = 0.0
    for lo in range(0, a.size, AGREEMENT_BLOCK):
        ab = a[lo : lo + AGREEMENT_BLOCK].astype(np.float64)
        bb = b[lo : lo + AGREEMENT_BLOCK].astype(np.float64)
        diff = max(diff, float(np.max(np.abs(ab - bb))))
        scale = max(scale, float(np.max(np.abs(ab))))
    rel = diff / scale if scale > 0 else diff
    return {"agree": bool(rel <= tolerance), "max_abs_diff": diff, "rel_diff": rel, "tolerance": tolerance}
