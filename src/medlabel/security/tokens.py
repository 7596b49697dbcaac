"""Secrets for sessions and API tokens; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

TOKEN_PREFIX = "mlb_"


class TokenKind(StrEnum):
    SESSION = "session"
    API = "api"


def new_token() -> str:
    """A fresh random secret (256 bits), prefixed so leaked tokens are recognisable."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The hex SHA-256 under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
