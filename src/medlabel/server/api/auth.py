"""Login, logout, the current user, and personal API tokens."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from medlabel.security.tokens import TokenKind
from medlabel.server.api.users import UserOut
from medlabel.server.deps import SESSION_COOKIE, CtxDep, PrincipalDep
from medlabel.services import users as svc

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenIn(BaseModel):
    name: str = Field(default="", max_length=100)
    days: int | None = Field(default=None, ge=1, le=3650, description="Expiry; none = never.")


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="The secret; shown once.")


@router.post("/login", response_model=UserOut)
def login(body: LoginIn, response: Response, ctx: CtxDep) -> UserOut:
    """Check credentials and set the session cookie."""
    principal = svc.authenticate(ctx, body.username, body.password)
    hours = ctx.settings.session_hours
    secret, _ = svc.issue_token(ctx, principal, TokenKind.SESSION, ttl=dt.timedelta(hours=hours))
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(hours * 3600),
        httponly=True,
        samesite="lax",
        secure=ctx.settings.cookie_secure,
        path="/",
    )
    return UserOut.model_validate(svc.get_user(ctx, principal.id))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, response: Response, ctx: CtxDep, me: PrincipalDep) -> None:
    """End the session (the cookie's token is revoked server-side)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        svc.revoke_token(ctx, token)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=UserOut)
def me(ctx: CtxDep, me: PrincipalDep) -> UserOut:
    return UserOut.model_validate(svc.get_user(ctx, me.id))


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(ctx: CtxDep, me: PrincipalDep) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in svc.list_api_tokens(ctx, me)]


@router.post("/tokens", response_model=NewTokenOut, status_code=status.HTTP_201_CREATED)
def create_token(body: TokenIn, ctx: CtxDep, me: PrincipalDep) -> NewTokenOut:
    """Create a personal API token for scripts (``Authorization: Bearer <token>``)."""
    ttl = dt.timedelta(days=body.days) if body.days else None
    secret, row = svc.issue_token(ctx, me, TokenKind.API, name=body.name, ttl=ttl)
    return NewTokenOut(token=secret, **TokenOut.model_validate(row).model_dump())


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: int, ctx: CtxDep, me: PrincipalDep) -> None:
    svc.revoke_api_token(ctx, me, token_id)
