"""Nearest-neighbour mixing (NNM), a pre-aggregator."""

from __future__ import annotations

import torch
from torch import Tensor

from .buffers import OutputBuffer
from .combine import mix_rows
from .distances import pairwise_sq_distances
from .registry import PreAggregated, pre_aggregator


def nnm_shape(m: int, f: int) -> tuple[int, int]:
    """(m, f) unchanged; (0, f) when m ≤ f (no neighbourhood of m − f ≥ 1 inputs exists), which
    makes every rule's validity check fail."""
    return (m, f) if m > f else (0, f)


def nnm_mix(x: Tensor, *, f: int) -> Tensor:
    """(m, m) float64 matrix with 1/(m−f) on each row's m − f nearest inputs (itself first; ties
    in distance → lowest index); distances from one centred Gram matrix."""
    m = x.shape[0]
    if not 0 <= f < m:
        raise ValueError(f"NNM needs 0 <= f < m, got m={m}, f={f}")
    dist = pairwise_sq_distances(x).double().cpu()
    dist.fill_diagonal_(-1.0)  # each input is its own nearest neighbour
    nearest = torch.sort(dist, dim=1, stable=True).indices[:, : m - f]
    mix = torch.zeros(m, m, dtype=torch.float64)
    mix.scatter_(1, nearest, 1.0 / (m - f))
    return mix


@pre_aggregator(
    "nnm",
    shape=nnm_shape,
    doc="Nearest-neighbour mixing: each input replaced by the mean of its m-f nearest (itself included).",
)
def nnm(
    x: Tensor, *, f: int, generator: torch.Generator | None = None, out: OutputBuffer | None = None
) -> PreAggregated:
    """NNM: y_i = (1/(m−f)) Σ_{j ∈ N_i} x_j, N_i the m − f nearest inputs to x_i (itself included).

    Convention (docs/conventions.md): m − f neighbours including itself, ties → lowest index; the rule
    then sees the same (m, f). Returns (y, f, mix), y = mix·x (one GEMM).
    Reference: Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Stephan, "Fixing by mixing: a recipe
    for optimal Byzantine ML under heterogeneity", AISTATS 2023.
    """
    mix = nnm_mix(x, f=f)
    return PreAggregated(mix_rows(x, mix, out), f, mix)
