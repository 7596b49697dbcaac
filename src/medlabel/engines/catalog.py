"""Every engine medlabel ships, registered by name."""

from __future__ import annotations

from medlabel.engines.registry import EngineRegistry


def register_all(registry: EngineRegistry) -> None:
    """Register the classical tools and, lazily, the promptable models."""
    from medlabel.engines.classical import register as register_classical
    from medlabel.engines.interactive import register as register_interactive

    register_classical(registry)
    register_interactive(registry)
