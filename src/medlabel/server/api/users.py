"""Users (administrators manage them)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from medlabel.security.roles import Role
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import users as svc

router = APIRouter(prefix="/users", tags=["users"])


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str
    role: Role
    is_active: bool
    created_at: dt.datetime


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: Role = Role.ANNOTATOR
    full_name: str = Field(default="", max_length=200)


class UserUpdate(BaseModel):
    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, max_length=1024)
    full_name: str | None = Field(default=None, max_length=200)


@router.get("", response_model=list[UserOut])
def list_users(ctx: CtxDep, me: PrincipalDep) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in svc.list_users(ctx, me)]


@router.post("", response_model=UserOut, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, ctx: CtxDep, me: PrincipalDep) -> UserOut:
    user = svc.create_user(
        ctx, body.username, body.password, body.role, full_name=body.full_name, actor=me
    )
    return UserOut.model_validate(user)


@router.patch("/{user_id}", response_model=UserOut)
def update_user(user_id: int, body: UserUpdate, ctx: CtxDep, me: PrincipalDep) -> UserOut:
    user = svc.update_user(
        ctx,
        me,
        user_id,
        role=body.role,
        is_active=body.is_active,
        password=body.password,
        full_name=body.full_name,
    )
    return UserOut.model_validate(user)
