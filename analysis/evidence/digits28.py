"""scikit-learn's 8×8 digits brought to 28×28×1 for byzmpi's built-in CNNs (``task.name = "npz"``).

Each 8×8 image (pixels 0..16, scaled to [0, 1] by byzmpi's own ``digits`` loader) is upsampled to
28×28 by bilinear interpolation (``torch.nn.functional.interpolate``, ``mode="bilinear"``,
``align_corners=False``: a factor of 3.5, so each output pixel is the bilinear blend of the 2×2
input pixels around its centre), then standardised as (x − m)/s with the mean m and standard
deviation s of the *training* pixels (one channel, MNIST-style; byzmpi's npz loader applies no
normalisation of its own). The train/test split is byzmpi's ``digits`` split with ``test_fraction =
0.2`` and data seed ``SPLIT_SEED`` (1437 train, 360 test), written as ``X``/``y`` and
``X_test``/``y_test`` so that every run, whatever its ``run.seed``, evaluates on the same held-out set.

The file is a pure function of scikit-learn's bundled data and ``SPLIT_SEED``: rebuilt when
missing, and its content (not its bytes' timestamps) is what ``byzmpi``'s task fingerprint hashes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SIDE = 28
SPLIT_SEED = 1
TEST_FRACTION = 0.2


def upsample(X: np.ndarray, side: int = SIDE) -> np.ndarray:
    """(N, 64) pixels in [0, 1] -> (N, 1, side, side) float32 by bilinear interpolation."""
    t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).reshape(-1, 1, 8, 8)
    out = torch.nn.functional.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)
    return out.numpy().astype(np.float32)


def build(path: Path) -> Path:
    """Write the npz (X (1437, 1, 28, 28), y, X_test (360, 1, 28, 28), y_test; float32 / int64)."""
    from byzmpi.tasks.datasets import digits

    ds = digits(seed=SPLIT_SEED, test_fraction=TEST_FRACTION)
    assert ds.X_test is not None and ds.y_test is not None
    X, Xt = upsample(ds.X.numpy()), upsample(ds.X_test.numpy())
    mean, std = float(X.mean(dtype=np.float64)), float(X.std(dtype=np.float64))
    X, Xt = ((X - mean) / std).astype(np.float32), ((Xt - mean) / std).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, X=X, y=ds.y.numpy().astype(np.int64), X_test=Xt, y_test=ds.y_test.numpy().astype(np.int64))
    tmp.replace(path)
    return path


def ensure(path: Path) -> Path:
    """The npz at ``path``, built when missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if z["X"].shape[1:] == (1, SIDE, SIDE) and "y_test" in z.files:
                return path
    except (OSError, KeyError, ValueError):
        pass
    return build(path)
