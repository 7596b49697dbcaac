"""One access-log line per request (``medlabel.access``), and a request id that tags
every log record made while the request is served."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medlabel.core.logs import log_context

log = logging.getLogger("medlabel.access")

REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: probed every few seconds by load balancers: logged at DEBUG only
_QUIET = frozenset({"/api/health", "/api/ready"})


def _request_id(scope: Scope) -> str:
    """The caller's (a proxy's) ``X-Request-ID`` when it is a plain token, else new."""
    for key, value in scope.get("headers") or []:
        if key == REQUEST_ID_HEADER.encode():
            text = bytes(value).decode("latin-1")
            if _VALID_ID.match(text):
                return text
    return uuid.uuid4().hex


class AccessLogMiddleware:
    """Logs method, path (never the query string: it may hold tokens), status, duration,
    user id and request id of each HTTP request, and returns the request id in the
    ``X-Request-ID`` response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers") or [])
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._log(scope, status, time.perf_counter() - start)

    @staticmethod
    def _log(scope: Scope, status: int, seconds: float) -> None:
        path = scope.get("path", "")
        level = logging.DEBUG if path in _QUIET and status < 400 else logging.INFO
        if not log.isEnabledFor(level):
            return
        principal = (scope.get("state") or {}).get("principal")
        user_id = getattr(principal, "id", None)
        method = scope.get("method", "")
        ms = round(seconds * 1000.0, 1)
        client = scope.get("client")
        log.log(
            level,
            "%s %s %d %.1f ms user=%s",
            method,
            path,
            status,
            ms,
            user_id if user_id is not None else "-",
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": ms,
                "user_id": user_id,
                "client": client[0] if client else None,
            },
        )
