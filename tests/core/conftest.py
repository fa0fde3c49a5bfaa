"""Fixtures for the core (no MPI) tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep parsed data and optima of these tests out of the user's ~/.cache/byzmpi."""
    monkeypatch.setenv("BYZMPI_CACHE", str(tmp_path_factory.getbasetemp() / "byzmpi-cache"))
