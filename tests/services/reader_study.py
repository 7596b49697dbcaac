"""A reader-study world for service tests: a blinded project wanting two readers per
image, three real images, a reviewer and three annotators."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.security.passwords import hash_password
from medlabel.security.roles import ProjectRole, Role
from medlabel.services import annotations as ann_svc
from medlabel.services.access import Principal
from medlabel.services.context import Context
from medlabel.services.imports import import_paths
from medlabel.services.projects import add_labels, create_project, set_member, update_project
from medlabel.services.users import principal_of
from medlabel.storage.db.models import User
from tests.conftest import PASSWORD, sample_file

FILES = ("CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm")


@dataclass
class Study:
    ctx: Context
    admin: Principal
    rita: Principal  # reviewer
    ann: Principal
    bob: Principal
    cy: Principal
    vic: Principal  # viewer
    project_id: int
    image_ids: list[int]

    @property
    def readers(self) -> list[Principal]:
        return [self.ann, self.bob, self.cy]


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)


def user(ctx: Context, name: str, role: Role) -> Principal:
    """A user who logs in with ``PASSWORD`` (the hash is computed once: it is slow)."""
    with ctx.db.write() as s:
        row = User(username=name, password_hash=_password_hash(), role=role.value)
        s.add(row)
        s.flush()
    return principal_of(row)


def make_study(ctx: Context, *, readers_per_image: int = 2, blinded: bool = True) -> Study:
    admin = user(ctx, "admin", Role.ADMIN)
    rita = user(ctx, "rita", Role.REVIEWER)
    ann, bob, cy = (user(ctx, n, Role.ANNOTATOR) for n in ("ann", "bob", "cy"))
    vic = user(ctx, "vic", Role.VIEWER)
    project = create_project(ctx, admin, "Study")
    for who, role in (
        (rita, ProjectRole.REVIEWER),
        (ann, ProjectRole.ANNOTATOR),
        (bob, ProjectRole.ANNOTATOR),
        (cy, ProjectRole.ANNOTATOR),
        (vic, ProjectRole.VIEWER),
    ):
        set_member(ctx, admin, project.id, who.id, role)
    add_labels(
        ctx,
        admin,
        project.id,
        [
            LabelSpec(name="lesion", kind=LabelKind.MASK, value=1),
            LabelSpec(name="malignant", kind=LabelKind.CLASSIFICATION),
        ],
    )
    update_project(ctx, admin, project.id, readers_per_image=readers_per_image, blinded=blinded)
    ids = import_paths(ctx, None, project.id, [sample_file(f) for f in FILES]).image_ids
    assert len(ids) == 3
    return Study(ctx, admin, rita, ann, bob, cy, vic, project.id, sorted(ids))


def read(
    ctx: Context,
    who: Principal,
    image_id: int,
    *,
    submit: bool = True,
    mask: np.ndarray | None = None,
) -> ann_svc.AnnotationView:
    """Save (and submit) ``who``'s reading of an image, creating or updating it."""
    views = ann_svc.list_annotations(ctx, who, image_id)
    mine = [v.annotation for v in views if v.annotation.owner_id == who.id]
    content = AnnotationContent(classes=["malignant"])
    keep: np.ndarray | ann_svc.Keep = ann_svc.KEEP_MASK if mask is None else mask
    if mine:
        view = ann_svc.save_annotation(
            ctx,
            who,
            image_id,
            content=content,
            mask=keep,
            annotation_id=mine[0].id,
            base_version=mine[0].version,
        )
    else:
        view = ann_svc.save_annotation(ctx, who, image_id, content=content, mask=keep)
    if submit:
        view = ann_svc.transition(ctx, who, view.annotation.id, "submit", view.annotation.version)
    return view


def mask_for(shape: list[int]) -> np.ndarray:
    out = np.zeros(shape[:3], np.uint8)
    out[0, 5:15, 5:15] = 1
    return out
