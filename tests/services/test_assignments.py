"""Reader studies: settings, queues, claiming under concurrency, assignments, blinding,
progress."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from medlabel.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from medlabel.security.roles import ProjectRole, Role
from medlabel.services import annotations as ann_svc
from medlabel.services import assignments as svc
from medlabel.services import images as images_svc
from medlabel.services import study_progress as progress_svc
from medlabel.services.assignments import QueueReason
from medlabel.services.context import Context
from medlabel.services.projects import get_project, remove_member, set_member, update_project
from medlabel.services.review import CommentSpec, review
from medlabel.storage.db.models import Assignment
from tests.services.reader_study import Study, make_study, mask_for, read, user


@pytest.fixture
def study(ctx: Context) -> Study:
    return make_study(ctx)


def _readers(ctx: Context) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    with ctx.db.read() as s:
        for image_id in {a.image_id for a in s.scalars(select(Assignment))}:
            out[image_id] = svc.image_readers(s, image_id)
    return out


# settings --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -1, 21])
def test_readers_per_image_must_be_within_1_and_20(study: Study, bad: int) -> None:
    with pytest.raises(InvalidInputError, match="readers_per_image"):
        update_project(study.ctx, study.admin, study.project_id, readers_per_image=bad)
    assert get_project(study.ctx, study.admin, study.project_id).project.readers_per_image == 2


def test_only_reviewers_change_study_settings(study: Study) -> None:
    with pytest.raises(PermissionDeniedError):
        update_project(study.ctx, study.ann, study.project_id, blinded=False)
    update_project(study.ctx, study.rita, study.project_id, blinded=False, readers_per_image=3)
    project = get_project(study.ctx, study.rita, study.project_id).project
    assert (project.blinded, project.readers_per_image) == (False, 3)


# queue -----------------------------------------------------------------------------------
def test_empty_project_and_viewers_have_no_queue(ctx: Context) -> None:
    study = make_study(ctx)
    with pytest.raises(PermissionDeniedError):
        svc.next_in_queue(ctx, study.vic, study.project_id)
    outsider = user(ctx, "eve", Role.ANNOTATOR)
    with pytest.raises(NotFoundError):
        svc.next_in_queue(ctx, outsider, study.project_id)
    assert svc.list_queue(ctx, study.ann, study.project_id).open_images == 3


def test_next_repeats_until_submitted_then_moves_on(study: Study) -> None:
    ctx, ann = study.ctx, study.ann
    first = svc.next_in_queue(ctx, ann, study.project_id)
    assert first is not None and first.reason == QueueReason.NEW
    assert first.image.id == study.image_ids[0]  # the project's image order
    again = svc.next_in_queue(ctx, ann, study.project_id)
    assert again is not None and again.reason == QueueReason.ASSIGNED
    assert again.image.id == first.image.id and again.annotation is None
    read(ctx, ann, first.image.id, submit=False)
    started = svc.next_in_queue(ctx, ann, study.project_id)
    assert started is not None and started.annotation is not None
    assert started.image.id == first.image.id  # a draft is still owed
    read(ctx, ann, first.image.id)
    nxt = svc.next_in_queue(ctx, ann, study.project_id)
    assert nxt is not None and nxt.image.id == study.image_ids[1]


def test_full_study_gives_every_image_exactly_n_distinct_readers(study: Study) -> None:
    ctx = study.ctx
    seen: dict[int, list[int]] = {r.id: [] for r in study.readers}
    active = list(study.readers)
    while active:
        for who in list(active):
            item = svc.next_in_queue(ctx, who, study.project_id)
            if item is None:
                active.remove(who)
                continue
            seen[who.id].append(item.image.id)
            read(ctx, who, item.image.id)
    readers = _readers(ctx)
    assert sorted(readers) == study.image_ids
    assert all(len(r) == 2 for r in readers.values())
    # 6 readings over 3 readers, nobody reads an image twice
    assert sum(len(v) for v in seen.values()) == 6
    assert all(len(v) == len(set(v)) for v in seen.values())
    assert sorted(Counter(len(v) for v in seen.values()).elements()) == [2, 2, 2]


def test_two_readers_and_two_slots_overlap_fully(ctx: Context) -> None:
    study = make_study(ctx)
    for who in (study.ann, study.bob):
        while (item := svc.next_in_queue(ctx, who, study.project_id)) is not None:
            read(ctx, who, item.image.id)
    assert svc.next_in_queue(ctx, study.cy, study.project_id) is None
    assert all(r == {study.ann.id, study.bob.id} for r in _readers(ctx).values())


def test_concurrent_claims_never_exceed_readers_per_image(study: Study) -> None:
    """Eight annotators ask at once for three images wanting two readers: six claims."""
    ctx = study.ctx
    people = [user(ctx, f"r{i}", Role.ANNOTATOR) for i in range(8)]
    for p in people:
        set_member(ctx, study.admin, study.project_id, p.id, ProjectRole.ANNOTATOR)
    barrier = threading.Barrier(len(people))

    def claim(i: int) -> int | None:
        barrier.wait()
        item = svc.next_in_queue(ctx, people[i], study.project_id)
        return item.image.id if item else None

    with ThreadPoolExecutor(len(people)) as pool:
        got = list(pool.map(claim, range(len(people))))
    claimed = [g for g in got if g is not None]
    assert len(claimed) == 6 and got.count(None) == 2
    assert Counter(claimed) == {i: 2 for i in study.image_ids}
    assert all(len(r) == 2 for r in _readers(ctx).values())


def test_concurrent_claims_for_the_last_slot(study: Study) -> None:
    """One image with one free slot left: exactly one of six racing annotators gets it."""
    ctx = study.ctx
    update_project(ctx, study.admin, study.project_id, readers_per_image=1)
    svc.assign(ctx, study.admin, study.project_id, study.ann.id, study.image_ids[:2])
    update_project(ctx, study.admin, study.project_id, readers_per_image=2)
    svc.assign(ctx, study.admin, study.project_id, study.bob.id, study.image_ids[:2])
    svc.assign(ctx, study.admin, study.project_id, study.cy.id, study.image_ids[2:])
    people = [user(ctx, f"r{i}", Role.ANNOTATOR) for i in range(6)]
    for p in people:
        set_member(ctx, study.admin, study.project_id, p.id, ProjectRole.ANNOTATOR)
    barrier = threading.Barrier(len(people))

    def claim(i: int) -> int | None:
        barrier.wait()
        item = svc.next_in_queue(ctx, people[i], study.project_id)
        return item.image.id if item else None

    with ThreadPoolExecutor(len(people)) as pool:
        got = list(pool.map(claim, range(len(people))))
    assert [g for g in got if g is not None] == [study.image_ids[2]]
    assert len(_readers(ctx)[study.image_ids[2]]) == 2


def test_saving_outside_the_queue_takes_a_free_slot_or_is_refused(study: Study) -> None:
    ctx, image_id = study.ctx, study.image_ids[0]
    read(ctx, study.ann, image_id, submit=False)
    read(ctx, study.bob, image_id, submit=False)
    with ctx.db.read() as s:
        assert svc.image_readers(s, image_id) == {study.ann.id, study.bob.id}
    # both became readers through assignments made when they saved
    mine = svc.list_assignments(ctx, study.ann, study.project_id)
    assert [(v.assignment.image_id, v.assignment.assigned_by) for v in mine] == [
        (image_id, study.ann.id)
    ]
    with pytest.raises(ConflictError, match="already has the 2 reader"):
        read(ctx, study.cy, image_id, submit=False)
    # reviewers are not limited, and their readings count as readers
    read(ctx, study.rita, image_id, submit=False)
    with ctx.db.read() as s:
        assert svc.image_readers(s, image_id) == {study.ann.id, study.bob.id, study.rita.id}


def test_next_image_peeks_without_claiming(study: Study) -> None:
    ctx, ids = study.ctx, study.image_ids
    assert images_svc.next_image(ctx, study.ann, study.project_id) is not None
    assert svc.list_assignments(ctx, study.admin, study.project_id) == []
    nxt = images_svc.next_image(ctx, study.ann, study.project_id, after=ids[0])
    assert nxt is not None and nxt.id == ids[1]
    wrapped = images_svc.next_image(ctx, study.ann, study.project_id, after=ids[2])
    assert wrapped is not None and wrapped.id == ids[0]
    # owed work comes before open images
    svc.assign(ctx, study.rita, study.project_id, study.ann.id, [ids[2]])
    owed = images_svc.next_image(ctx, study.ann, study.project_id, after=ids[0])
    assert owed is not None and owed.id == ids[2]


# managing assignments --------------------------------------------------------------------
def test_assign_checks_users_images_and_free_slots(study: Study, ctx: Context) -> None:
    pid, ids = study.project_id, study.image_ids
    with pytest.raises(PermissionDeniedError):
        svc.assign(ctx, study.ann, pid, study.ann.id, ids)
    with pytest.raises(NotFoundError, match="user 999"):
        svc.assign(ctx, study.rita, pid, 999, ids)
    outsider = user(ctx, "eve", Role.ANNOTATOR)
    with pytest.raises(InvalidInputError, match="not a member"):
        svc.assign(ctx, study.rita, pid, outsider.id, ids)
    with pytest.raises(InvalidInputError, match="viewer"):
        svc.assign(ctx, study.rita, pid, study.vic.id, ids)
    with pytest.raises(InvalidInputError, match="not in project"):
        svc.assign(ctx, study.rita, pid, study.ann.id, [ids[0], 12345])
    with pytest.raises(InvalidInputError):
        svc.assign(ctx, study.rita, pid, study.ann.id, [])
    views = svc.assign(ctx, study.rita, pid, study.ann.id, ids)
    assert [v.assignment.image_id for v in views] == ids
    assert svc.assign(ctx, study.rita, pid, study.ann.id, ids[:1])[0].assignment.id == (
        views[0].assignment.id
    )  # idempotent
    svc.assign(ctx, study.rita, pid, study.bob.id, ids[:1])
    # ids[0] is full now: all or nothing
    with pytest.raises(ConflictError, match=rf"\[{ids[0]}\]"):
        svc.assign(ctx, study.rita, pid, study.cy.id, ids)
    assert svc.list_assignments(ctx, study.rita, pid, user_id=study.cy.id) == []
    # annotators see only their own assignments
    assert {v.assignment.user_id for v in svc.list_assignments(ctx, study.ann, pid)} == {
        study.ann.id
    }
    assert svc.list_assignments(ctx, study.ann, pid, user_id=study.bob.id) == []


def test_unassign_only_unstarted_work(study: Study) -> None:
    ctx, pid, ids = study.ctx, study.project_id, study.image_ids
    a, b = svc.assign(ctx, study.rita, pid, study.ann.id, ids[:2])
    read(ctx, study.ann, ids[0], submit=False)
    with pytest.raises(ConflictError, match="reassign"):
        svc.unassign(ctx, study.rita, a.assignment.id)
    with pytest.raises(PermissionDeniedError):
        svc.unassign(ctx, study.ann, b.assignment.id)
    svc.unassign(ctx, study.rita, b.assignment.id)
    with pytest.raises(NotFoundError):
        svc.unassign(ctx, study.rita, b.assignment.id)
    assert [v.assignment.image_id for v in svc.list_assignments(ctx, study.rita, pid)] == ids[:1]


def test_reassign_moves_unfinished_work_with_the_slot(study: Study) -> None:
    ctx, pid, ids = study.ctx, study.project_id, study.image_ids
    (a,) = svc.assign(ctx, study.rita, pid, study.ann.id, ids[:1])
    draft = read(
        ctx,
        study.ann,
        ids[0],
        submit=False,
        mask=mask_for(images_svc.get_image(ctx, study.ann, ids[0]).shape),
    )
    moved = svc.reassign(ctx, study.rita, a.assignment.id, study.cy.id)
    assert moved.assignment.user_id == study.cy.id and moved.annotation_id == draft.annotation.id
    assert moved.state is not None and moved.state.value == "draft"
    # cy owns the annotation now and continues it; ann no longer sees it (blinded)
    owned = ann_svc.get_annotation(ctx, study.cy, draft.annotation.id)
    assert owned.annotation.owner_id == study.cy.id
    assert owned.head is not None and owned.head.author_id == study.ann.id  # history kept
    with pytest.raises(NotFoundError):
        ann_svc.get_annotation(ctx, study.ann, draft.annotation.id)
    item = svc.next_in_queue(ctx, study.cy, pid)
    assert item is not None and item.image.id == ids[0] and item.annotation is not None
    read(ctx, study.cy, ids[0])
    # finished work stays; the new reader must not read the image already
    with pytest.raises(ConflictError, match="finished work"):
        svc.reassign(ctx, study.rita, a.assignment.id, study.bob.id)
    (b,) = svc.assign(ctx, study.rita, pid, study.bob.id, ids[1:2])
    svc.assign(ctx, study.rita, pid, study.cy.id, ids[1:2])
    with pytest.raises(ConflictError, match="already reads"):
        svc.reassign(ctx, study.rita, b.assignment.id, study.cy.id)
    with pytest.raises(InvalidInputError, match="viewer"):
        svc.reassign(ctx, study.rita, b.assignment.id, study.vic.id)


def test_distribute_deals_round_robin_to_n_readers(study: Study) -> None:
    ctx, pid = study.ctx, study.project_id
    result = svc.distribute(ctx, study.rita, pid)
    assert len(result.created) == 6 and result.short_images == []
    per_user = Counter(v.assignment.user_id for v in result.created)
    assert per_user == {study.ann.id: 2, study.bob.id: 2, study.cy.id: 2}
    readers = _readers(ctx)
    assert all(len(readers[i]) == 2 for i in study.image_ids)
    again = svc.distribute(ctx, study.rita, pid)
    assert again.created == [] and again.short_images == []


def test_distribute_reports_images_short_of_readers(study: Study) -> None:
    ctx, pid = study.ctx, study.project_id
    result = svc.distribute(ctx, study.rita, pid, [study.ann.id])
    assert len(result.created) == 3 and result.short_images == study.image_ids
    with pytest.raises(InvalidInputError, match="viewer"):
        svc.distribute(ctx, study.rita, pid, [study.vic.id])


# blinding --------------------------------------------------------------------------------
def test_blinded_readers_see_only_their_own_work(study: Study) -> None:
    ctx, image_id = study.ctx, study.image_ids[0]
    shape = images_svc.get_image(ctx, study.ann, image_id).shape
    mine = read(ctx, study.ann, image_id, mask=mask_for(shape))
    theirs = read(ctx, study.bob, image_id, mask=mask_for(shape))
    assert [v.annotation.id for v in ann_svc.list_annotations(ctx, study.ann, image_id)] == [
        mine.annotation.id
    ]
    assert ann_svc.list_annotations(ctx, study.vic, image_id) == []
    assert theirs.head is not None
    for call in (
        lambda: ann_svc.get_annotation(ctx, study.ann, theirs.annotation.id),
        lambda: ann_svc.list_revisions(ctx, study.ann, theirs.annotation.id),
        lambda: ann_svc.get_revision(ctx, study.ann, theirs.head.id),  # type: ignore[union-attr]
    ):
        with pytest.raises(NotFoundError):
            call()
    # reviewers and admins see every reader's work
    for who in (study.rita, study.admin):
        assert len(ann_svc.list_annotations(ctx, who, image_id)) == 2
        assert ann_svc.get_revision(ctx, who, theirs.head.id).id == theirs.head.id
    # unblinded, everyone sees everything again
    update_project(ctx, study.admin, study.project_id, blinded=False)
    assert len(ann_svc.list_annotations(ctx, study.ann, image_id)) == 2


# progress --------------------------------------------------------------------------------
def test_progress_counts_each_reader_and_the_project(study: Study) -> None:
    ctx, pid, ids = study.ctx, study.project_id, study.image_ids
    svc.distribute(ctx, study.rita, pid)
    by_user = {v.assignment.user_id: [] for v in svc.list_assignments(ctx, study.rita, pid)}
    for v in svc.list_assignments(ctx, study.rita, pid):
        by_user[v.assignment.user_id].append(v.assignment.image_id)
    ann_images = by_user[study.ann.id]
    first = read(ctx, study.ann, ann_images[0])  # submitted
    read(ctx, study.ann, ann_images[1], submit=False)  # started
    review(
        ctx,
        study.rita,
        first.annotation.id,
        "reject",
        first.annotation.version,
        [CommentSpec("missed the second lesion")],
    )
    for image_id in by_user[study.bob.id]:
        view = read(ctx, study.bob, image_id)
        review(ctx, study.rita, view.annotation.id, "approve", view.annotation.version)
    p = progress_svc.progress(ctx, study.rita, pid)
    rows = {u.username: u for u in p.users}
    assert (p.readers_per_image, p.images, p.open_slots) == (2, 3, 0)
    a = rows["ann"]
    assert (a.assigned, a.not_started, a.started, a.submitted, a.approved, a.rejected) == (
        2,
        0,
        1,
        0,
        0,
        1,
    )
    assert a.remaining == 2
    b = rows["bob"]
    assert (b.assigned, b.approved, b.remaining) == (2, 2, 0)
    c = rows["cy"]
    assert (c.assigned, c.not_started, c.remaining) == (2, 2, 2)
    assert rows["rita"].assigned == 0 and rows["rita"].role == ProjectRole.REVIEWER
    assert p.images_complete == 0 and p.images_approved == 0
    for image_id in by_user[study.cy.id]:
        view = read(ctx, study.cy, image_id)
        review(ctx, study.rita, view.annotation.id, "approve", view.annotation.version)
    p = progress_svc.progress(ctx, study.rita, pid)
    both = set(by_user[study.bob.id]) & set(by_user[study.cy.id])
    assert p.images_approved == len(both) and p.images_complete == len(both)
    # annotators see their own row only; the totals are the project's
    mine = progress_svc.progress(ctx, study.ann, pid)
    assert [u.username for u in mine.users] == ["ann"] and mine.images == 3
    assert set(ids) >= set(ann_images)


def test_removing_a_member_frees_their_unstarted_slots(ctx: Context) -> None:
    study = make_study(ctx, readers_per_image=1, blinded=False)
    svc.assign(ctx, study.rita, study.project_id, study.ann.id, study.image_ids)
    read(ctx, study.ann, study.image_ids[0], submit=False)
    remove_member(ctx, study.rita, study.project_id, study.ann.id)
    left = svc.list_assignments(ctx, study.rita, study.project_id)
    assert [(a.assignment.image_id, a.assignment.user_id) for a in left] == [
        (study.image_ids[0], study.ann.id)
    ]
    item = svc.next_in_queue(ctx, study.bob, study.project_id)
    assert item is not None and item.image.id == study.image_ids[1]
