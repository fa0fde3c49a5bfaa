"""CAF: the covariance-bound agnostic filter (Allouah, Guerraoui, Stephan 2025)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..registry import Condition
from .combine import weighted_rows
from .distances import accurate_gram
from .registry import Aggregate, rule


def caf_weights(x: Tensor, *, f: int) -> np.ndarray:
    """The weights w = c/Σc (float64, (m,)) of the CAF output μ_c = Σ_i w_i x_i.

    All of CAF's d-dimensional quantities reduce to the Gram matrix G of the inputs (one GEMM,
    around an accurate origin): with w = c/Σc and K = (I − 1wᵀ) G (I − 1wᵀ)ᵀ, K_ij = ⟨x_i − μ_c,
    x_j − μ_c⟩; Σ_c = (1/Σc) Σ_i c_i (x_i − μ_c)(x_i − μ_c)ᵀ has the nonzero eigenvalues of
    S K S / Σc (S = diag √c, m × m), and if u is that matrix's top eigenvector, the top
    eigenvector of Σ_c is v ∝ Σ_i √c_i u_i (x_i − μ_c), so τ_i = ⟨x_i − μ_c, v⟩² =
    (K S u)_i² / (uᵀ S K S u). The eigenpairs are exact (``numpy.linalg.eigh``), not power-method
    estimates.
    """
    m = x.shape[0]
    CAF_VALID.require("caf", m=m, f=f)
    gram_t, _ = accurate_gram(x)
    g = gram_t.double().cpu().numpy()
    c = np.ones(m)
    best_w, best_lam = np.full(m, 1.0 / m), np.inf
    for _ in range(m + 1):  # each pass zeroes at least one weight
        total = c.sum()
        if total <= m - 2 * f:
            break
        w = c / total
        gw = g @ w
        k = g - gw[None, :] - gw[:, None] + w @ gw
        s = np.sqrt(c)
        evals, evecs = np.linalg.eigh(s[:, None] * k * s[None, :])
        lam = max(float(evals[-1]), 0.0) / total
        if lam < best_lam:
            best_lam, best_w = lam, w
        proj = k @ (s * evecs[:, -1])
        tau = proj * proj
        alive = c > 0
        tau_max = float(tau[alive].max()) if alive.any() else 0.0
        if not tau_max > 0.0:  # the weighted inputs all coincide: μ_c is exact
            break
        c = np.where(alive, c * np.clip(1.0 - tau / tau_max, 0.0, 1.0), 0.0)
        c[alive & (tau >= tau_max)] = 0.0
    return best_w


CAF_VALID = Condition("m > 2f", lambda m, f, **_: m > 2 * f)


@rule(
    "caf",
    condition=CAF_VALID,
    doc="Covariance-bound agnostic filter: down-weight inputs along the top eigenvector of the weighted "
    "covariance; the weighted mean of least top eigenvalue.",
)
def caf(x: Tensor, *, f: int) -> Aggregate:
    """Covariance-bound agnostic filter (CAF).

    Weights c_i = 1; while Σ_i c_i > m − 2f:
        μ_c = Σ_i c_i x_i / Σ_i c_i,   Σ_c = Σ_i c_i (x_i − μ_c)(x_i − μ_c)ᵀ / Σ_i c_i,
        (λ, v) = top eigenpair of Σ_c,  τ_i = ⟨x_i − μ_c, v⟩²,  c_i ← c_i (1 − τ_i / τ_max);
    return the μ_c with the smallest λ met.

    Convention: τ_max = max τ_i over the inputs still weighted (c_i > 0), so that each pass
    removes at least one input (≤ m passes); ByzFL's code takes the max over all inputs, which
    differs only once an input is fully removed. The eigenpair is exact (m × m, from one Gram
    matrix), not a one-step power iteration. With f = 0 the loop does not run and CAF is the mean.
    Valid when m > 2f.
    Reference: Allouah, Guerraoui, Stephan, "Towards trustworthy federated learning with untrusted
    participants", ICML 2025, arXiv:2505.01874 (Algorithm 2, CAF).
    """
    w = torch.from_numpy(caf_weights(x, f=f))
    return Aggregate(weighted_rows(x, w), w)
