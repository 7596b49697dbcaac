"""The engines this process offers, created once on first use.

Engines register a factory under a name; heavy engines (models) are built lazily, once
per process, and report a missing optional dependency by naming the extra to install.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from medlabel.core.errors import MissingDependencyError, NotFoundError
from medlabel.engines.base import AnnotationEngine

log = logging.getLogger(__name__)

Factory = Callable[[], AnnotationEngine]


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Factory
    #: an optional module the engine needs, checked without importing it
    needs: str | None = None
    extra: str | None = None
    #: the engine's class, for describing it without building it (a model loads slowly)
    spec: Callable[[], type] | None = None


class EngineRegistry:
    """Named engine factories and the instances built from them (thread-safe)."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._instances: dict[str, AnnotationEngine] = {}
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        factory: Factory,
        *,
        needs: str | None = None,
        extra: str | None = None,
        spec: Callable[[], type] | None = None,
    ) -> None:
        """Register ``factory`` under ``name``; ``spec`` returns the engine's class (its
        class attributes describe it) when the factory is not the class itself."""
        if name in self._entries:
            raise ValueError(f"an engine named {name!r} is already registered")
        self._entries[name] = Entry(name, factory, needs, extra, spec)

    def describe(self, name: str) -> AnnotationEngine:
        """The engine if built, else its class (same attributes), without building it."""
        inst = self._instances.get(name)
        if inst is not None:
            return inst
        entry = self._entry(name)
        if isinstance(entry.factory, type):
            return entry.factory  # type: ignore[return-value]
        if entry.spec is not None and self.available(name):
            return entry.spec()  # type: ignore[return-value]
        return self.get(name)

    def names(self) -> list[str]:
        return list(self._entries)

    def available(self, name: str) -> bool:
        """Whether the engine's optional dependency is installed (without importing it)."""
        entry = self._entry(name)
        if entry.needs is None:
            return True
        import importlib.util

        return importlib.util.find_spec(entry.needs) is not None

    def get(self, name: str) -> AnnotationEngine:
        """The engine instance, built on first use."""
        entry = self._entry(name)
        inst = self._instances.get(name)
        if inst is not None:
            return inst
        if not self.available(name):
            raise MissingDependencyError(
                f"engine {name!r} needs the optional package {entry.needs!r}: "
                f"install it with `pip install 'medlabel[{entry.extra}]'`"
            )
        with self._lock:
            inst = self._instances.get(name)
            if inst is None:
                log.info("loading engine %s", name)
                inst = entry.factory()
                self._instances[name] = inst
        return inst

    def loaded(self, name: str) -> bool:
        return name in self._instances

    def _entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self._entries) or "none"
            raise NotFoundError(f"no engine named {name!r} (known: {known})") from None


def default_registry() -> EngineRegistry:
    """A registry with every engine medlabel ships (models only if their extra is installed)."""
    from medlabel.engines.catalog import register_all

    reg = EngineRegistry()
    register_all(reg)
    return reg
