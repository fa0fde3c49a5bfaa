"""The catalogue of robust aggregation rules and pre-aggregators.

A :class:`Rule` pairs a pure function on an ``(m, d)`` tensor with its declared parameters and its
validity condition, so that config validation, ``byzmpi list`` and the docs read one fact. A
:class:`PreAggregator` transforms the inputs before a rule (bucketing, NNM, clipping) and states
how it changes (m, f), so the rule's condition is checked on what the rule will actually see.
Both are looked up by name; users add their own with :func:`register_rule` and
:func:`register_pre_aggregator`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from ..params import Param


class Aggregate(NamedTuple):
    """What a rule returns: the aggregate and, where the aggregate is a weighted combination of
    the inputs, a weight per input (float64, CPU): Krum one-hot; Multi-Krum, MDA, MoNNA 1/k on
    the chosen; mean 1/m; GM and CAF their convex weights; centered clipping the inputs' weights
    (summing to ≤ 1, the rest on the previous centre). ``None`` for coordinate-wise rules
    (median, trimmed mean, Meamed, Bulyan)."""

    value: Tensor
    weights: Tensor | None = None


class PreAggregated(NamedTuple):
    """What a pre-aggregator returns: the new inputs (m', d), the Byzantine count the next stage
    must tolerate, and, when the transform is linear in the inputs (bucketing, NNM, clipping), the
    (m', m) matrix ``mix`` with x' = mix·x, which lets the trace map a rule's weights back to clients."""

    x: Tensor
    f: int
    mix: Tensor | None = None


@dataclass(frozen=True)
class Rule:
    """A robust aggregation rule.

    ``apply(x, *, f, **params) -> Aggregate``; a ``stateful`` rule also receives ``state=`` (a dict
    of tensors it may read and update, kept in the server state and checkpointed).
    ``valid(m, f, **params)`` is the rule's validity condition, ``condition`` the same in words.
    """

    name: str
    apply: Callable[..., Aggregate]
    valid: Callable[..., bool]
    condition: str
    doc: str
    params: dict[str, Param] = field(default_factory=dict)
    stateful: bool = False


@dataclass(frozen=True)
class PreAggregator:
    """A transform applied before the rule.

    ``apply(x, *, f, generator, **params) -> PreAggregated`` (``generator``: a torch generator
    from the (seed, round, "pre-aggregate") stream, for randomised transforms such as bucketing);
    ``shape(m, f, **params) -> (m', f')``: what the next stage receives, for validity checks.
    """

    name: str
    apply: Callable[..., PreAggregated]
    shape: Callable[..., tuple[int, int]]
    doc: str
    params: dict[str, Param] = field(default_factory=dict)


RULES: dict[str, Rule] = {}
PRE_AGGREGATORS: dict[str, PreAggregator] = {}


def register_rule(rule: Rule, *, replace: bool = False) -> Rule:
    """Add ``rule`` to the catalogue (a user's own rule included); refuses to shadow one silently."""
    if rule.name in RULES and not replace:
        raise ValueError(f"aggregation rule {rule.name!r} is already registered")
    RULES[rule.name] = rule
    return rule


def register_pre_aggregator(pre: PreAggregator, *, replace: bool = False) -> PreAggregator:
    """Add a pre-aggregator to the catalogue."""
    if pre.name in PRE_AGGREGATORS and not replace:
        raise ValueError(f"pre-aggregator {pre.name!r} is already registered")
    PRE_AGGREGATORS[pre.name] = pre
    return pre


def identity_mix(m: int) -> Tensor:
    return torch.eye(m, dtype=torch.float64)
