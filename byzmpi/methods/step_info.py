"""What a method's server update receives and reports: the ``aggregate`` callable and
:class:`RoundInfo`. A module of its own so that the method base and the clipping recipe share it
without importing each other."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from ..aggregators import Aggregate


class Aggregator(Protocol):
    """``aggregate(x, clients, dropped=0)``: the configured pipeline on rows ``x`` sent by (or
    standing for) the clients ``clients``; ``dropped``: inputs the method excluded as invalid
    (they lower the f the rule tolerates, like rejected messages)."""

    def __call__(self, x: Tensor, clients: np.ndarray, dropped: int = 0) -> Aggregate: ...


@dataclass
class RoundInfo:
    """What a server step reports for the trace."""

    aggregate_norm: float = float("nan")
    update_norm: float = float("nan")
    clip_radius: float = float("nan")
    clipped: np.ndarray | None = None  # bool per row, when the method clipped
    skipped: bool = False  # no step was taken (no accepted input, a non-finite aggregate, ...)
    model_refused: bool = False  # ... because the step would have made the model non-finite
    invalid_states: int = 0  # stored client states left out of the aggregation as non-finite


def refused_step(norm: float, radius: float, clipped: np.ndarray | None, invalid_states: int = 0) -> RoundInfo:
    """The RoundInfo of a step not taken: the aggregate (of norm ``norm``) is not finite, or it is
    but the step would make the model non-finite (``model_refused``)."""
    return RoundInfo(
        aggregate_norm=norm,
        update_norm=0.0,
        clip_radius=radius,
        clipped=clipped,
        skipped=True,
        model_refused=math.isfinite(norm),
        invalid_states=invalid_states,
    )


def finite_norm(t: Tensor) -> float:
    """‖t‖ accumulated in float64 (inf or NaN when t is not finite)."""
    return float(torch.linalg.vector_norm(t.double()))


def finite_vector(t: Tensor) -> bool:
    """Every entry of t is finite (the check a model must pass before the server adopts it)."""
    return bool(torch.isfinite(t.amax())) and bool(torch.isfinite(t.amin())) if t.numel() else True
