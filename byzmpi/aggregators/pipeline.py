"""A configured aggregator: pre-aggregators in order, then a rule, with the rule's state.

    Agg(x) = rule(pre_k(... pre_1(x)))

Each pre-aggregator transforms (m, f) as its ``shape`` declares; validity is checked on the
(m', f') that reaches the rule. Randomised pre-aggregators draw from the (seed, round,
"pre-aggregate") stream, so the aggregate is a pure function of the round's inputs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from .. import rng
from ..errors import SetupError
from .buffers import OutputBuffer
from .registry import PRE_AGGREGATORS, RULES, Aggregate, PreAggregator, Rule, RuleRefused


class RuleError(SetupError):
    """A rule's function failed or returned something that is not an aggregate of its inputs."""


def check_output(name: str, agg: Any, x: Tensor) -> None:
    """A rule must return a floating tensor of shape (d,) on the inputs' device (and weights, when
    given, of shape (m,)); anything else is a RuleError naming the rule. A non-finite value is not
    an error here: the method refuses to step on it, and the round is counted as skipped."""
    value = agg.value if isinstance(agg, Aggregate) else agg
    if not isinstance(value, Tensor):
        raise RuleError(f"aggregator.name: rule {name!r} returned {type(value).__name__}, not a tensor")
    if tuple(value.shape) != tuple(x.shape[1:]) or not value.is_floating_point():
        raise RuleError(
            f"aggregator.name: rule {name!r} returned a {value.dtype} tensor of shape {tuple(value.shape)}; "
            f"expected a floating tensor of shape {tuple(x.shape[1:])}"
        )
    weights = agg.weights if isinstance(agg, Aggregate) else None
    if weights is not None and (not isinstance(weights, Tensor) or tuple(weights.shape) != (x.shape[0],)):
        raise RuleError(f"aggregator.name: rule {name!r} returned weights that are not one per input ({x.shape[0]})")


@dataclass
class Pipeline:
    rule: Rule
    rule_params: dict[str, Any]
    pre: list[tuple[PreAggregator, dict[str, Any]]]
    seed: int
    state: dict[str, Tensor] = field(default_factory=dict)  # the stateful rule's state (checkpointed)
    #: one reused output tensor per pre-aggregator stage (docs/performance.md: no page faults a round)
    buffers: list[OutputBuffer] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def build(cls, name: str, params: dict[str, Any], pre: list[tuple[str, dict[str, Any]]], seed: int) -> Pipeline:
        """From catalogue names; declared parameters not given take their declared defaults."""

        stages = [(PRE_AGGREGATORS.lookup(p), PRE_AGGREGATORS.resolve(p, pp, f"aggregator.{p}")) for p, pp in pre]
        return cls(RULES.lookup(name), RULES.resolve(name, params), stages, seed)

    def shape(self, m: int, f: int) -> tuple[int, int]:
        """(m, f) as the rule sees them after the pre-aggregators."""
        for pre, params in self.pre:
            m, f = pre.shape(m, f, **params)
        return m, f

    def valid(self, m: int, f: int) -> bool:
        m2, f2 = self.shape(m, f)
        return self.rule.valid(m2, f2, **self.rule_params)

    def peek(self, x: Tensor, *, f: int, round_: int, clients: np.ndarray | None = None) -> Aggregate:
        """The aggregate of ``x`` without touching the rule's state (for attacks that search)."""
        saved = self.state
        self.state = copy.deepcopy(saved)
        try:
            return self(x, f=f, round_=round_, clients=clients)
        finally:
            self.state = saved

    def __call__(self, x: Tensor, *, f: int, round_: int, clients: np.ndarray | None = None) -> Aggregate:
        """Aggregate the rows of ``x`` (row i sent by client ``clients[i]`` when given); the weights
        (when the rule gives them) refer to the rows of ``x`` (mapped back through the
        pre-aggregators' mixing matrices), or are None. Raises RuleRefused when the rule declines
        the round's inputs."""
        m_in = x.shape[0]
        mix: Tensor | None = None
        mixable = True  # every stage so far gave its mixing matrix
        generator = None
        while len(self.buffers) < len(self.pre):
            self.buffers.append(OutputBuffer())
        for (pre, params), buffer in zip(self.pre, self.buffers, strict=False):
            if generator is None:
                generator = rng.torch_generator(self.seed, round_, "pre-aggregate", device=x.device)
            if pre.takes_out:
                out = pre.apply(x, f=f, generator=generator, out=buffer, **params)
            else:
                out = pre.apply(x, f=f, generator=generator, **params)
            x, f = out.x, out.f
            if out.mix is None:
                mixable = False
            elif mixable:
                mix = out.mix if mix is None else out.mix @ mix
        if not self.rule.valid(x.shape[0], f, **self.rule_params):
            # a round whose rejections leave the rule invalid (e.g. fewer inputs than Multi-Krum's k)
            raise RuleRefused(
                f"{self.rule.name} needs {self.rule.condition.text}; this round gives m = {x.shape[0]}, f = {f}"
            )
        kwargs = dict(self.rule_params)
        if self.rule.stateful:
            kwargs["state"] = self.state
        if self.rule.takes_clients:  # rows still stand for clients only if no stage changed their number
            kwargs["clients"] = clients if x.shape[0] == m_in else None
        try:
            agg = self.rule(x, f=f, **kwargs)
        except RuleRefused:
            raise
        except Exception as exc:  # a rule that crashes is a bug of the rule, reported as one line
            detail = " ".join(str(exc).split())[:300]
            raise RuleError(f"aggregator.name: rule {self.rule.name!r} raised {type(exc).__name__}: {detail}") from None
        check_output(self.rule.name, agg, x)
        if self.pre and any(b.holds(agg.value) for b in self.buffers):  # a view of a stage's output: copy it out
            agg = Aggregate(agg.value.clone(), agg.weights)
        if agg.weights is None or (mixable and mix is None):
            return agg
        if not mixable or mix is None:
            return Aggregate(agg.value, None)
        return Aggregate(agg.value, mix.T.to(agg.weights.dtype).cpu() @ agg.weights)
