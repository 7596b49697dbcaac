"""Request dependencies: the application context and the authenticated principal."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from medlabel.core.errors import AuthenticationError, PermissionDeniedError
from medlabel.security.tokens import token_hash
from medlabel.services.access import Principal
from medlabel.services.context import Context
from medlabel.services.users import resolve_token

SESSION_COOKIE = "medlabel_session"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


async def get_ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


CtxDep = Annotated[Context, Depends(get_ctx)]


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _check_origin(request: Request, ctx: Context) -> None:
    """Cookie-authenticated writes must come from our own origin (CSRF defence on top
    of SameSite=Lax)."""
    origin = request.headers.get("origin")
    if not origin or origin in ctx.settings.allowed_origins:
        return
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise PermissionDeniedError("cross-site request refused (Origin does not match Host)")


async def current_principal(request: Request, ctx: CtxDep) -> Principal:
    """The user behind the request's API token (``Authorization: Bearer``) or session
    cookie.

    Raises
    ------
    AuthenticationError
        No valid credentials.
    """
    token = _bearer(request)
    via_cookie = False
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
        via_cookie = token is not None
    if not token:
        raise AuthenticationError("log in first: no session cookie or bearer token")
    principal: Principal | None = ctx.auth_cache.get(("token", token_hash(token)))
    if principal is None:  # not checked recently: ask the database (off the event loop)
        principal = await run_in_threadpool(resolve_token, ctx, token)
    if principal is None:
        raise AuthenticationError("your session or token is invalid or has expired; log in again")
    if via_cookie and request.method not in _SAFE_METHODS:
        _check_origin(request, ctx)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
