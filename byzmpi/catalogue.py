"""``byzmpi list``: every method, aggregation rule and attack, with parameters and conditions."""

from __future__ import annotations

from .aggregators import RULES
from .attacks import ATTACKS
from .methods import METHODS
from .params import Param


def _params(params: dict[str, Param], indent: str = "      ") -> list[str]:
    return [indent + p.describe() for p in params.values()]


def format_catalogue() -> str:
    lines = ["methods ([method] name = ...):"]
    for spec in METHODS.values():
        lines += [f"  {spec.name}: {spec.doc}", *_params(spec.params)]
    lines.append("")
    lines.append("aggregation rules ([aggregator] name = ..., f = Byzantine inputs tolerated, default clients.byzantine):")
    for rule in RULES.values():
        lines += [f"  {rule.name}: {rule.doc}", f"      valid when {rule.condition}", *_params(rule.params)]
    lines.append("")
    lines.append("attacks ([attack] name = ..., threat_model = omniscient | local):")
    for attack in ATTACKS.values():
        lines += [f"  {attack.name}: {attack.doc}", *_params(attack.params)]
    return "\n".join(lines)
