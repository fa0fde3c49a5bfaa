"""The catalogue of robust aggregation rules and pre-aggregators.

A :class:`Rule` pairs a pure function on an ``(m, d)`` tensor with its declared parameters and its
validity condition, so that config validation, ``byzmpi list`` and the docs read one fact. A
:class:`PreAggregator` transforms the inputs before a rule (bucketing, NNM, clipping) and states
how it changes (m, f), so the rule's condition is checked on what the rule will actually see.
Both are looked up by name; users add their own with :func:`register_rule` and
:func:`register_pre_aggregator`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import torch
from torch import Tensor

from ..params import Param
from ..registry import Condition, Registry


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
    """A robust aggregation rule: its public function, registered once.

    ``apply(x, *, f, **params) -> Tensor | Aggregate`` is the rule's own public function (a bare
    tensor means "no weights"); a ``stateful`` rule also receives ``state=`` (a dict of tensors it
    may read and update, kept in the server state and checkpointed). ``condition`` is the rule's
    validity condition on (m, f, **params), the same object its function uses as its guard.
    """

    name: str
    apply: Callable[..., Tensor | Aggregate]
    condition: Condition
    doc: str
    params: dict[str, Param] = field(default_factory=dict)
    stateful: bool = False
    takes_clients: bool = False  # ``apply`` also receives ``clients=``, the client id of each row (or None)

    def valid(self, m: int, f: int, **params: Any) -> bool:
        return self.condition.holds(m=m, f=f, **params)

    def __call__(self, x: Tensor, *, f: int, **params: Any) -> Aggregate:
        out = self.apply(x, f=f, **params)
        return out if isinstance(out, Aggregate) else Aggregate(out)


class RuleRefused(Exception):
    """A rule declines this round's inputs (e.g. MoNNA without its trusted client's message): the
    server takes no step this round and counts it, instead of aborting the run."""


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
    #: ``apply`` accepts ``out``, an :class:`~.buffers.OutputBuffer` for its output (set from the
    #: function's signature by :func:`pre_aggregator`)
    takes_out: bool = False


RULES: Registry[Rule] = Registry("aggregation rule", "aggregator")
PRE_AGGREGATORS: Registry[PreAggregator] = Registry("pre-aggregator", "aggregator.pre")


def register_rule(rule: Rule, *, replace: bool = False) -> Rule:
    """Add ``rule`` to the catalogue (a user's own rule included); refuses to shadow one silently."""
    return RULES.register(rule, replace=replace)


def register_pre_aggregator(pre: PreAggregator, *, replace: bool = False) -> PreAggregator:
    """Add a pre-aggregator to the catalogue."""
    return PRE_AGGREGATORS.register(pre, replace=replace)


F = TypeVar("F", bound=Callable[..., Any])


def rule(
    name: str,
    *,
    condition: Condition,
    doc: str,
    params: dict[str, Param] | None = None,
    stateful: bool = False,
    takes_clients: bool = False,
) -> Callable[[F], F]:
    """Decorator: register the decorated public function as the rule ``name`` (once, no twin)."""

    def register(fn: F) -> F:
        register_rule(Rule(name, fn, condition, doc, dict(params or {}), stateful, takes_clients))
        return fn

    return register


def pre_aggregator(
    name: str, *, shape: Callable[..., tuple[int, int]], doc: str, params: dict[str, Param] | None = None
) -> Callable[[F], F]:
    """Decorator: register the decorated public function (``fn(x, *, f, generator, **params) ->
    PreAggregated``) as the pre-aggregator ``name``; a function with an ``out`` parameter gets
    the pipeline's reused :class:`~.buffers.OutputBuffer` for its output."""

    def register(fn: F) -> F:
        takes_out = "out" in inspect.signature(fn).parameters
        register_pre_aggregator(PreAggregator(name, fn, shape, doc, dict(params or {}), takes_out))
        return fn

    return register


def identity_mix(m: int) -> Tensor:
    return torch.eye(m, dtype=torch.float64)
