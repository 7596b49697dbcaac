"""Uploading files into a project, and the import history with its reports."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile

from medlabel.core.errors import InvalidInputError, MedlabelError
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import imports as svc
from medlabel.services.annotation_imports import import_annotations

router = APIRouter(tags=["imports"])


class ImportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    user_id: int | None
    created_at: dt.datetime
    counts: dict[str, int]
    report: dict[str, Any]
    status: str = Field(
        description="done; preparing while a background import's images are built; failed"
    )


class ImportResultOut(ImportOut):
    image_ids: list[int]
    job_id: int | None = Field(
        default=None, description="The prepare_import job of a background import."
    )


def _safe_relpath(filename: str) -> Path:
    """Keep a folder upload's relative path, without anything that could escape."""
    parts = [
        p for p in PurePosixPath(filename.replace("\\", "/")).parts if p not in ("", ".", "..", "/")
    ]
    parts = [p for p in parts if not p.startswith(".")]
    if not parts:
        raise InvalidInputError(f"upload has an unusable file name {filename!r}")
    return Path(*parts[-8:])


@router.post(
    "/projects/{project_id}/imports",
    response_model=ImportResultOut,
    status_code=status.HTTP_201_CREATED,
)
async def upload(
    project_id: int, request: Request, ctx: CtxDep, me: PrincipalDep
) -> ImportResultOut:
    """Upload DICOM/NIfTI/PNG/JPEG/TIFF files or zip archives (multipart field ``files``,
    repeatable; file names may carry a folder path). Optional fields: ``modality`` for
    NIfTI/raster files, ``on_error`` = ``fail`` (default: any unreadable file rejects the
    whole upload and nothing is stored) or ``skip``, ``background`` = ``true`` to return
    once DICOM files are checked, de-identified and stored (status ``preparing``; a
    ``prepare_import`` job, ``job_id``, decodes them and builds the images; instances
    whose pixels then fail to decode are listed in the import's problems).

    Uploads stream to disk; their total size is limited by MEDLABEL_MAX_UPLOAD_BYTES.
    """
    tmp_root = ctx.settings.home / "tmp"
    tmp_root.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="upload-", dir=tmp_root))
    try:
        try:
            form = await request.form(max_files=100_000, max_fields=100)
        except MedlabelError:
            raise
        except Exception as exc:  # noqa: BLE001 - malformed multipart body
            raise InvalidInputError(f"could not read the multipart upload: {exc}") from None
        paths: list[Path] = []
        for field, value in form.multi_items():
            if field != "files" or not isinstance(value, UploadFile):
                continue
            rel = _safe_relpath(value.filename or "upload")
            dest = workdir / "files" / rel
            if dest.exists():
                dest = dest.with_name(f"{len(paths)}-{dest.name}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("wb") as out:
                await run_in_threadpool(shutil.copyfileobj, value.file, out, 1024 * 1024)
            paths.append(dest)
        if not paths:
            raise InvalidInputError("no files in the upload; send them in the field 'files'")
        modality = form.get("modality")
        on_error = form.get("on_error") or "fail"
        if not isinstance(on_error, str) or on_error not in ("fail", "skip"):
            raise InvalidInputError("on_error must be 'fail' or 'skip'")
        background = form.get("background") or "false"
        if not isinstance(background, str) or background.lower() not in ("true", "false"):
            raise InvalidInputError("background must be 'true' or 'false'")
        options = svc.ImportOptions(
            modality=modality.upper() if isinstance(modality, str) and modality else None,
            on_error=svc.OnError(on_error),
            background=background.lower() == "true",
        )
        await form.close()
        summary = await run_in_threadpool(
            svc.import_paths, ctx, me, project_id, [workdir / "files"], options=options
        )
    finally:
        await run_in_threadpool(shutil.rmtree, workdir, True)
    record = svc.get_import(ctx, me, summary.import_id)
    return ImportResultOut(
        **ImportOut.model_validate(record).model_dump(),
        image_ids=summary.image_ids,
        job_id=summary.job_id,
    )


@router.get("/projects/{project_id}/imports", response_model=list[ImportOut])
def list_imports(project_id: int, ctx: CtxDep, me: PrincipalDep) -> list[ImportOut]:
    return [ImportOut.model_validate(r) for r in svc.list_imports(ctx, me, project_id)]


@router.get("/imports/{import_id}", response_model=ImportOut)
def get_import(import_id: int, ctx: CtxDep, me: PrincipalDep) -> ImportOut:
    """An import with its counts and de-identification report."""
    return ImportOut.model_validate(svc.get_import(ctx, me, import_id))


class ImportedAnnotationOut(BaseModel):
    image_id: int
    image_name: str
    annotation_id: int
    revision_id: int


@router.post(
    "/projects/{project_id}/annotation-imports",
    response_model=list[ImportedAnnotationOut],
    status_code=status.HTTP_201_CREATED,
)
async def upload_annotations(
    project_id: int, request: Request, ctx: CtxDep, me: PrincipalDep
) -> list[ImportedAnnotationOut]:
    """Import a NIfTI mask, DICOM SEG or COCO file (multipart field ``file``) as revisions
    of your annotations. Optional fields: ``format`` (auto, nifti, dicom-seg, coco) and
    ``image_id`` (NIfTI; default: matched by file name)."""
    tmp_root = ctx.settings.home / "tmp"
    tmp_root.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="annotations-", dir=tmp_root))
    try:
        try:
            form = await request.form(max_files=1, max_fields=10)
        except MedlabelError:
            raise
        except Exception as exc:  # noqa: BLE001 - malformed multipart body
            raise InvalidInputError(f"could not read the multipart upload: {exc}") from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInputError("send the annotation file in the multipart field 'file'")
        dest = workdir / _safe_relpath(upload.filename or "annotations").name
        with dest.open("wb") as out:
            await run_in_threadpool(shutil.copyfileobj, upload.file, out, 1024 * 1024)
        fmt = form.get("format") or "auto"
        raw_id = form.get("image_id")
        if raw_id is not None and (not isinstance(raw_id, str) or not raw_id.isdigit()):
            raise InvalidInputError("image_id must be a number")
        await form.close()
        done = await run_in_threadpool(
            import_annotations,
            ctx,
            me,
            project_id,
            dest,
            fmt=str(fmt),
            image_id=int(raw_id) if isinstance(raw_id, str) else None,
        )
    finally:
        await run_in_threadpool(shutil.rmtree, workdir, True)
    return [ImportedAnnotationOut(**d.__dict__) for d in done]
