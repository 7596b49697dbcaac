"""Users, logins, sessions and API tokens."""

from __future__ import annotations

import datetime as dt
import logging
import re

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from medlabel.core.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from medlabel.core.ids import utcnow
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.security.passwords import check_policy, hash_password, needs_rehash, verify_password
from medlabel.security.roles import Role
from medlabel.security.tokens import TokenKind, new_token, token_hash
from medlabel.services.access import Principal, require_admin
from medlabel.services.context import Context
from medlabel.storage.db.models import AuthToken, User

log = logging.getLogger(__name__)

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
# a valid hash to verify against when the user does not exist (constant-time-ish login)
_DUMMY_HASH = hash_password("not-a-real-password")


def principal_of(user: User) -> Principal:
    return Principal(id=user.id, username=user.username, role=Role(user.role))


def create_user(
    ctx: Context,
    username: str,
    password: str,
    role: Role | str,
    *,
    full_name: str = "",
    actor: Principal | None = None,
) -> User:
    """Create a user. ``actor`` must be an admin unless None (the CLI, run by the
    machine's operator).

    Raises
    ------
    InvalidInputError
        Bad username, role or password.
    ConflictError
        The username is taken.
    """
    if actor is not None:
        require_admin(actor)
    if not _USERNAME.match(username):
        raise InvalidInputError(
            "usernames are 1-64 characters: letters, digits and . _ @ - (not first)"
        )
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInputError(
            f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}"
        ) from None
    check_policy(password)
    with ctx.db.write() as s:
        if s.scalar(select(User.id).where(func.lower(User.username) == username.lower())):
            raise ConflictError(f"user {username!r} already exists")
        user = User(
            username=username,
            password_hash=hash_password(password),
            role=role.value,
            full_name=full_name,
        )
        s.add(user)
        s.flush()
        audit.record(
            s,
            actor,
            AuditAction.USER_CREATE,
            target_type="user",
            target_id=user.id,
            details={"role": role.value},
        )
    log.info("created user id=%s role=%s", user.id, role.value)
    return user


def list_users(ctx: Context, actor: Principal) -> list[User]:
    require_admin(actor)
    with ctx.db.read() as s:
        return list(s.scalars(select(User).order_by(User.username)))


def update_user(
    ctx: Context,
    actor: Principal | None,
    user_id: int,
    *,
    role: Role | str | None = None,
    is_active: bool | None = None,
    password: str | None = None,
    full_name: str | None = None,
) -> User:
    """Change a user's role, activity, password or name.

    Admins may change anyone; users may change their own password and name. ``actor``
    None is the machine's operator (CLI)."""
    if actor is not None and (actor.id != user_id or role is not None or is_active is not None):
        require_admin(actor)
    with ctx.db.write() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFoundError(f"user {user_id} not found")
        if role is not None:
            try:
                user.role = Role(role).value
            except ValueError:
                raise InvalidInputError(f"unknown role {role!r}") from None
        if is_active is not None:
            if not is_active and actor is not None and user.id == actor.id:
                raise InvalidInputError("you cannot deactivate yourself")
            user.is_active = is_active
            if not is_active:
                _revoke_all(s, user.id)
        if password is not None:
            check_policy(password)
            user.password_hash = hash_password(password)
            _revoke_all(s, user.id)
        if full_name is not None:
            user.full_name = full_name[:200]
        if user.role != Role.ADMIN.value or not user.is_active:
            _keep_one_admin(s)
        audit.record(
            s,
            actor,
            AuditAction.USER_UPDATE,
            target_type="user",
            target_id=user.id,
            details={
                **audit.changed(
                    role=role, is_active=is_active, password=password, full_name=full_name
                ),
                "role": user.role,
                "is_active": user.is_active,
            },
        )
    ctx.forget_access()
    return user


def _keep_one_admin(s: Session) -> None:
    s.flush()
    admins = s.scalar(
        select(func.count()).where(User.role == Role.ADMIN.value, User.is_active.is_(True))
    )
    if not admins:
        raise ConflictError("this would leave no active administrator")


def _revoke_all(s: Session, user_id: int) -> None:
    s.execute(
        update(AuthToken)
        .where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def authenticate(ctx: Context, username: str, password: str) -> Principal:
    """Check a username and password; lock the account for a while after repeated
    failures.

    Raises
    ------
    AuthenticationError
        Wrong credentials, inactive or locked account (one message for all, so the
        response does not tell which usernames exist).
    """
    settings = ctx.settings
    now = utcnow()
    # failures are committed (audit row, failure count), then raised
    failure: str | None = None
    with ctx.db.write() as s:
        user = s.scalar(select(User).where(func.lower(User.username) == username.lower()))
        if user is None:
            verify_password(_DUMMY_HASH, password)
            # the attempted name is not kept: it may be a mistyped password
            audit.record(s, None, AuditAction.LOGIN_FAILED, details={"reason": "unknown_user"})
            failure = "wrong username or password"
        elif user.locked_until is not None and user.locked_until > now:
            _login_failed(s, user, "locked")
            failure = "too many failed logins; this account is locked for a few minutes"
        elif not user.is_active or not verify_password(user.password_hash, password):
            user.failed_logins += 1
            locked = user.failed_logins >= settings.login_max_failures
            if locked:
                user.locked_until = now + dt.timedelta(seconds=settings.login_lockout_seconds)
                user.failed_logins = 0
                log.warning("locked user id=%s after repeated failed logins", user.id)
            reason = "wrong_password" if user.is_active else "inactive"
            _login_failed(s, user, reason, locked=locked)
            failure = "wrong username or password"
        else:
            user.failed_logins = 0
            user.locked_until = None
            if needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            principal = principal_of(user)
            audit.record(s, principal, AuditAction.LOGIN, target_type="user", target_id=user.id)
    if failure is not None:
        raise AuthenticationError(failure)
    return principal


def _login_failed(s: Session, user: User, reason: str, *, locked: bool = False) -> None:
    details: dict[str, object] = {"reason": reason}
    if locked:
        details["locked"] = True
    audit.record(
        s,
        principal_of(user),
        AuditAction.LOGIN_FAILED,
        target_type="user",
        target_id=user.id,
        details=details,
    )


def issue_token(
    ctx: Context,
    principal: Principal,
    kind: TokenKind,
    *,
    name: str = "",
    ttl: dt.timedelta | None = None,
) -> tuple[str, AuthToken]:
    """Create a session or API token; the secret is returned once and never stored."""
    secret = new_token()
    with ctx.db.write() as s:
        row = AuthToken(
            user_id=principal.id,
            kind=kind.value,
            name=name[:100],
            token_hash=token_hash(secret),
            expires_at=utcnow() + ttl if ttl else None,
        )
        s.add(row)
        if kind == TokenKind.API:
            s.flush()
            audit.record(
                s, principal, AuditAction.TOKEN_CREATE, target_type="token", target_id=row.id
            )
    return secret, row


def resolve_token(ctx: Context, secret: str) -> Principal | None:
    """The user a token belongs to, or None if unknown, expired or revoked."""
    if not secret or len(secret) > 200:
        return None
    key = ("token", token_hash(secret))
    cached = ctx.auth_cache.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    now = utcnow()
    with ctx.db.read() as s:
        row = s.scalar(select(AuthToken).where(AuthToken.token_hash == token_hash(secret)))
        if row is None or row.revoked_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= now:
            return None
        user = s.get(User, row.user_id)
        if user is None or not user.is_active:
            return None
        stale = row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=5)
        principal = principal_of(user)
        token_id = row.id
    if stale:  # record use at most every few minutes, to keep reads cheap
        with ctx.db.write() as s:
            s.execute(update(AuthToken).where(AuthToken.id == token_id).values(last_used_at=now))
    ctx.auth_cache.set(key, principal)
    return principal


def revoke_token(ctx: Context, secret: str) -> None:
    """Revoke the token with this secret (logout)."""
    ctx.forget_access()
    with ctx.db.write() as s:
        row = s.scalar(
            select(AuthToken).where(
                AuthToken.token_hash == token_hash(secret), AuthToken.revoked_at.is_(None)
            )
        )
        if row is None:
            return
        row.revoked_at = utcnow()
        user = s.get(User, row.user_id)
        if user is not None:
            action = (
                AuditAction.LOGOUT
                if row.kind == TokenKind.SESSION.value
                else AuditAction.TOKEN_REVOKE
            )
            audit.record(s, principal_of(user), action, target_type="token", target_id=row.id)


def list_api_tokens(ctx: Context, principal: Principal) -> list[AuthToken]:
    with ctx.db.read() as s:
        return list(
            s.scalars(
                select(AuthToken)
                .where(
                    AuthToken.user_id == principal.id,
                    AuthToken.kind == TokenKind.API.value,
                    AuthToken.revoked_at.is_(None),
                )
                .order_by(AuthToken.id)
            )
        )


def revoke_api_token(ctx: Context, principal: Principal, token_id: int) -> None:
    with ctx.db.write() as s:
        row = s.get(AuthToken, token_id)
        if row is None or row.user_id != principal.id or row.kind != TokenKind.API.value:
            raise NotFoundError(f"API token {token_id} not found")
        row.revoked_at = utcnow()
        audit.record(s, principal, AuditAction.TOKEN_REVOKE, target_type="token", target_id=row.id)
    ctx.forget_access()


def get_user(ctx: Context, user_id: int) -> User:
    with ctx.db.read() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFoundError(f"user {user_id} not found")
        return user
