"""Identifiers and timestamps."""

from __future__ import annotations

import datetime as dt
import secrets


def new_id() -> str:
    """A random, URL-safe identifier of 22 characters (128 bits)."""
    return secrets.token_urlsafe(16)


def utcnow() -> dt.datetime:
    """The current time in UTC, timezone-aware."""
    return dt.datetime.now(dt.UTC)
