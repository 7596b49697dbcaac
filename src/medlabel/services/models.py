"""The model registry of a project: trained model versions, one active per task.

Every trained model is a :class:`~medlabel.storage.db.models.ModelVersion` row: its
card (``model.json``), the annotation revisions it learned from, its validation metrics
and size, and its model directory stored in the blob store as one tar (content-addressed,
so storing the same directory twice costs nothing). Versions count up per project and
task; at most one version per project and task is *active* — the one pre-annotation
uses unless told otherwise. Registering and activating lock the project row, so two
concurrent trainings never get the same version number nor two active models.

Nothing here imports torch: the directory is packed and unpacked as files.
"""

from __future__ import annotations

import io
import logging
import tarfile
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, require_project
from medlabel.services.blobrefs import referenced_among, unit_of_work
from medlabel.services.context import Context
from medlabel.storage.db.models import ModelVersion, Project

log = logging.getLogger(__name__)

#: files of a model directory that are stored (anything else is left out)
MODEL_FILES = ("model.json", "weights.pt", "model.onnx")
#: task names a registry row may have (medlabel.engines.deep.model_dir.TaskKind values)
TASKS = ("seg", "cls", "det")


# packing ---------------------------------------------------------------------------------
def pack_directory(directory: Path) -> bytes:
    """The model directory's files as an uncompressed tar with fixed metadata (the same
    files always give the same bytes, so the same digest).

    Raises
    ------
    InvalidInputError
        ``directory`` has no ``model.json``.
    """
    directory = Path(directory)
    if not (directory / "model.json").is_file():
        raise InvalidInputError(f"{directory} is not a model directory (no model.json)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in MODEL_FILES:
            path = directory / name
            if not path.is_file():
                continue
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def unpack_directory(data: bytes, directory: Path) -> Path:
    """Write a packed model directory (see :func:`pack_directory`) into ``directory``.

    Only the known file names are extracted (no paths, links or devices).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers():
            if member.name not in MODEL_FILES or not member.isfile():
                continue
            src = tar.extractfile(member)
            if src is not None:
                (directory / member.name).write_bytes(src.read())
    if not (directory / "model.json").is_file():
        raise InvalidInputError("the stored model has no model.json")
    return directory


# write -----------------------------------------------------------------------------------
def register_model(
    ctx: Context,
    project_id: int,
    directory: Path,
    *,
    name: str = "",
    revision_ids: list[int] | None = None,
    created_by: int | None = None,
    job_id: int | None = None,
    activate: bool | None = None,
) -> ModelVersion:
    """Store a trained model directory as the project's next version of its task.

    Parameters
    ----------
    directory
        A model directory (``model.json`` and ``weights.pt``, optionally ``model.onnx``).
    name
        Shown to people; default ``<task>-v<version>``.
    revision_ids
        The annotation revisions it was trained and validated on.
    activate
        Make it the active version of its task; None (default): only if the task has no
        active version yet.

    Raises
    ------
    NotFoundError
        The project does not exist (any more).
    InvalidInputError
        Not a model directory, or its card is unreadable.
    """
    from medlabel.engines.deep.model_dir import ModelCard

    card = ModelCard.read(Path(directory))
    data = pack_directory(Path(directory))
    task = card.task.value
    with unit_of_work(ctx.db, ctx.blobs) as (s, blobs):
        _lock_project(s, project_id)
        version = 1 + int(
            s.scalar(
                select(func.max(ModelVersion.version)).where(
                    ModelVersion.project_id == project_id, ModelVersion.task == task
                )
            )
            or 0
        )
        has_active = s.scalar(
            select(ModelVersion.id).where(
                ModelVersion.project_id == project_id,
                ModelVersion.task == task,
                ModelVersion.active.is_(True),
            )
        )
        make_active = has_active is None if activate is None else activate
        if make_active:
            _deactivate(s, project_id, task)
        ref = blobs.put(data)
        row = ModelVersion(
            project_id=project_id,
            task=task,
            name=(name or card.name or f"{task}-v{version}")[:100],
            version=version,
            card=card.model_dump(mode="json"),
            revision_ids=sorted({int(r) for r in revision_ids or []}),
            metrics=dict(card.validation),
            size_bytes=len(data),
            weights_digest=ref.digest,
            active=make_active,
            created_by=created_by,
            job_id=job_id,
        )
        s.add(row)
        s.flush()
        audit.record(
            s,
            None,
            AuditAction.MODEL_CREATE,
            target_type="model",
            target_id=row.id,
            project_id=project_id,
            details={"task": task, "version": version, "job_id": job_id, "active": make_active},
        )
    log.info("model id=%s: %s v%s of project id=%s", row.id, task, version, project_id)
    return row


def activate_model(ctx: Context, actor: Principal, model_id: int) -> ModelVersion:
    """Make a version the active one of its project and task (the others are not)."""
    with ctx.db.write() as s:
        row = _model(s, actor, model_id, ProjectRole.REVIEWER)
        _lock_project(s, row.project_id)
        _deactivate(s, row.project_id, row.task)
        row.active = True
        s.flush()
        audit.record(
            s,
            actor,
            AuditAction.MODEL_ACTIVATE,
            target_type="model",
            target_id=row.id,
            project_id=row.project_id,
            details={"task": row.task, "version": row.version},
        )
    return row


def delete_model(ctx: Context, actor: Principal, model_id: int) -> None:
    """Delete a version and (when nothing else refers to it) its stored directory.

    An active version may be deleted; its task then has no active version until another
    is activated.
    """
    with ctx.db.write() as s:
        row = _model(s, actor, model_id, ProjectRole.REVIEWER)
        _lock_project(s, row.project_id)
        digest = row.weights_digest
        audit.record(
            s,
            actor,
            AuditAction.MODEL_DELETE,
            target_type="model",
            target_id=row.id,
            project_id=row.project_id,
            details={"task": row.task, "version": row.version},
        )
        s.delete(row)
        s.flush()
        still_used = digest in referenced_among(s, [digest])
    if not still_used:
        try:
            ctx.blobs.delete(digest)
        except OSError:  # left for the maintenance sweep
            log.warning("could not delete the blob of model id=%s", model_id, exc_info=True)


# read ------------------------------------------------------------------------------------
def list_models(
    ctx: Context, actor: Principal, project_id: int, *, task: str | None = None
) -> list[ModelVersion]:
    """The project's model versions, newest first (optionally of one task)."""
    if task is not None and task not in TASKS:
        raise InvalidInputError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    with ctx.db.read() as s:
        require_project(s, actor, project_id)
        stmt = select(ModelVersion).where(ModelVersion.project_id == project_id)
        if task is not None:
            stmt = stmt.where(ModelVersion.task == task)
        return list(s.scalars(stmt.order_by(ModelVersion.task, ModelVersion.version.desc())))


def get_model(ctx: Context, actor: Principal, model_id: int) -> ModelVersion:
    with ctx.db.read() as s:
        return _model(s, actor, model_id, ProjectRole.VIEWER)


def active_model(s: Session, project_id: int, task: str) -> ModelVersion | None:
    """The active version of a project's task (no permission check)."""
    return s.scalar(
        select(ModelVersion).where(
            ModelVersion.project_id == project_id,
            ModelVersion.task == task,
            ModelVersion.active.is_(True),
        )
    )


def download_model(ctx: Context, actor: Principal, model_id: int) -> tuple[ModelVersion, bytes]:
    """The version and its model directory as a tar (recorded in the audit log: trained
    weights can memorise their training data)."""
    with ctx.db.write() as s:
        row = _model(s, actor, model_id, ProjectRole.REVIEWER)
        audit.record(
            s,
            actor,
            AuditAction.MODEL_DOWNLOAD,
            target_type="model",
            target_id=row.id,
            project_id=row.project_id,
            details={"task": row.task, "version": row.version},
        )
    return row, ctx.blobs.read_bytes(row.weights_digest)


def extract_model(ctx: Context, row: ModelVersion, directory: Path) -> Path:
    """Unpack a stored version into ``directory`` (no permission check; for jobs)."""
    return unpack_directory(ctx.blobs.read_bytes(row.weights_digest), directory)


def model_summary(row: ModelVersion) -> dict[str, Any]:
    """A short JSON view of a version (for job results and logs)."""
    return {
        "model_id": row.id,
        "task": row.task,
        "name": row.name,
        "version": row.version,
        "active": row.active,
        "metrics": row.metrics,
        "size_bytes": row.size_bytes,
    }


# helpers ---------------------------------------------------------------------------------
def _model(s: Session, actor: Principal, model_id: int, need: ProjectRole) -> ModelVersion:
    row = s.get(ModelVersion, model_id)
    if row is None:
        raise NotFoundError(f"model {model_id} not found")
    require_project(s, actor, row.project_id, need)
    return row


def _lock_project(s: Session, project_id: int) -> None:
    """Serialise registry writes of a project (row lock on PostgreSQL; SQLite write
    transactions are serialised already)."""
    found = s.scalar(select(Project.id).where(Project.id == project_id).with_for_update())
    if found is None:
        raise NotFoundError(f"project {project_id} not found")


def _deactivate(s: Session, project_id: int, task: str) -> None:
    s.execute(
        update(ModelVersion)
        .where(
            ModelVersion.project_id == project_id,
            ModelVersion.task == task,
            ModelVersion.active.is_(True),
        )
        .values(active=False)
    )


__all__ = [
    "activate_model",
    "active_model",
    "delete_model",
    "download_model",
    "extract_model",
    "get_model",
    "list_models",
    "model_summary",
    "pack_directory",
    "register_model",
    "unpack_directory",
]
