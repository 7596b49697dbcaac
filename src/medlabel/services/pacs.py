"""PACS connections (DICOMweb): manage them, search, pull studies in, push results out.

* **Connections** belong to a project; the project's reviewers (admins everywhere) create,
  list and delete them. The secret (password or token) is stored to be presented to the
  PACS and is never returned (:class:`ConnectionView` has ``has_secret`` only).
* **Search** is QIDO-RS with the PACS's own identifiers: it shows what the PACS holds
  and stores nothing.
* **Pull** retrieves each study with WADO-RS into a temporary folder and imports it with
  :func:`medlabel.services.imports.import_paths`, the pipeline of uploads and
  ``medlabel import``: the same PS3.15 de-identification, duplicate detection and import
  report; the temporary files are deleted at once. Large pulls run as ``pacs_pull`` jobs.
* **Push** writes an annotation as DICOM SEG (:func:`medlabel.io.seg.write_dicom_seg`)
  or a TID 1500 SR (:func:`medlabel.io.sr.write_dicom_sr`) and stores it with STOW-RS.
  Those objects reference the **de-identified** study, series and SOP instance UIDs
  medlabel stored, not the PACS's originals, and carry the pseudonymised patient module:
  on the PACS they form a new (pseudonymous) patient and study beside the original.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pydicom
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select

from medlabel.core.errors import ConflictError, InvalidInputError, NotFoundError
from medlabel.io.dicomweb import AuthKind, DicomwebAuth, DicomwebClient, StudyMatch, StudyQuery
from medlabel.io.dicomweb.client import check_url
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, require_project
from medlabel.services.context import Context
from medlabel.storage.db.models import Annotation, Image, Label, PacsConnection, Project, User

log = logging.getLogger(__name__)

#: the project role that manages connections, searches, pulls and pushes
PACS_ROLE = ProjectRole.REVIEWER
#: most studies one pull may name
MAX_PULL_STUDIES = 1000
#: seconds a PACS may take to answer (connection, or between bytes of an answer)
PACS_TIMEOUT = 60.0


class ConnectionSpec(BaseModel):
    """A new PACS connection: name, DICOMweb root and credentials."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")
    url: str = Field(min_length=1, max_length=500, description="DICOMweb root URL.")
    auth_kind: AuthKind = AuthKind.NONE
    username: str | None = Field(default=None, max_length=200)
    secret: str | None = Field(
        default=None, max_length=4000, description="Password (basic) or token (bearer)."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            return check_url(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _auth(self) -> ConnectionSpec:
        DicomwebAuth(self.auth_kind, self.username, self.secret)  # ValueError if incomplete
        if self.auth_kind == AuthKind.NONE and (self.username or self.secret):
            raise ValueError("auth_kind 'none' takes no username or secret")
        return self


@dataclass(frozen=True)
class ConnectionView:
    """A connection as shown to users: everything but the secret."""

    id: int
    project_id: int
    name: str
    url: str
    auth_kind: AuthKind
    username: str | None
    has_secret: bool
    created_by: int | None
    created_at: Any

    @classmethod
    def of(cls, row: PacsConnection) -> ConnectionView:
        return cls(
            id=row.id,
            project_id=row.project_id,
            name=row.name,
            url=row.url,
            auth_kind=AuthKind(row.auth_kind),
            username=row.username,
            has_secret=bool(row.secret),
            created_by=row.created_by,
            created_at=row.created_at,
        )


def _spec(spec: ConnectionSpec | dict[str, Any]) -> ConnectionSpec:
    if isinstance(spec, ConnectionSpec):
        return spec
    from pydantic import ValidationError

    try:
        return ConnectionSpec.model_validate(spec)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'connection'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise InvalidInputError(f"invalid PACS connection: {problems}") from None


# connections ------------------------------------------------------------------------------
def create_connection(
    ctx: Context,
    actor: Principal | None,
    project_id: int,
    spec: ConnectionSpec | dict[str, Any],
) -> ConnectionView:
    """Add a PACS connection to a project (its reviewers; ``actor`` None: the operator).

    Raises
    ------
    ConflictError
        The project already has a connection of that name.
    """
    spec = _spec(spec)
    with ctx.db.write() as s:
        _project(s, actor, project_id)
        taken = s.scalar(
            select(PacsConnection.id).where(
                PacsConnection.project_id == project_id, PacsConnection.name == spec.name
            )
        )
        if taken is not None:
            raise ConflictError(f"this project already has a PACS connection named {spec.name!r}")
        row = PacsConnection(
            project_id=project_id,
            name=spec.name,
            url=spec.url,
            auth_kind=spec.auth_kind.value,
            username=spec.username,
            secret=spec.secret,
            created_by=actor.id if actor else None,
        )
        s.add(row)
        s.flush()
        audit.record(
            s,
            actor,
            AuditAction.PACS_CONNECTION_CREATE,
            target_type="pacs_connection",
            target_id=row.id,
            project_id=project_id,
            details={"auth_kind": spec.auth_kind.value},
        )
        return ConnectionView.of(row)


def list_connections(
    ctx: Context, actor: Principal | None, project_id: int
) -> list[ConnectionView]:
    with ctx.db.read() as s:
        _project(s, actor, project_id)
        rows = s.scalars(
            select(PacsConnection)
            .where(PacsConnection.project_id == project_id)
            .order_by(PacsConnection.name)
        )
        return [ConnectionView.of(r) for r in rows]


def get_connection(ctx: Context, actor: Principal | None, connection_id: int) -> ConnectionView:
    with ctx.db.read() as s:
        return ConnectionView.of(_connection(s, actor, connection_id))


def find_connection(
    ctx: Context, actor: Principal | None, project_id: int, name_or_id: str
) -> ConnectionView:
    """A connection of the project by name (or id, for the CLI)."""
    with ctx.db.read() as s:
        _project(s, actor, project_id)
        row = s.scalar(
            select(PacsConnection).where(
                PacsConnection.project_id == project_id, PacsConnection.name == name_or_id
            )
        )
        if row is None and name_or_id.isdigit():
            row = s.get(PacsConnection, int(name_or_id))
            if row is not None and row.project_id != project_id:
                row = None
        if row is None:
            raise NotFoundError(f"this project has no PACS connection {name_or_id!r}")
        return ConnectionView.of(row)


def delete_connection(ctx: Context, actor: Principal | None, connection_id: int) -> None:
    with ctx.db.write() as s:
        row = _connection(s, actor, connection_id)
        project_id = row.project_id
        s.delete(row)
        audit.record(
            s,
            actor,
            AuditAction.PACS_CONNECTION_DELETE,
            target_type="pacs_connection",
            target_id=connection_id,
            project_id=project_id,
        )


def _project(s: Any, actor: Principal | None, project_id: int) -> Project:
    if actor is not None:
        return require_project(s, actor, project_id, PACS_ROLE)
    project = s.get(Project, project_id)
    if project is None:
        raise NotFoundError(f"project {project_id} not found")
    return project  # type: ignore[no-any-return]


def _connection(s: Any, actor: Principal | None, connection_id: int) -> PacsConnection:
    row = s.get(PacsConnection, connection_id)
    if row is None:
        raise NotFoundError(f"PACS connection {connection_id} not found")
    try:
        _project(s, actor, row.project_id)
    except NotFoundError:
        raise NotFoundError(f"PACS connection {connection_id} not found") from None
    return row  # type: ignore[no-any-return]


def _client(ctx: Context, actor: Principal | None, connection_id: int) -> DicomwebClient:
    with ctx.db.read() as s:
        row = _connection(s, actor, connection_id)
        url, name = row.url, row.name
        auth = DicomwebAuth(AuthKind(row.auth_kind), row.username, row.secret)
    return DicomwebClient(url, auth, timeout=PACS_TIMEOUT, name=f"{name!r} ({url})")


# search -----------------------------------------------------------------------------------
def search(
    ctx: Context, actor: Principal | None, connection_id: int, query: StudyQuery
) -> list[StudyMatch]:
    """QIDO-RS study search on a connection (nothing is stored).

    Raises
    ------
    RemoteServiceError
        The PACS is unreachable, refuses the credentials or fails.
    """
    with _client(ctx, actor, connection_id) as client:
        return client.search_studies(query)


def check_connection(ctx: Context, actor: Principal | None, connection_id: int) -> None:
    """Check that the PACS answers with the connection's URL and credentials."""
    with _client(ctx, actor, connection_id) as client:
        client.ping()


# pull -------------------------------------------------------------------------------------
@dataclass
class PullResult:
    """What a pull imported, study by study (counts summed over the imports)."""

    studies: int = 0
    import_ids: list[int] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def add(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + int(value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "studies": self.studies,
            "import_ids": self.import_ids,
            "images": len(self.image_ids),
            "image_ids": self.image_ids[:1000],
            "counts": self.counts,
            "problems": self.problems[:100],
        }


#: ``progress(stage, done, total)``, like the import's; may raise to stop
ProgressFn = Callable[[str, int, int], None]


def check_study_uids(study_uids: Sequence[str]) -> list[str]:
    """Validated, de-duplicated StudyInstanceUIDs (order kept).

    Raises
    ------
    InvalidInputError
        None given, too many, or one that is not a UID.
    """
    out: list[str] = []
    for uid in study_uids:
        uid = str(uid).strip()
        if not uid or len(uid) > 64 or any(c not in "0123456789." for c in uid):
            raise InvalidInputError(f"{uid!r} is not a StudyInstanceUID (digits and dots)")
        if uid not in out:
            out.append(uid)
    if not out:
        raise InvalidInputError("name at least one study to pull")
    if len(out) > MAX_PULL_STUDIES:
        raise InvalidInputError(f"pull at most {MAX_PULL_STUDIES} studies at a time")
    return out


def check_pull(
    ctx: Context, actor: Principal | None, connection_id: int, study_uids: Sequence[str]
) -> list[StudyMatch]:
    """Check, before a pull is queued, that the PACS answers and has every study.

    Raises
    ------
    NotFoundError
        Naming the studies the PACS does not have.
    RemoteServiceError
        The PACS is unreachable or refuses the credentials.
    """
    uids = check_study_uids(study_uids)
    found: list[StudyMatch] = []
    missing: list[str] = []
    with _client(ctx, actor, connection_id) as client:
        for uid in uids:
            match = client.find_study(uid)
            if match is None:
                missing.append(uid)
            else:
                found.append(match)
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise NotFoundError(
            f"the PACS has no study {', '.join(missing[:5])}{more}; search it for the UIDs",
            details={"missing": missing[:100]},
        )
    return found


def pull(
    ctx: Context,
    actor: Principal | None,
    connection_id: int,
    study_uids: Sequence[str],
    *,
    progress: ProgressFn | None = None,
) -> PullResult:
    """Retrieve studies (WADO-RS) and import each through the upload pipeline.

    Each study is downloaded to a temporary folder under the medlabel home, imported
    (de-identified, duplicates recognised) and the folder deleted, so a pull needs disk
    for one study at a time. Studies already in the project count as duplicates.

    Raises
    ------
    NotFoundError
        The PACS does not have one of the studies (those before it stay imported).
    RemoteServiceError
        The PACS is unreachable, refuses the credentials or fails.
    """
    from medlabel.services.imports import ImportOptions, OnError, import_paths

    uids = check_study_uids(study_uids)
    with ctx.db.read() as s:
        project_id = _connection(s, actor, connection_id).project_id
    tmp_root = ctx.settings.home / "tmp"
    tmp_root.mkdir(exist_ok=True)
    result = PullResult()
    options = ImportOptions(on_error=OnError.SKIP)
    with _client(ctx, actor, connection_id) as client:
        for n, uid in enumerate(uids):
            folder = Path(tempfile.mkdtemp(prefix="pacs-pull-", dir=tmp_root))
            try:
                received = 0

                def on_part(_: Any, n: int = n) -> None:
                    nonlocal received
                    received += 1
                    if progress is not None and received % 16 == 0:
                        progress(f"study {n + 1}/{len(uids)}: retrieving", n, len(uids))

                client.retrieve(folder, uid, on_part=on_part)

                def importing(_: str, done: int, total: int, n: int = n) -> None:
                    if progress is not None:  # also a cancellation point of the job
                        stage = f"study {n + 1}/{len(uids)}: importing {done}/{total} files"
                        progress(stage, n, len(uids))

                summary = import_paths(
                    ctx, actor, project_id, [folder], options=options, progress=importing
                )
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            result.studies += 1
            result.import_ids.append(summary.import_id)
            result.image_ids.extend(summary.image_ids)
            result.add(summary.counts)
            result.problems.extend(p.__dict__ for p in summary.problems if p.status >= 400)
            if progress is not None:
                progress("pulled", n + 1, len(uids))
    log.info(
        "pacs pull: %d studies, %d images into project %s",
        result.studies,
        len(result.image_ids),
        project_id,
    )
    return result


# push -------------------------------------------------------------------------------------
class PushKind(StrEnum):
    """What to send: the mask as DICOM SEG, or measurements as a TID 1500 SR."""

    SEG = "seg"
    SR = "sr"


class PushWhich(StrEnum):
    LATEST = "latest"
    APPROVED = "approved"


@dataclass(frozen=True)
class PushResult:
    kind: PushKind
    connection_id: int
    annotation_id: int
    revision_id: int
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str


def push(
    ctx: Context,
    actor: Principal | None,
    annotation_id: int,
    connection_id: int,
    kind: PushKind | str = PushKind.SEG,
    which: PushWhich | str = PushWhich.LATEST,
) -> PushResult:
    """Send an annotation to a PACS of its project as DICOM SEG or SR (STOW-RS).

    The object references the de-identified instances stored in medlabel (see the
    module's notes).

    Raises
    ------
    NotFoundError
        No such annotation or connection in the same project, or no approved revision.
    InvalidInputError
        The image was not imported from DICOM, or there is nothing to write.
    RemoteServiceError
        The PACS refused or failed the store.
    """
    from medlabel.io.seg import write_dicom_seg
    from medlabel.io.sr import write_dicom_sr
    from medlabel.services.exports import build_item, label_infos
    from medlabel.storage.db.models import Revision

    kind, which = PushKind(kind), PushWhich(which)
    with ctx.db.read() as s:
        ann = s.get(Annotation, annotation_id)
        if ann is None:
            raise NotFoundError(f"annotation {annotation_id} not found")
        conn = s.get(PacsConnection, connection_id)
        if conn is None or conn.project_id != ann.project_id:
            raise NotFoundError(
                f"PACS connection {connection_id} not found in the annotation's project"
            )
        _project(s, actor, ann.project_id)
        rev_id = ann.approved_revision_id if which == PushWhich.APPROVED else ann.head_revision_id
        if rev_id is None:
            raise NotFoundError(
                f"annotation {annotation_id} has no "
                f"{'approved ' if which == PushWhich.APPROVED else ''}revision to push"
            )
        rev = s.get(Revision, rev_id)
        image = s.get(Image, ann.image_id)
        assert rev is not None and image is not None
        if image.source_format != "dicom" or not image.plane_sources:
            raise InvalidInputError(
                f"image {image.name!r} was not imported from DICOM: only DICOM images can "
                "be pushed as DICOM SEG or SR"
            )
        author = s.get(User, rev.author_id) if rev.author_id else None
        labels = label_infos(
            list(s.scalars(select(Label).where(Label.project_id == ann.project_id)))
        )
        item = build_item(ctx, image, rev, author.username if author else None, with_sources=True)
        project_id = ann.project_id
    tmp_root = ctx.settings.home / "tmp"
    tmp_root.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="pacs-push-", dir=tmp_root))
    try:
        path = folder / f"{kind.value}.dcm"
        if kind == PushKind.SEG:
            write_dicom_seg(item, labels, path)
        else:
            write_dicom_sr(item, labels, path)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        with _client(ctx, actor, connection_id) as client:
            client.store([path])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    with ctx.db.write() as s:
        audit.record(
            s,
            actor,
            AuditAction.PACS_PUSH,
            target_type="annotation",
            target_id=annotation_id,
            project_id=project_id,
            details={"kind": kind.value, "connection_id": connection_id, "revision_id": rev_id},
        )
    return PushResult(
        kind=kind,
        connection_id=connection_id,
        annotation_id=annotation_id,
        revision_id=rev_id,
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        sop_class_uid=str(ds.SOPClassUID),
    )
