"""Concurrent writers on SQLite and blob garbage collection."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.core.errors import ConflictError
from medlabel.security.roles import Role
from medlabel.services import annotations as ann_svc
from medlabel.services.context import Context
from medlabel.services.imports import import_paths
from medlabel.services.maintenance import collect_garbage
from medlabel.services.projects import add_labels, create_project
from medlabel.services.users import create_user, principal_of
from tests.conftest import sample_file


def test_racing_saves_on_one_version_give_one_winner(ctx: Context) -> None:
    actor = principal_of(create_user(ctx, "a", "correct horse battery", Role.ADMIN))
    project = create_project(ctx, actor, "P")
    add_labels(ctx, actor, project.id, [LabelSpec(name="c", kind=LabelKind.CLASSIFICATION)])
    (image_id,) = import_paths(ctx, actor, project.id, [sample_file("CT_small.dcm")]).image_ids
    first = ann_svc.save_annotation(ctx, actor, image_id, content=AnnotationContent())
    base = first.annotation.version

    def save(i: int) -> str:
        try:
            ann_svc.save_annotation(
                ctx,
                actor,
                image_id,
                annotation_id=first.annotation.id,
                base_version=base,
                content=AnnotationContent(classes=["c"]),
                message=f"writer {i}",
            )
            return "ok"
        except ConflictError:
            return "conflict"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(save, range(8)))
    assert results.count("ok") == 1 and results.count("conflict") == 7
    history = ann_svc.list_revisions(ctx, actor, first.annotation.id)
    assert [r.number for r in history] == [2, 1]


def test_independent_writers_all_succeed(ctx: Context) -> None:
    users = [
        principal_of(create_user(ctx, f"u{i}", "correct horse battery", Role.ADMIN))
        for i in range(6)
    ]
    project = create_project(ctx, users[0], "P")
    (image_id,) = import_paths(ctx, None, project.id, [sample_file("CT_small.dcm")]).image_ids

    def save(actor: object) -> int:
        view = ann_svc.save_annotation(ctx, actor, image_id, content=AnnotationContent())  # type: ignore[arg-type]
        return view.annotation.id

    with ThreadPoolExecutor(6) as pool:
        ids = list(pool.map(save, users))
    assert len(set(ids)) == 6


@pytest.mark.parametrize("age", [0.0, 3600.0])
def test_gc_removes_only_old_orphans(ctx: Context, age: float) -> None:
    project = create_project(ctx, None, "P")
    import_paths(ctx, None, project.id, [sample_file("CT_small.dcm")])
    used = set(ctx.blobs.iter_digests())
    orphan = ctx.blobs.put_bytes(b"left by an interrupted import").digest
    path = ctx.blobs.local_path(orphan)
    if path is None:  # MEDLABEL_TEST_BLOBS=s3; GC on S3: tests/storage/test_s3_blob_store.py
        pytest.skip("ages a blob through its file's mtime: local folder store only")
    old = time.time() - 7200
    os.utime(path, (old, old))
    fresh = ctx.blobs.put_bytes(b"an import in progress").digest
    report = collect_garbage(ctx, min_age_seconds=age)
    left = set(ctx.blobs.iter_digests())
    assert used <= left and orphan not in left
    assert (fresh in left) == (age > 0)
    assert report.removed == (1 if age > 0 else 2)
