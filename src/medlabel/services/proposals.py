"""AI proposals: run an engine on an image for one user, keep its mask until they decide.

A proposal is a suggestion, never an annotation by itself. The user who asked accepts it
(the mask is merged into their annotation as one engine-sourced revision, with the engine's
name, version and prompt as provenance) or rejects it (only the decision is recorded).

Engines run outside any database transaction, in the caller's thread (the HTTP routes run in
the server's threadpool); only the result is stored, in one unit of work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, cast

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medlabel.annotation.content import AnnotationContent, check_mask
from medlabel.annotation.enums import LabelKind, ProposalState, RevisionSource
from medlabel.core.errors import (
    ConflictError,
    InvalidInputError,
    MedlabelError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
)
from medlabel.core.ids import utcnow
from medlabel.engines import runner
from medlabel.engines.base import AnnotationEngine, EngineRequest
from medlabel.engines.base import Proposal as EngineProposal
from medlabel.imaging.volume import Volume
from medlabel.io.arrays import decode_array, encode_array
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, project_role, require_project
from medlabel.services.annotations import (
    AnnotationView,
    EngineInfo,
    _check_version,
    _commit_head,
    _mask_summary,
    _mask_values,
    _new_revision,
)
from medlabel.services.assignments import claim_reading
from medlabel.services.blobrefs import BlobTransaction, unit_of_work
from medlabel.services.context import Context
from medlabel.services.images import pixels
from medlabel.services.models import active_model, extract_model
from medlabel.services.project_engines import (
    PROJECT_MODEL,
    ProjectModelEngine,
    no_model_message,
)
from medlabel.services.proposal_prompts import (
    MAX_POINTS,
    MAX_SCRIBBLE_RADIUS,
    FromAnnotation,
    FromPlane,
    FromProposal,
    Previous,
    crop_slices,
    parse_box,
    parse_points,
    previous_digest,
    previous_mask,
    previous_source,
    scribble_mask,
)
from medlabel.storage.db.models import Annotation, Image, Label, ModelVersion, Proposal, Revision

log = logging.getLogger(__name__)

#: at most this many proposals are decided in one request
MAX_DECIDE = 1_000


class MergeMode(StrEnum):
    """How an accepted proposal enters the annotation's label mask.

    ``add``: the proposal's voxels get the label's value (also where another label was:
    the proposal wins), the rest of the mask is kept. ``replace``: the label's voxels inside
    each proposal's box (its cropped extent) are cleared first, then the proposal's voxels
    are set, so a redrawn structure replaces the old outline there.
    """

    ADD = "add"
    REPLACE = "replace"


@dataclass
class ProposalView:
    """A stored proposal and its cropped boolean mask (shape ``row.shape`` at ``row.origin``)."""

    row: Proposal
    mask: np.ndarray


@dataclass
class Decision:
    """The outcome of accepting or rejecting proposals."""

    ids: list[int]
    #: the annotation with its new head revision (accept only)
    annotation: AnnotationView | None = None


@dataclass(frozen=True)
class EngineDescription:
    """An engine as shown to people choosing a tool."""

    name: str
    title: str
    description: str
    prompts: list[str]
    required: list[str]
    params: list[dict[str, Any]]
    volumetric: bool
    available: bool
    loaded: bool
    #: why it is unavailable (e.g. which extra to install)
    message: str = ""


# engines ---------------------------------------------------------------------------------
def list_engines(
    ctx: Context, actor: Principal | None = None, project_id: int | None = None
) -> list[EngineDescription]:
    """Every engine this server offers, with its prompts and parameters.

    Engines are described from their class, not built: a model loads on its first use
    (the server preloads the ones in ``preload_engines``), and ``loaded`` says whether
    that has happened.

    The last one is ``project-model``, the AI box backed by the active segmentation model
    of the image's project. With ``project_id`` (and the ``actor``, a member of the
    project) it is ``available`` only if that project has an active segmentation model,
    named in its title; without, whenever its dependencies are installed.

    Raises
    ------
    NotFoundError, PermissionDeniedError
        ``project_id`` names a project that does not exist or the actor may not see.
    """
    out = _registry_engines(ctx)
    out.append(_project_model(ctx, actor, project_id))
    return out


def _registry_engines(ctx: Context) -> list[EngineDescription]:
    registry = ctx.engines
    out = []
    for name in registry.names():
        engine: AnnotationEngine | None = None
        message = ""
        try:
            engine = registry.describe(name)
        except MissingDependencyError as exc:
            message = exc.message
        except Exception:
            log.exception("engine %s failed to load", name)
            message = "the engine failed to load; see the server log"
        out.append(_describe(name, engine, message, loaded=registry.loaded(name)))
    return out


def _project_model(
    ctx: Context, actor: Principal | None, project_id: int | None
) -> EngineDescription:
    """The ``project-model`` engine, described for one project (or for any)."""
    import importlib.util

    missing = [m for m in ("torch", "monai") if importlib.util.find_spec(m) is None]
    if missing:
        message = (
            f"the AI box (project model) needs {' and '.join(missing)}: install them with "
            "`pip install 'medlabel[train]'`"
        )
        return _describe(PROJECT_MODEL, None, message, loaded=False)
    desc = _describe(PROJECT_MODEL, ProjectModelEngine, "", loaded=False)  # type: ignore[arg-type]
    if project_id is None:
        return desc
    with ctx.db.read() as s:
        if actor is None:
            raise PermissionDeniedError("log in to list a project's engines")
        require_project(s, actor, project_id, ProjectRole.VIEWER)
        row = active_model(s, project_id, "seg")
    if row is None:
        return replace(desc, available=False, message=no_model_message())
    return replace(
        desc,
        title=f"AI box (project model: {row.name} v{row.version})",
        loaded=ctx.project_engines.loaded(row.id),
    )


def _describe(
    name: str, engine: AnnotationEngine | None, message: str, *, loaded: bool
) -> EngineDescription:
    if engine is None:
        return EngineDescription(
            name=name,
            title=name,
            description="",
            prompts=[],
            required=[],
            params=[],
            volumetric=False,
            available=False,
            loaded=False,
            message=message,
        )
    params = [
        {
            "name": p.name,
            "kind": p.kind.value,
            "default": _jsonable(p.default),
            "help": p.help,
            "minimum": p.minimum,
            "maximum": p.maximum,
            "choices": list(p.choices),
        }
        for p in engine.params
    ]
    return EngineDescription(
        name=engine.name,
        title=engine.title,
        description=engine.description,
        prompts=sorted(k.value for k in engine.prompts),
        required=sorted(k.value for k in engine.required),
        params=params,
        volumetric=engine.volumetric,
        available=True,
        loaded=loaded,
    )


# propose ---------------------------------------------------------------------------------
def propose(
    ctx: Context,
    actor: Principal,
    image_id: int,
    *,
    engine: str,
    label: str,
    axis: int = 0,
    index: int | None = None,
    box: Sequence[Sequence[float]] | None = None,
    positive: Sequence[Sequence[float]] = (),
    negative: Sequence[Sequence[float]] = (),
    foreground_points: Sequence[Sequence[float]] = (),
    background_points: Sequence[Sequence[float]] = (),
    scribble_radius: float = 2.0,
    previous: Previous | None = None,
    params: Mapping[str, Any] | None = None,
) -> ProposalView:
    """Run ``engine`` on the image for ``label`` and store its proposal as pending.

    Parameters
    ----------
    engine
        A name of :func:`list_engines`; ``project-model`` runs the active segmentation
        model of the image's project (loaded once per model version and process, see
        :mod:`medlabel.services.project_engines`), recorded as ``project-model:<name>``
        version ``v<N>``.
    axis, index
        The slice to work on (array axis 0 plane, 1 row, 2 column, and the index along
        it); ``index=None`` asks a volumetric engine for the whole volume.
    box, positive, negative
        A box ``[[p, r, c], [p, r, c]]`` and clicks in voxel coordinates.
    foreground_points, background_points
        Scribbles as voxel coordinates, each painted as a disc of ``scribble_radius``
        voxels in the slice (``index`` given; points must lie on it) or as a ball (whole
        volume).
    previous
        A mask to refine: an earlier proposal, the user's current mask of the label, or
        a mask of the slice.

    Returns
    -------
    ProposalView
        The stored row and the cropped boolean mask.

    Raises
    ------
    NotFoundError
        Unknown image or engine.
    PermissionDeniedError
        The actor is not an annotator of the image's project.
    InvalidInputError
        Unknown or non-mask label, a point outside the image or off the slice, a wrong
        slice index, a bad parameter, a previous proposal that is not the actor's on this
        image, ``project-model`` in a project without an active segmentation model:
        nothing is stored.
    MissingDependencyError
        The engine needs an optional extra that is not installed.
    """
    with ctx.db.read() as s:
        image = _image(s, actor, image_id, ProjectRole.ANNOTATOR)
        lab = _mask_label(s, image.project_id, label)
        previous_source_ref = previous_digest(s, actor, image, previous)
        model_row = active_model(s, image.project_id, "seg") if engine == PROJECT_MODEL else None
    shape = _shape(image)
    eng = _engine(ctx, engine, model_row)
    if axis not in (0, 1, 2):
        raise InvalidInputError(f"axis must be 0, 1 or 2, got {axis}")
    if index is not None and not 0 <= index < shape[axis]:
        raise InvalidInputError(f"slice {index} is outside 0..{shape[axis] - 1} along axis {axis}")
    fg = scribble_mask(foreground_points, shape, axis, index, scribble_radius, "foreground")
    bg = scribble_mask(background_points, shape, axis, index, scribble_radius, "background")
    prev = previous_mask(ctx, previous, previous_source_ref, lab, shape, axis, index)
    volume = Volume(
        pixels(ctx, image),
        np.asarray(image.affine),
        modality=image.modality,
        geometry_known=image.geometry_known,
    )
    try:
        request = EngineRequest(
            axis=axis,
            index=index,
            box=parse_box(box),
            positive=parse_points(positive, "positive"),
            negative=parse_points(negative, "negative"),
            foreground=fg,
            background=bg,
            previous=prev,
            params=dict(params or {}),
        )
        result = runner.run(eng, volume, request)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    cropped = result.cropped()
    _check_fits(eng.name, cropped, shape)
    prompt = dict(cropped.prompt)
    if fg is not None or bg is not None:
        prompt["scribble_radius"] = float(scribble_radius)
        prompt["foreground_points"] = [list(map(float, p)) for p in foreground_points]
        prompt["background_points"] = [list(map(float, p)) for p in background_points]
    if previous is not None:
        prompt["previous_from"] = previous_source(previous)
    with unit_of_work(ctx.db, ctx.blobs) as (s, blobs):
        image = _image(s, actor, image_id, ProjectRole.ANNOTATOR)  # still there and allowed
        digest = blobs.put(encode_array(cropped.mask, compress=True)).digest
        row = Proposal(
            project_id=image.project_id,
            image_id=image.id,
            user_id=actor.id,
            engine_name=cropped.engine,
            engine_version=cropped.version,
            prompt=_jsonable(prompt),
            label=lab.name,
            seconds=float(cropped.seconds),
            origin=[int(o) for o in cropped.origin],
            shape=[int(n) for n in cropped.mask.shape],
            mask_digest=digest,
            voxels=int(np.count_nonzero(cropped.mask)),
            info=_jsonable(dict(cropped.info)),
            state=ProposalState.PENDING.value,
        )
        s.add(row)
        s.flush()
    log.info(
        "proposal id=%s by engine %s on image id=%s: %d voxels in %.2f s",
        row.id,
        row.engine_name,
        image_id,
        row.voxels,
        row.seconds,
    )
    return ProposalView(row, cropped.mask)


def _engine(ctx: Context, name: str, model_row: ModelVersion | None) -> AnnotationEngine:
    """The named engine; ``project-model``: the engine of the project's active
    segmentation model ``model_row`` (loaded once per version, see
    :class:`~medlabel.services.project_engines.ProjectEngines`)."""
    if name != PROJECT_MODEL:
        return ctx.engines.get(name)
    if model_row is None:
        raise InvalidInputError(no_model_message())
    row = model_row
    engine = ctx.project_engines.get(lambda folder: extract_model(ctx, row, folder), row)
    return cast(AnnotationEngine, engine)


def _image(s: Session, actor: Principal, image_id: int, need: ProjectRole) -> Image:
    image = s.get(Image, image_id)
    if image is None:
        raise NotFoundError(f"image {image_id} not found")
    require_project(s, actor, image.project_id, need)
    return image


def _shape(image: Image) -> tuple[int, int, int]:
    p, r, c = (int(n) for n in image.shape[:3])
    return p, r, c


def _mask_label(s: Session, project_id: int, name: str) -> Label:
    labels = list(s.scalars(select(Label).where(Label.project_id == project_id)))
    masks = sorted(lab.name for lab in labels if lab.kind == LabelKind.MASK.value)
    choose = f"mask labels of this project: {', '.join(masks) or 'none defined yet'}"
    lab = next((x for x in labels if x.name == name), None)
    if lab is None:
        raise InvalidInputError(f"unknown label {name!r}; {choose}")
    if lab.kind != LabelKind.MASK.value or lab.value is None:
        raise InvalidInputError(
            f"label {name!r} is a {lab.kind} label; proposals are masks, so choose a mask "
            f"label ({choose})"
        )
    return lab


def _check_fits(name: str, proposal: EngineProposal, shape: tuple[int, int, int]) -> None:
    """An engine's mask must lie inside the image (a bug in the engine otherwise)."""
    end = [o + n for o, n in zip(proposal.origin, proposal.mask.shape, strict=True)]
    if min(proposal.origin) < 0 or any(e > n for e, n in zip(end, shape, strict=True)):
        raise MedlabelError(
            f"engine {name!r} returned a mask at {list(proposal.origin)} of shape "
            f"{list(proposal.mask.shape)} outside the image of shape {list(shape)}"
        )


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python numbers and lists, and NaN or
    infinite numbers as None (JSON has neither)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# read ------------------------------------------------------------------------------------
def get_proposal(ctx: Context, actor: Principal, proposal_id: int) -> ProposalView:
    """A proposal with its mask; visible to the user who asked and to the project's
    reviewers."""
    with ctx.db.read() as s:
        row = s.get(Proposal, proposal_id)
        role = project_role(s, actor, row.project_id) if row else None
        if (
            row is None
            or role is None
            or (row.user_id != actor.id and not role.at_least(ProjectRole.REVIEWER))
        ):
            raise NotFoundError(f"proposal {proposal_id} not found")
    return ProposalView(row, proposal_mask(ctx, row))


def list_proposals(
    ctx: Context, actor: Principal, image_id: int, *, state: ProposalState | str | None = None
) -> list[Proposal]:
    """The actor's proposals on an image, oldest first (optionally only those in ``state``)."""
    if state is not None:
        try:
            state = ProposalState(state)
        except ValueError:
            raise InvalidInputError(
                f"unknown proposal state {state!r}; use one of {[x.value for x in ProposalState]}"
            ) from None
    with ctx.db.read() as s:
        _image(s, actor, image_id, ProjectRole.VIEWER)
        stmt = select(Proposal).where(Proposal.image_id == image_id, Proposal.user_id == actor.id)
        if state is not None:
            stmt = stmt.where(Proposal.state == state.value)
        return list(s.scalars(stmt.order_by(Proposal.id)))


def proposal_mask(ctx: Context, row: Proposal) -> np.ndarray:
    """The proposal's cropped boolean mask, of shape ``row.shape``."""
    mask = decode_array(ctx.blobs.read_bytes(row.mask_digest)).astype(bool, copy=False)
    if list(mask.shape) != list(row.shape):
        raise MedlabelError(f"stored mask of proposal {row.id} has the wrong shape")
    return mask


def full_mask(ctx: Context, row: Proposal, shape: Sequence[int]) -> np.ndarray:
    """The proposal's mask pasted into a boolean array of the image's ``shape``."""
    out = np.zeros(tuple(int(n) for n in shape[:3]), bool)
    out[crop_slices(row.origin, row.shape, out.shape)] = proposal_mask(ctx, row)
    return out


# decide ----------------------------------------------------------------------------------
def decide(
    ctx: Context,
    actor: Principal,
    image_id: int,
    ids: Sequence[int],
    *,
    accept: bool,
    base_version: int | None = None,
    mode: MergeMode | str = MergeMode.ADD,
) -> Decision:
    """Accept or reject pending proposals, all or none.

    Accepting merges every proposal's mask into the actor's annotation of the image (made
    if missing) as one new revision with ``source=engine``, the (last) proposal's engine
    name and version, and the prompt ``{"proposals": ids, "prompts": [...], ...}``; see
    :class:`MergeMode`. The annotation's content and other labels are kept. The actor's
    autosaved draft is kept too: it holds work the proposal does not include. Proposals
    of classification and detection models add classes or boxes to the content instead,
    the mask kept (see :mod:`medlabel.services.model_proposals`).

    Parameters
    ----------
    ids
        The proposals: pending, on this image, asked by the actor, and (to accept) all
        for the same label.
    base_version
        To accept: the version of the actor's annotation the client shows, or None if it
        has none yet; a mismatch is a :class:`ConflictError`.

    Raises
    ------
    NotFoundError
        Unknown image or proposal.
    PermissionDeniedError
        A proposal of another user, or the actor is not an annotator.
    InvalidInputError
        A proposal of another image, mixed labels, an unknown mode.
    ConflictError
        A proposal was already decided, or the annotation changed since ``base_version``.
    """
    try:
        mode = MergeMode(mode)
    except ValueError:
        raise InvalidInputError(
            f"unknown mode {mode!r}; use one of {[m.value for m in MergeMode]}"
        ) from None
    wanted = list(dict.fromkeys(int(i) for i in ids))
    if not wanted:
        raise InvalidInputError("give the ids of the proposals to decide on")
    if len(wanted) > MAX_DECIDE:
        raise InvalidInputError(f"at most {MAX_DECIDE} proposals at once, got {len(wanted)}")
    with unit_of_work(ctx.db, ctx.blobs) as (s, blobs):
        image = _image(s, actor, image_id, ProjectRole.ANNOTATOR)
        rows = _pending(s, actor, image_id, wanted)
        if not accept:
            _mark(rows, ProposalState.REJECTED, None)
            s.flush()
            audit.record(
                s,
                actor,
                AuditAction.PROPOSAL_REJECT,
                target_type="image",
                target_id=image_id,
                project_id=image.project_id,
                details={"proposals": wanted[:50], "count": len(wanted)},
            )
            log.info("rejected proposals %s on image id=%s", wanted, image_id)
            return Decision(wanted)
        view = _accept(ctx, s, blobs, actor, image, rows, base_version, mode)
        audit.record(
            s,
            actor,
            AuditAction.PROPOSAL_ACCEPT,
            target_type="image",
            target_id=image_id,
            project_id=image.project_id,
            details={
                "proposals": wanted[:50],
                "count": len(wanted),
                "annotation_id": view.annotation.id,
                "mode": mode.value,
            },
        )
    log.info("accepted proposals %s as revision id=%s", wanted, view.head and view.head.id)
    return Decision(wanted, view)


def _pending(s: Session, actor: Principal, image_id: int, ids: list[int]) -> list[Proposal]:
    """The proposals, locked for update, checked to be the actor's pending ones here."""
    found = {
        p.id: p for p in s.scalars(select(Proposal).where(Proposal.id.in_(ids)).with_for_update())
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(f"proposal(s) {missing} not found")
    rows = [found[i] for i in ids]
    for p in rows:
        if p.user_id != actor.id:
            raise PermissionDeniedError(
                f"proposal {p.id} was asked for by another user; only they may accept or reject it"
            )
        if p.image_id != image_id:
            raise InvalidInputError(f"proposal {p.id} is not on image {image_id}")
        if p.state != ProposalState.PENDING.value:
            raise ConflictError(
                f"proposal {p.id} was already {p.state}", details={"proposal_id": p.id}
            )
    return rows


def _mark(rows: list[Proposal], state: ProposalState, revision_id: int | None) -> None:
    now = utcnow()
    for p in rows:
        p.state = state.value
        p.revision_id = revision_id
        p.decided_at = now


def _accept(
    ctx: Context,
    s: Session,
    blobs: BlobTransaction,
    actor: Principal,
    image: Image,
    rows: list[Proposal],
    base_version: int | None,
    mode: MergeMode,
) -> AnnotationView:
    from medlabel.services import model_proposals

    content_task = {model_proposals.proposal_task(p) for p in rows} - {"seg"}
    names = sorted({p.label for p in rows})
    if len(names) > 1 and not content_task:
        raise InvalidInputError(
            f"accept proposals of one label at a time; these are for {', '.join(names)}"
        )
    label = _mask_label(s, image.project_id, names[0]) if not content_task else None
    labels = list(s.scalars(select(Label).where(Label.project_id == image.project_id)))
    ann = s.scalar(
        select(Annotation).where(Annotation.image_id == image.id, Annotation.owner_id == actor.id)
    )
    if ann is None:
        if base_version is not None:
            raise ConflictError(
                f"you have no annotation on image {image.id} (your version {base_version}); "
                "reload the image"
            )
        claim_reading(s, actor, image)  # reader studies: a free reader slot or an assignment
        ann = Annotation(project_id=image.project_id, image_id=image.id, owner_id=actor.id)
        s.add(ann)
        try:
            s.flush()
        except IntegrityError:
            raise ConflictError(
                f"your annotation of image {image.id} was created meanwhile; reload the image"
            ) from None
        parent = None
    else:
        if base_version is None:
            raise ConflictError(
                f"you have annotation {ann.id} (version {ann.version}) on this image; send "
                "its version as base_version",
                details={"annotation_id": ann.id, "current_version": ann.version},
            )
        _check_version(s, ann, base_version)
        parent = s.get(Revision, ann.head_revision_id) if ann.head_revision_id else None
    if label is None:  # classes or boxes of a classification or detection model
        return _accept_content(s, actor, image, rows, ann, parent, mode)
    shape = _shape(image)
    value = int(label.value or 0)
    if parent is not None and parent.mask_digest is not None:
        mask = decode_array(ctx.blobs.read_bytes(parent.mask_digest))
    else:
        mask = np.zeros(shape, np.uint8)
    if mask.max(initial=0) < 256 and value < 256:
        mask = mask.astype(np.uint8, copy=False)
    else:
        mask = mask.astype(np.uint16, copy=False)
    mask = np.array(mask, copy=True)  # decoded arrays may be read-only
    pieces = [(crop_slices(p.origin, p.shape, shape), proposal_mask(ctx, p)) for p in rows]
    if mode == MergeMode.REPLACE:
        for sl, _ in pieces:
            region = mask[sl]
            region[region == value] = 0
    for sl, piece in pieces:
        mask[sl][piece] = value
    check_mask(mask, shape=shape, values=_mask_values(labels))
    digest = blobs.put(encode_array(mask, compress=True)).digest
    last = rows[-1]
    prompt = {
        "proposals": [p.id for p in rows],
        "prompts": [p.prompt for p in rows],
        "engines": [f"{p.engine_name} {p.engine_version}" for p in rows],
        "label": label.name,
        "mode": mode.value,
    }
    content = dict(parent.content) if parent else AnnotationContent().model_dump()
    ids = ", ".join(str(p.id) for p in rows)
    rev = _new_revision(
        s,
        ann,
        parent,
        actor,
        RevisionSource.ENGINE,
        EngineInfo(last.engine_name, last.engine_version, prompt),
        content,
        digest,
        _mask_summary(mask),
        f"accepted {last.engine_name} proposal(s) {ids} for {label.name} ({mode.value})",
    )
    view = _commit_head(s, ann, rev)
    _mark(rows, ProposalState.ACCEPTED, rev.id)
    s.flush()
    return view


def _accept_content(
    s: Session,
    actor: Principal,
    image: Image,
    rows: list[Proposal],
    ann: Annotation,
    parent: Revision | None,
    mode: MergeMode,
) -> AnnotationView:
    """Accept class or box proposals: one engine revision whose content gains them (see
    :mod:`medlabel.services.model_proposals`), the mask kept."""
    from medlabel.services.model_proposals import merge_content

    change = merge_content(
        s, image, parent.content if parent else None, rows, mode == MergeMode.REPLACE
    )
    last = rows[-1]
    prompt = {
        "proposals": [p.id for p in rows],
        "prompts": [p.prompt for p in rows],
        "engines": [f"{p.engine_name} {p.engine_version}" for p in rows],
        "labels": sorted({p.label for p in rows}),
        "mode": mode.value,
    }
    ids = ", ".join(str(p.id) for p in rows)
    rev = _new_revision(
        s,
        ann,
        parent,
        actor,
        RevisionSource.ENGINE,
        EngineInfo(last.engine_name, last.engine_version, prompt),
        change.content,
        parent.mask_digest if parent else None,
        parent.mask_summary if parent else {},
        f"accepted {last.engine_name} proposal(s) {ids}: {change.message} ({mode.value})",
    )
    view = _commit_head(s, ann, rev)
    _mark(rows, ProposalState.ACCEPTED, rev.id)
    s.flush()
    return view


__all__ = [
    "MAX_POINTS",
    "MAX_SCRIBBLE_RADIUS",
    "Decision",
    "EngineDescription",
    "FromAnnotation",
    "FromPlane",
    "FromProposal",
    "MergeMode",
    "Previous",
    "ProposalView",
    "decide",
    "full_mask",
    "get_proposal",
    "list_engines",
    "list_proposals",
    "proposal_mask",
    "propose",
]
