"""Password hashing with Argon2id."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from medlabel.core.errors import InvalidInputError

_HASHER = PasswordHasher()  # RFC 9106 low-memory profile defaults

MIN_LENGTH = 8


def check_policy(password: str) -> None:
    """Reject passwords that are too short or blank.

    Raises
    ------
    InvalidInputError
        If the password has fewer than 8 characters or only whitespace.
    """
    if len(password) < MIN_LENGTH or not password.strip():
        raise InvalidInputError(f"passwords need at least {MIN_LENGTH} characters")
    if len(password) > 1024:
        raise InvalidInputError("passwords may have at most 1024 characters")


def hash_password(password: str) -> str:
    """Argon2id hash of ``password`` (salted; the string encodes its parameters)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True if ``password`` matches ``password_hash``; never raises on a mismatch."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than the current ones."""
    return _HASHER.check_needs_rehash(password_hash)
