"""Shared helpers for the aggregator tests: call any registered rule or pipeline by name."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from byzmpi.aggregators import PRE_AGGREGATORS, RULES, Aggregate, Pipeline

RULE_NAMES = sorted(RULES)
PRE_NAMES = sorted(PRE_AGGREGATORS)


def pipeline(rule: str, pre: list[str] | tuple[str, ...] = (), seed: int = 0, **params: Any) -> Pipeline:
    return Pipeline.build(rule, params, [(p, {}) for p in pre], seed)


def aggregate(
    rule: str, x: Tensor, f: int, pre: list[str] | tuple[str, ...] = (), clients: Any = None, **params: Any
) -> Aggregate:
    """One call of a fresh pipeline (a stateful rule starts from its first-call state); ``clients``:
    the client id of each row (default 0..m-1)."""
    ids = np.arange(x.shape[0]) if clients is None else np.asarray(clients)
    return pipeline(rule, pre, **params)(x, f=f, round_=0, clients=ids)


def rule_value(rule: str, x: Tensor, f: int, **params: Any) -> Tensor:
    return aggregate(rule, x, f, **params).value


def honest_cluster(m: int, d: int, *, seed: int = 0, dtype: torch.dtype = torch.float64, scale: float = 1.0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(m, d, generator=g, dtype=torch.float64) * scale).to(dtype)
