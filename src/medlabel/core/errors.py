"""One error hierarchy for the whole package.

Every error a user can cause is a subclass of :class:`MedlabelError` with an HTTP status
code; the server maps them to responses in one handler and the CLI prints their message.
Messages say what was wrong and, where possible, how to fix it.
"""

from __future__ import annotations

from typing import Any


class MedlabelError(Exception):
    """Base class of all errors medlabel raises on purpose."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInputError(MedlabelError):
    """The request or file is malformed or violates a rule (HTTP 422)."""

    status_code = 422
    code = "invalid_input"


class UnsupportedFormatError(InvalidInputError):
    """A file is of a format or encoding medlabel cannot read (HTTP 415)."""

    status_code = 415
    code = "unsupported_format"


class TooLargeError(InvalidInputError):
    """An upload, archive or image exceeds a configured limit (HTTP 413)."""

    status_code = 413
    code = "too_large"


class NotFoundError(MedlabelError):
    """The named object does not exist or is not visible to the caller (HTTP 404)."""

    status_code = 404
    code = "not_found"


class ConflictError(MedlabelError):
    """The object changed since the caller read it, or a unique name is taken (HTTP 409)."""

    status_code = 409
    code = "conflict"


class AuthenticationError(MedlabelError):
    """Missing or wrong credentials (HTTP 401)."""

    status_code = 401
    code = "not_authenticated"


class PermissionDeniedError(MedlabelError):
    """The caller is authenticated but not allowed to do this (HTTP 403)."""

    status_code = 403
    code = "permission_denied"


class RemoteServiceError(MedlabelError):
    """A remote service the request needs (a PACS) could not be reached, refused our
    credentials or failed (HTTP 424 Failed Dependency: a 4xx, since the fix is usually
    in the caller's connection settings; ``details`` name the service and its status)."""

    status_code = 424
    code = "remote_service_failed"


class MissingDependencyError(MedlabelError):
    """An optional extra is needed for this feature (HTTP 501)."""

    status_code = 501
    code = "missing_dependency"


class ConfigurationError(MedlabelError):
    """Settings are invalid or insecure (raised at start-up)."""

    status_code = 500
    code = "configuration_error"
