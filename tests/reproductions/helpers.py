"""Fast versions of the paper reproductions (analysis/reproduce/): configs derived from
configs/paper/*.toml with overrides, written to a test's tmp_path, run as ONE batched MPI job, and
read back with h5py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis.reproduce.common import CONFIGS, write_variants
from tests.mpi import byzmpi

A9A = Path(__file__).resolve().parents[2] / "data" / "a9a"  # shipped with the repository
RANKS = 3


def needs_a9a():
    return pytest.mark.skipif(not A9A.exists(), reason=f"a9a LIBSVM file not found at {A9A}")


def run_variants(
    tmp_path: Path, base: str, variants: Sequence[tuple[str, Mapping]], *, timeout: float = 150.0, ranks: int = RANKS
) -> dict[str, dict[str, np.ndarray]]:
    """Write the variants of configs/paper/BASE, run them in one MPI job, return each trace's tables
    ({"rounds", "eval", "messages"} structured arrays, plus "attrs")."""
    paths = write_variants(CONFIGS / base, variants, tmp_path / "configs", tmp_path / "traces")
    res = byzmpi(ranks, "run", *map(str, paths), timeout=timeout)
    assert res.returncode is not None, f"MPI job timed out after {res.seconds:.0f} s\n{res.stderr[-3000:]}"
    assert res.returncode == 0, f"byzmpi run failed ({res.returncode})\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    out = {}
    for name, _ in variants:
        with h5py.File(tmp_path / "traces" / f"{name}.h5", "r") as f:
            assert f.attrs["status"] == "finished", name
            out[name] = {t: f[t][:] for t in ("rounds", "eval", "messages")}
            out[name]["attrs"] = dict(f.attrs)
    return out


def log_slope(ev: np.ndarray, column: str = "gap", start_fraction: float = 0.5) -> float:
    """Least-squares slope of log10(column) per 1000 rounds over the evaluations after
    start_fraction of the run."""
    r, y = ev["round"].astype(float), ev[column].astype(float)
    ok = np.isfinite(y) & (y > 0) & (r >= start_fraction * r.max())
    return float(np.polyfit(r[ok], np.log10(y[ok]), 1)[0] * 1000)
