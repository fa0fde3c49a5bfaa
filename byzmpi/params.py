"""Declared parameters of pluggable components (rules, attacks, methods, compressors).

Each component lists its parameters once, as :class:`Param` objects; config validation,
``byzmpi list`` and the docs all read the same declaration.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Param:
    name: str
    type: type[Any]  # int, float, str, bool, or list (a list of ints)
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False  # None (TOML: omitted) allowed and meaningful, e.g. "derive from f"
    item: builtins.type[Any] = int  # element type when ``type`` is list

    def describe(self) -> str:
        bits = [f"{self.name}: {self.type.__name__} = {self.default!r}"]
        if self.choices:
            bits.append("one of " + ", ".join(map(str, self.choices)))
        if self.minimum is not None or self.maximum is not None:
            lo = "-inf" if self.minimum is None else repr(self.minimum)
            hi = "inf" if self.maximum is None else repr(self.maximum)
            bits.append(f"in [{lo}, {hi}]")
        return f"{bits[0]}  ({'; '.join(bits[1:]) + '; ' if len(bits) > 1 else ''}{self.doc})"


def coerce_value(expected: type, value: Any, field: str, *, nullable: bool = False, item: type = int) -> Any:
    """Check a TOML value against a scalar type (int accepted where float is expected)."""
    if value is None:
        if nullable:
            return None
        raise ConfigError(field, f"must be a {expected.__name__}, got nothing")
    if isinstance(value, dict):
        raise ConfigError(field, f"must be a {expected.__name__}, got a table")
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif expected is str:
        ok = isinstance(value, str)
    elif expected is list:
        ok = isinstance(value, list) and all(isinstance(v, item) and not isinstance(v, bool) for v in value)
        if not ok:
            noun = "integers" if item is int else "strings"
            raise ConfigError(field, f"must be a list of {noun}, got {value!r}")
    else:  # pragma: no cover - declarations only use the four scalar types
        raise TypeError(expected)
    if not ok:
        raise ConfigError(field, f"must be a {expected.__name__}, got {type(value).__name__} {value!r}")
    return value


def check_param(p: Param, value: Any, field: str) -> Any:
    value = coerce_value(p.type, value, field, nullable=p.nullable, item=p.item)
    if value is None:
        return None
    if p.choices is not None and value not in p.choices:
        raise ConfigError(field, f"must be one of {', '.join(map(str, p.choices))} (got {value!r})")
    if isinstance(value, list):
        return value
    if p.minimum is not None and value < p.minimum:
        raise ConfigError(field, f"must be >= {p.minimum} (got {value!r})")
    if p.maximum is not None and value > p.maximum:
        raise ConfigError(field, f"must be <= {p.maximum} (got {value!r})")
    if isinstance(value, float) and value != value:
        raise ConfigError(field, "must not be NaN")
    return value


def resolve_params(declared: Mapping[str, Param], given: Mapping[str, Any], section: str, owner: str) -> dict[str, Any]:
    """Defaults filled in, every given key known and valid; raises ConfigError naming the field."""
    out = {}
    for key, value in given.items():
        if key not in declared:
            allowed = ", ".join(declared) or "none"
            shown = key if key.isidentifier() else repr(key)  # a quoted TOML key may hold a newline
            raise ConfigError(f"{section}.{shown}", f"unknown parameter of {owner!r}; allowed: {allowed}")
        out[key] = check_param(declared[key], value, f"{section}.{key}")
    for key, p in declared.items():
        out.setdefault(key, p.default)
    return out
