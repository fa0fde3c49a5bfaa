"""``byzmpi list``: every method, aggregation rule, pre-aggregator, attack and compressor, with its
parameters, defaults and validity condition."""

from __future__ import annotations

from .aggregators import PRE_AGGREGATORS, RULES
from .attacks import ATTACKS
from .compressors import COMPRESSORS
from .methods import METHODS
from .params import Param


def _params(params: dict[str, Param], indent: str = "      ") -> list[str]:
    return [indent + p.describe() for p in params.values()]


def format_catalogue() -> str:
    lines = ["methods ([method] name = ...):"]
    for spec in METHODS.values():
        extra = " (full participation)" if spec.full_participation else ""
        lines += [f"  {spec.name}: {spec.doc}{extra}", *_params(spec.params)]
    lines += [
        "",
        "aggregation rules ([aggregator] name = ..., f = Byzantine inputs tolerated, default clients.byzantine):",
    ]
    for rule in RULES.values():
        state = " (stateful)" if rule.stateful else ""
        lines += [f"  {rule.name}: {rule.doc}{state}", f"      valid when {rule.condition}", *_params(rule.params)]
    lines += ["", "pre-aggregators ([aggregator] pre = [...], parameters in [aggregator.<name>]):"]
    for pre in PRE_AGGREGATORS.values():
        lines += [f"  {pre.name}: {pre.doc}", *_params(pre.params)]
    lines += ["", "attacks ([attack] name = ..., threat_model = omniscient | local):"]
    for attack in ATTACKS.values():
        models = "omniscient, local" if attack.local is not None else "omniscient only"
        lines += [f"  {attack.name}: {attack.doc} [{models}]", *_params(attack.params)]
    lines += ["", "compressors ([compressor] name = ...):"]
    for spec in COMPRESSORS.values():
        lines += [f"  {spec.name}: {spec.doc}", *_params(spec.params)]
    return "\n".join(lines)
