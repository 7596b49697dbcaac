"""Tell the audit log where each request comes from (the client's address)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from medlabel.security.audit import Origin, origin_scope


class AuditOriginMiddleware:
    """Set the audit origin of each HTTP request to the client's IP address.

    Behind a reverse proxy, run uvicorn with ``--proxy-headers`` (and
    ``--forwarded-allow-ips``) so the address is the real client's, not the proxy's.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        with origin_scope(Origin(client=str(client[0]) if client else "")):
            await self.app(scope, receive, send)
