"""AI proposals in the services layer: propose, accept (add / replace), reject, errors."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import LabelKind, ProposalState, RevisionSource
from medlabel.annotation.schema import LabelSpec
from medlabel.core.errors import (
    ConflictError,
    InvalidInputError,
    MedlabelError,
    NotFoundError,
    PermissionDeniedError,
)
from medlabel.io.arrays import decode_array
from medlabel.security.roles import ProjectRole, Role
from medlabel.services import annotations as ann_svc
from medlabel.services import images as images_svc
from medlabel.services import proposals as svc
from medlabel.services.access import Principal
from medlabel.services.context import Context
from medlabel.services.imports import import_paths
from medlabel.services.maintenance import collect_garbage
from medlabel.services.projects import add_labels, create_project, set_member
from medlabel.services.proposal_prompts import scribble_mask
from medlabel.services.users import create_user, principal_of
from medlabel.storage.db.models import Proposal
from tests.conftest import PASSWORD, sample_file
from tests.services.helpers import stored

LIVER, TUMOUR = 1, 2
#: a box on CT_small's only slice around bright tissue: [[p, r, c], [p, r, c]]
BOX = [[0, 40, 30], [0, 90, 100]]
OTSU = {"method": "otsu-above"}


@dataclass
class World:
    ctx: Context
    admin: Principal
    ann: Principal
    bob: Principal
    viewer: Principal
    project_id: int
    image_id: int
    shape: tuple[int, int, int]


def _user(ctx: Context, name: str, role: Role) -> Principal:
    return principal_of(create_user(ctx, name, PASSWORD, role))


@pytest.fixture
def world(ctx: Context) -> World:
    admin = _user(ctx, "admin", Role.ADMIN)
    ann, bob = _user(ctx, "ann", Role.ANNOTATOR), _user(ctx, "bob", Role.ANNOTATOR)
    viewer = _user(ctx, "vic", Role.VIEWER)
    project = create_project(ctx, admin, "P")
    for who, role in ((ann, ProjectRole.ANNOTATOR), (bob, ProjectRole.ANNOTATOR)):
        set_member(ctx, admin, project.id, who.id, role)
    set_member(ctx, admin, project.id, viewer.id, ProjectRole.VIEWER)
    add_labels(
        ctx,
        admin,
        project.id,
        [
            LabelSpec(name="liver", kind=LabelKind.MASK, value=LIVER),
            LabelSpec(name="tumour", kind=LabelKind.MASK, value=TUMOUR),
            LabelSpec(name="nodule", kind=LabelKind.BOX),
        ],
    )
    (image_id,) = import_paths(ctx, None, project.id, [sample_file("CT_small.dcm")]).image_ids
    return World(ctx, admin, ann, bob, viewer, project.id, image_id, (1, 128, 128))


def _propose(w: World, who: Principal | None = None, **kw: Any) -> svc.ProposalView:
    args: dict[str, Any] = {
        "engine": "threshold",
        "label": "liver",
        "axis": 0,
        "index": 0,
        "box": BOX,
        "params": OTSU,
    }
    args.update(kw)
    return svc.propose(w.ctx, who or w.ann, w.image_id, **args)


def _proposals(ctx: Context) -> int:
    with ctx.db.read() as s:
        return s.scalar(select(func.count()).select_from(Proposal)) or 0


def _head_mask(ctx: Context, view: ann_svc.AnnotationView) -> np.ndarray:
    assert view.head is not None
    mask = ann_svc.load_mask(ctx, view.head)
    assert mask is not None
    return mask


def _expected(w: World, view: svc.ProposalView) -> np.ndarray:
    full = np.zeros(w.shape, bool)
    (p, r, c), (dp, dr, dc) = view.row.origin, view.row.shape
    full[p : p + dp, r : r + dr, c : c + dc] = view.mask
    return full


# edge cases first ------------------------------------------------------------------------
#: bad requests: what is wrong, the error, a fragment of its message
BAD: list[tuple[dict[str, Any], type[MedlabelError], str]] = [
    ({"engine": "no-such-engine"}, NotFoundError, "no engine named 'no-such-engine'"),
    ({"label": "spleen"}, InvalidInputError, "unknown label 'spleen'"),
    ({"label": "nodule"}, InvalidInputError, "is a box label"),
    ({"box": [[0, 40, 30], [0, 400, 100]]}, InvalidInputError, "outside the image"),
    ({"positive": [[0, -3, 5]]}, InvalidInputError, "outside the image"),
    ({"index": 1}, InvalidInputError, "slice 1 is outside 0..0"),
    ({"axis": 3}, InvalidInputError, "axis must be 0, 1 or 2"),
    ({"params": {"method": "magic"}}, InvalidInputError, "parameter 'method'"),
    ({"params": {"sigma": 2}}, InvalidInputError, "has no parameter 'sigma'"),
    ({"params": {"low": 500, "high": 100}}, InvalidInputError, "must not exceed"),
    ({"box": [[0, 1, 2]]}, InvalidInputError, "two corners"),
    ({"foreground_points": [[0, 5, 5]]}, InvalidInputError, "does not take foreground"),
    (
        {"foreground_points": [[0, 5, 5]], "scribble_radius": 99},
        InvalidInputError,
        "scribble_radius",
    ),
    ({"previous": svc.FromProposal(12345)}, InvalidInputError, "not one of your proposals"),
    (
        {"previous": svc.FromPlane(gzip.compress(bytes(10)))},
        InvalidInputError,
        "needs 16384 bytes",
    ),
]


def test_bad_requests_are_4xx_and_store_nothing(world: World) -> None:
    before, rows = stored(world.ctx), _proposals(world.ctx)
    for kw, error, fragment in BAD:
        with pytest.raises(error) as info:
            _propose(world, **kw)
        assert fragment in info.value.message, (kw, info.value.message)
        assert 400 <= info.value.status_code < 500
    assert stored(world.ctx) == before and _proposals(world.ctx) == rows


def test_viewer_may_not_propose_and_strangers_see_nothing(world: World) -> None:
    with pytest.raises(PermissionDeniedError):
        _propose(world, world.viewer)
    stranger = _user(world.ctx, "eve", Role.ANNOTATOR)
    with pytest.raises(NotFoundError):
        _propose(world, stranger)
    assert _proposals(world.ctx) == 0


def test_scribbles_are_discs_on_the_slice_or_balls_in_the_volume() -> None:
    disc = scribble_mask([[2, 5, 5]], (5, 11, 11), 0, 2, 2.0, "foreground")
    assert disc is not None and disc.sum() == 13 and disc[2].sum() == 13
    assert disc[2, 5, 3] and disc[2, 5, 7] and not disc[2, 6, 7]
    # on a column slice the disc lies in (plane, row)
    side = scribble_mask([[2.2, 5, 4.6]], (5, 11, 11), 2, 5, 1.0, "background")
    assert side is not None and side.sum() == 5 and side[:, :, 5].sum() == 5
    ball = scribble_mask([[2, 5, 5]], (5, 11, 11), 0, None, 1.0, "foreground")
    assert ball is not None and ball.sum() == 7
    assert scribble_mask([], (5, 11, 11), 0, 2, 2.0, "foreground") is None
    with pytest.raises(InvalidInputError, match="not on slice 2"):
        scribble_mask([[3, 5, 5]], (5, 11, 11), 0, 2, 2.0, "foreground")


# propose, accept, reject -----------------------------------------------------------------
def test_propose_stores_a_pending_proposal_with_provenance(world: World) -> None:
    view = _propose(world)
    row = view.row
    assert row.state == ProposalState.PENDING and row.revision_id is None
    assert (row.engine_name, row.engine_version, row.label) == ("threshold", "1", "liver")
    assert row.user_id == world.ann.id and row.image_id == world.image_id
    assert row.prompt["box"] == [[0.0, 40.0, 30.0], [0.0, 90.0, 100.0]]
    assert row.prompt["params"]["method"] == "otsu-above" and row.prompt["index"] == 0
    assert row.seconds >= 0 and "otsu" in row.info
    # cropped to its bounding box, inside the requested box, and not empty
    assert view.mask.dtype == bool and list(view.mask.shape) == row.shape
    assert row.voxels == int(view.mask.sum()) > 0
    p, r, c = row.origin
    assert p == 0 and r >= 40 and c >= 30
    assert r + row.shape[1] <= 91 and c + row.shape[2] <= 101
    assert view.mask[:, 0].any() and view.mask[:, -1].any()  # tight crop
    # the mask is stored as a blob, and reads back the same
    got = svc.get_proposal(world.ctx, world.ann, row.id)
    assert np.array_equal(got.mask, view.mask)
    assert np.array_equal(
        decode_array(world.ctx.blobs.read_bytes(row.mask_digest)).astype(bool), view.mask
    )
    assert [x.id for x in svc.list_proposals(world.ctx, world.ann, world.image_id)] == [row.id]
    assert svc.list_proposals(world.ctx, world.ann, world.image_id, state="accepted") == []


def test_accept_makes_one_engine_revision_with_the_mask_at_its_origin(world: World) -> None:
    a = _propose(world)
    b = _propose(world, box=[[0, 10, 10], [0, 30, 40]])
    decision = svc.decide(world.ctx, world.ann, world.image_id, [a.row.id, b.row.id], accept=True)
    assert decision.ids == [a.row.id, b.row.id]
    view = decision.annotation
    assert view is not None and view.head is not None
    head = view.head
    assert head.source == RevisionSource.ENGINE and head.number == 1
    assert (head.engine_name, head.engine_version) == ("threshold", "1")
    assert head.prompt is not None
    assert head.prompt["proposals"] == [a.row.id, b.row.id]
    assert head.prompt["prompts"] == [a.row.prompt, b.row.prompt]
    assert head.author_id == world.ann.id and view.annotation.owner_id == world.ann.id
    mask = _head_mask(world.ctx, view)
    expected = (_expected(world, a) | _expected(world, b)).astype(np.uint8) * LIVER
    assert mask.shape == world.shape and np.array_equal(mask, expected)
    assert head.mask_summary["voxels"] == {str(LIVER): int(expected.astype(bool).sum())}
    for pid in (a.row.id, b.row.id):
        row = svc.get_proposal(world.ctx, world.ann, pid).row
        assert row.state == ProposalState.ACCEPTED and row.revision_id == head.id
        assert row.decided_at is not None


def test_add_keeps_the_label_outside_and_replace_clears_it_inside_the_box(world: World) -> None:
    drawn = np.zeros(world.shape, np.uint8)
    drawn[0, 0:128, 0:128:4] = LIVER  # stripes of liver everywhere
    drawn[0, 60:64, 60:64] = TUMOUR
    ann = ann_svc.save_annotation(
        world.ctx, world.ann, world.image_id, content=AnnotationContent(), mask=drawn
    )
    proposal = _propose(world)
    new = _expected(world, proposal)
    (p, r, c), (dp, dr, dc) = proposal.row.origin, proposal.row.shape
    inside = np.zeros(world.shape, bool)
    inside[p : p + dp, r : r + dr, c : c + dc] = True

    def accept(mode: str, base: int, pid: int) -> np.ndarray:
        view = svc.decide(
            world.ctx, world.ann, world.image_id, [pid], accept=True, base_version=base, mode=mode
        ).annotation
        assert view is not None and view.head is not None
        assert view.head.prompt is not None and view.head.prompt["mode"] == mode
        return _head_mask(world.ctx, view)

    added = accept("add", ann.annotation.version, proposal.row.id)
    assert np.all(added[new] == LIVER)  # proposal voxels get the label, even over tumour
    assert np.array_equal(added[~new], drawn[~new])  # the rest is as drawn
    version = ann_svc.get_annotation(world.ctx, world.ann, ann.annotation.id).annotation.version

    again = _propose(world)  # the same request gives the same proposal
    assert again.row.origin == proposal.row.origin and np.array_equal(again.mask, proposal.mask)
    replaced = accept("replace", version, again.row.id)
    assert np.all(replaced[new] == LIVER)
    # inside the proposal's box, liver is only where the proposal is; other labels stay
    assert not np.any((replaced == LIVER) & inside & ~new)
    keep_tumour = (drawn == TUMOUR) & ~new
    assert np.all(replaced[keep_tumour] == TUMOUR)
    assert np.array_equal(replaced[~inside], drawn[~inside])  # outside the box: untouched


def test_reject_records_the_decision_and_changes_no_annotation(world: World) -> None:
    a, b = _propose(world), _propose(world, label="tumour")
    decision = svc.decide(world.ctx, world.ann, world.image_id, [a.row.id, b.row.id], accept=False)
    assert decision.ids == [a.row.id, b.row.id] and decision.annotation is None
    for pid in decision.ids:
        row = svc.get_proposal(world.ctx, world.ann, pid).row
        assert row.state == ProposalState.REJECTED and row.revision_id is None
    assert ann_svc.list_annotations(world.ctx, world.ann, world.image_id) == []
    with pytest.raises(ConflictError, match="already rejected"):
        svc.decide(world.ctx, world.ann, world.image_id, [a.row.id], accept=True)


def test_stale_versions_and_decided_proposals_are_409_and_change_nothing(world: World) -> None:
    first, second, third = _propose(world), _propose(world), _propose(world)
    tumour = _propose(world, label="tumour")
    (other_image,) = import_paths(
        world.ctx, None, world.project_id, [sample_file("MR_small.dcm")]
    ).image_ids
    view = svc.decide(world.ctx, world.ann, world.image_id, [first.row.id], accept=True)
    ann = view.annotation
    assert ann is not None
    current = ann.annotation.version
    before = stored(world.ctx)
    for base in (current - 1, None):  # stale, and "I have none" when there is one
        with pytest.raises(ConflictError):
            svc.decide(
                world.ctx,
                world.ann,
                world.image_id,
                [second.row.id],
                accept=True,
                base_version=base,
            )
    with pytest.raises(ConflictError, match="already accepted"):
        svc.decide(
            world.ctx,
            world.ann,
            world.image_id,
            [second.row.id, first.row.id],
            accept=True,
            base_version=current,
        )
    assert stored(world.ctx) == before
    assert svc.get_proposal(world.ctx, world.ann, second.row.id).row.state == "pending"
    # the label must be the same for all, and the image right
    with pytest.raises(InvalidInputError, match="one label at a time"):
        svc.decide(
            world.ctx,
            world.ann,
            world.image_id,
            [second.row.id, tumour.row.id],
            accept=True,
            base_version=current,
        )
    with pytest.raises(InvalidInputError, match="not on image"):
        svc.decide(world.ctx, world.ann, other_image, [third.row.id], accept=False)
    with pytest.raises(InvalidInputError, match="not one of your proposals on image"):
        svc.propose(
            world.ctx,
            world.ann,
            other_image,
            engine="threshold",
            label="liver",
            index=0,
            previous=svc.FromProposal(third.row.id),
        )
    with pytest.raises(NotFoundError, match=r"\[999\]"):
        svc.decide(world.ctx, world.ann, world.image_id, [third.row.id, 999], accept=False)
    with pytest.raises(InvalidInputError, match="unknown mode"):
        svc.decide(world.ctx, world.ann, world.image_id, [third.row.id], accept=True, mode="mix")
    assert stored(world.ctx) == before


def test_another_users_proposal_is_refused(world: World) -> None:
    mine = _propose(world)
    with pytest.raises(PermissionDeniedError, match="another user"):
        svc.decide(world.ctx, world.bob, world.image_id, [mine.row.id], accept=True)
    with pytest.raises(PermissionDeniedError):
        svc.decide(world.ctx, world.bob, world.image_id, [mine.row.id], accept=False)
    with pytest.raises(InvalidInputError, match="not one of your proposals"):
        _propose(world, world.bob, previous=svc.FromProposal(mine.row.id))
    with pytest.raises(NotFoundError):
        svc.get_proposal(world.ctx, world.bob, mine.row.id)
    assert svc.get_proposal(world.ctx, world.admin, mine.row.id).row.id == mine.row.id
    assert svc.list_proposals(world.ctx, world.bob, world.image_id) == []
    assert svc.get_proposal(world.ctx, world.ann, mine.row.id).row.state == "pending"


def test_previous_masks_are_resolved_onto_the_image_grid(world: World) -> None:
    first = _propose(world)
    from_proposal = _propose(world, previous=svc.FromProposal(first.row.id))
    assert from_proposal.row.prompt["previous"] == {"voxels": first.row.voxels}
    assert from_proposal.row.prompt["previous_from"] == {"proposal": first.row.id}

    plane = np.zeros((128, 128), np.uint8)
    plane[5:10, 5:7] = 1
    from_plane = _propose(world, previous=svc.FromPlane(gzip.compress(plane.tobytes())))
    assert from_plane.row.prompt["previous"] == {"voxels": 10}

    drawn = np.zeros(world.shape, np.uint8)
    drawn[0, 1:4, 1:4] = LIVER
    drawn[0, 100:102, 100:102] = TUMOUR
    ann_svc.save_annotation(
        world.ctx, world.ann, world.image_id, content=AnnotationContent(), mask=drawn
    )
    from_head = _propose(world, previous=svc.FromAnnotation())
    assert from_head.row.prompt["previous"] == {"voxels": 9}  # liver only
    assert from_head.row.prompt["previous_from"] == "annotation"
    # bob has no annotation: nothing to start from
    assert "previous" not in _propose(world, world.bob, previous=svc.FromAnnotation()).row.prompt


def test_scribbles_drive_the_random_walker(world: World) -> None:
    view = _propose(
        world,
        engine="random-walker",
        box=None,
        params={},
        foreground_points=[[0, 64, 60], [0, 65, 62]],
        background_points=[[0, 20, 10]],
        scribble_radius=1,
    )
    row = view.row
    assert row.prompt["foreground"] == {"voxels": 10} and row.prompt["background"] == {"voxels": 5}
    assert row.prompt["foreground_points"] == [[0.0, 64.0, 60.0], [0.0, 65.0, 62.0]]
    assert row.prompt["scribble_radius"] == 1.0
    full = _expected(world, view)
    assert full[0, 64, 60] and full[0, 65, 62] and not full[0, 20, 10]


def test_volumes_and_other_slice_axes_land_where_asked(ctx: Context, ct_series: Path) -> None:
    admin = _user(ctx, "admin", Role.ADMIN)
    project = create_project(ctx, admin, "V")
    add_labels(ctx, admin, project.id, [LabelSpec(name="bone", kind=LabelKind.MASK)])
    (image_id,) = import_paths(ctx, None, project.id, [ct_series]).image_ids
    shape = tuple(images_svc.get_image(ctx, admin, image_id).shape)
    assert len(shape) == 3 and shape[0] > 1
    # a column slice: the proposal is one column thick, at that column
    col = shape[2] // 2
    side = svc.propose(
        ctx,
        admin,
        image_id,
        engine="threshold",
        label="bone",
        axis=2,
        index=col,
        params=OTSU,
    )
    assert side.row.origin[2] == col and side.row.shape[2] == 1
    # the whole volume inside a box spanning planes 1..3
    box = [[1, 10, 10], [3, shape[1] - 10, shape[2] - 10]]
    vol = svc.propose(
        ctx, admin, image_id, engine="threshold", label="bone", index=None, box=box, params=OTSU
    )
    p = vol.row.origin[0]
    assert p >= 1 and p + vol.row.shape[0] <= 4 and vol.row.shape[0] > 1
    view = svc.decide(ctx, admin, image_id, [side.row.id, vol.row.id], accept=True).annotation
    assert view is not None
    mask = _head_mask(ctx, view)
    assert mask.shape == shape
    expect = np.zeros(shape, bool)
    for pv in (side, vol):
        (a, b, d), (n0, n1, n2) = pv.row.origin, pv.row.shape
        expect[a : a + n0, b : b + n1, d : d + n2] |= pv.mask
    assert np.array_equal(mask.astype(bool), expect)


def test_garbage_collection_keeps_proposal_masks(world: World) -> None:
    view = _propose(world)
    collect_garbage(world.ctx, min_age_seconds=0)
    assert view.row.mask_digest in set(world.ctx.blobs.iter_digests())
    assert np.array_equal(svc.get_proposal(world.ctx, world.ann, view.row.id).mask, view.mask)


def test_engines_are_listed_with_their_prompts_and_parameters(ctx: Context) -> None:
    engines = {e.name: e for e in svc.list_engines(ctx)}
    threshold = engines["threshold"]
    # listing describes engines from their class: nothing is built (models load slowly)
    assert threshold.available and not threshold.loaded and threshold.volumetric
    assert not ctx.engines.loaded("litemedsam")
    assert "box" in threshold.prompts
    assert {p["name"] for p in threshold.params} >= {"low", "high", "method"}
    method = next(p for p in threshold.params if p["name"] == "method")
    assert method["kind"] == "choice" and "otsu" in method["choices"]


def test_importing_the_server_does_not_import_torch() -> None:
    code = (
        "import sys; import medlabel.server.app, medlabel.services.proposals; "
        "from medlabel.engines.registry import default_registry; default_registry(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_litemedsam_proposes_inside_a_box(world: World) -> None:
    if not world.ctx.engines.available("litemedsam"):
        if os.environ.get("CI") == "true":
            pytest.fail("litemedsam needs the ai extra, which CI installs")
        pytest.skip("litemedsam needs the ai extra: pip install 'medlabel[ai]'")
    view = _propose(world, engine="litemedsam", params={})
    row = view.row
    assert row.engine_name == "litemedsam" and row.state == "pending" and row.voxels > 0
    p, r, c = row.origin
    assert p == 0 and r >= 40 - 1 and c >= 30 - 1
    assert r + row.shape[1] <= 92 and c + row.shape[2] <= 102
    accepted = svc.decide(world.ctx, world.ann, world.image_id, [row.id], accept=True)
    assert accepted.annotation is not None and accepted.annotation.head is not None
    assert accepted.annotation.head.engine_name == "litemedsam"
