"""The catalogue of robust aggregation rules.

A :class:`Rule` pairs a pure function on an ``(m, d)`` tensor with its declared parameters and its
validity condition, so that config validation, ``byzmpi list`` and the docs read one fact. Rules
are looked up by name in :data:`RULES`; users add their own with :func:`register_rule`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from torch import Tensor

from ..params import Param


class Aggregate(NamedTuple):
    """What a rule returns: the aggregate and, where the rule selects inputs, a weight per input
    (Krum: one-hot; Multi-Krum: 1/k on the chosen; mean: 1/m). ``None`` for coordinate-wise rules."""

    value: Tensor
    weights: Tensor | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    apply: Callable[..., Aggregate]  # apply(x, *, f, **params) -> Aggregate
    valid: Callable[..., bool]  # valid(m, f, **params)
    condition: str  # the validity condition in words, e.g. "m > 2f + 2"
    doc: str
    params: dict[str, Param] = field(default_factory=dict)


RULES: dict[str, Rule] = {}


def register_rule(rule: Rule, *, replace: bool = False) -> Rule:
    """Add ``rule`` to the catalogue (a user's own rule included); refuses to shadow one silently."""
    if rule.name in RULES and not replace:
        raise ValueError(f"aggregation rule {rule.name!r} is already registered")
    RULES[rule.name] = rule
    return rule
