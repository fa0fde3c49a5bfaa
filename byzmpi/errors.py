"""Errors that byzmpi reports as one line and exit status 2 (no traceback)."""

from __future__ import annotations


class ByzmpiError(Exception):
    """A user-facing error: printed as one line, exit status 2."""

    exit_code = 2

    def line(self) -> str:
        return f"byzmpi: {self}"


class ConfigError(ByzmpiError, ValueError):
    """A config field is missing, mistyped or out of range. Names the field and what is allowed.
    Also a ValueError, so code that calls a component directly with a bad parameter can catch it
    as one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field

    def line(self) -> str:
        return f"byzmpi: config error: {self}"


class SetupError(ByzmpiError):
    """The run cannot start: too few ranks, a data file that cannot be read, a bad checkpoint."""
