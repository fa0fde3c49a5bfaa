"""One registry for the five catalogues (rules, pre-aggregators, attacks, compressors, methods).

A :class:`Registry` maps names to entries (frozen dataclasses with at least ``name``, ``doc`` and
``params``, the declared :class:`~byzmpi.params.Param` list). It is the one place that

* registers an entry (refusing to shadow one silently),
* looks a name up, naming every choice when it is unknown (:class:`~byzmpi.errors.ConfigError`),
* fills declared defaults and checks given parameters (:meth:`Registry.resolve`).

A :class:`Condition` is the one way to state validity: a predicate plus the same fact in words. A
rule's registered condition is what config validation checks against every round size the sampler
can produce, and it is also what the rule's own function calls as its guard
(:meth:`Condition.require`), so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .errors import ConfigError
from .params import Param, resolve_params


@dataclass(frozen=True)
class Condition:
    """A validity condition stated once: ``test(**values) -> bool`` and ``text``, the same in words
    (e.g. ``Condition("m > 2f + 2", lambda m, f, **_: m > 2 * f + 2)``)."""

    text: str
    test: Callable[..., bool]

    def holds(self, **values: Any) -> bool:
        """Whether the condition holds; an exception inside the predicate counts as "does not hold"
        (a user's condition must not crash validation)."""
        try:
            return bool(self.test(**values))
        except Exception:  # noqa: BLE001 - a plugin's predicate may raise anything
            return False

    def require(self, owner: str, **values: Any) -> None:
        """The function-side guard: raise ValueError naming ``owner``, the condition and the values."""
        if not self.holds(**values):
            shown = ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)
            raise ValueError(f"{owner} needs {self.text}, got {shown}")


ALWAYS = Condition("always valid", lambda **_: True)


class Entry(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def doc(self) -> str: ...
    @property
    def params(self) -> dict[str, Param]: ...


E = TypeVar("E", bound=Entry)


class Registry(Mapping[str, E], Generic[E]):
    """A catalogue of named entries. ``kind`` names the catalogue in messages ("aggregation rule");
    ``section`` is the config section whose ``name`` selects an entry ("aggregator")."""

    def __init__(self, kind: str, section: str) -> None:
        self.kind, self.section = kind, section
        self._entries: dict[str, E] = {}

    # -- Mapping ------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> E:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __delitem__(self, name: str) -> None:
        """Remove an entry (tests that register a temporary one clean up with this)."""
        del self._entries[name]

    def pop(self, name: str, default: E | None = None) -> E | None:
        return self._entries.pop(name, default)

    # -- the one registration, lookup and parameter path ---------------------------------------
    def register(self, entry: E, *, replace: bool = False) -> E:
        """Add ``entry``; refuses to shadow an existing name unless ``replace``."""
        if entry.name in self._entries and not replace:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry
        return entry

    def lookup(self, name: object, field: str | None = None) -> E:
        """The entry called ``name``, or a ConfigError on ``field`` (default ``<section>.name``)
        listing every choice."""
        if not isinstance(name, str) or name not in self._entries:
            raise ConfigError(
                field or f"{self.section}.name",
                f"must be one of {', '.join(sorted(self._entries)) or 'none'} (got {name!r})",
            )
        return self._entries[name]

    def resolve(self, name: str, given: Mapping[str, Any], section: str | None = None) -> dict[str, Any]:
        """The parameters of ``name`` with declared defaults filled in and every given one checked
        (unknown keys, types, ranges, choices); raises ConfigError naming ``section.key``."""
        return resolve_params(self.lookup(name).params, given, section or self.section, name)
