"""Engines for the benchmark tests: the real ones medlabel ships."""

from __future__ import annotations

import pytest

from medlabel.engines.registry import EngineRegistry, default_registry


@pytest.fixture(scope="module")
def registry() -> EngineRegistry:
    return default_registry()
