"""Map the error hierarchy (and request validation) to JSON responses, in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from medlabel.core.errors import MedlabelError

log = logging.getLogger(__name__)

#: what a 503 for a busy database asks clients to wait
RETRY_AFTER_SECONDS = 2


def _is_busy(exc: Exception) -> bool:
    """A database that is overloaded rather than broken."""
    if isinstance(exc, SQLAlchemyTimeoutError):
        return True
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "database table is locked" in text


def _body(code: str, message: str, details: object = None) -> dict[str, object]:
    out: dict[str, object] = {"error": code, "message": message}
    if details:
        out["details"] = details
    return out


def _loc(loc: tuple[object, ...] | list[object]) -> str:
    return ".".join(str(p) for p in loc if p not in ("body",)) or "request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MedlabelError)
    async def _medlabel(_: Request, exc: MedlabelError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("server error: %s", exc.message)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(
            _body(exc.code, exc.message, exc.details), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        parts = [f"{_loc(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:10]]
        clean = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in errors
        ]
        return JSONResponse(_body("invalid_input", "; ".join(parts), clean), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            _body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    async def _busy(_: Request, exc: Exception) -> JSONResponse:
        # an overloaded database (SQLite's write lock held past the busy timeout, a pool
        # with no free connection) is a temporary condition: 503, try again shortly
        if not _is_busy(exc):
            log.exception("database error", exc_info=exc)
            return JSONResponse(
                _body("internal_error", "internal server error; see the server log"),
                status_code=500,
            )
        log.warning("database busy: %s", str(exc).splitlines()[0][:200])
        return JSONResponse(
            _body("busy", "the database is busy; try again in a moment"),
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            _body("internal_error", "internal server error; see the server log"), status_code=500
        )
