"""The expiring cache behind sessions and permissions."""

from __future__ import annotations

import time

from medlabel.core.cache import TTLCache


def test_expiry_size_and_disable() -> None:
    c: TTLCache[int] = TTLCache(seconds=0.05, max_items=2)
    c.set("a", 1)
    c.set("b", 2)
    c.set("c", 3)  # evicts the least recently used
    assert c.get("a") is None and c.get("c") == 3
    time.sleep(0.06)
    assert c.get("c") is None
    off: TTLCache[int] = TTLCache(seconds=0)
    off.set("a", 1)
    assert off.get("a") is None
