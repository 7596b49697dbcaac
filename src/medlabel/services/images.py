"""Browsing images: listing, metadata, rendered slices, thumbnails, downloads."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from medlabel.annotation.enums import ImageStatus
from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.imaging.filters import ViewFilter, apply_view_filter
from medlabel.imaging.orientation import View, axis_codes, native_view, view_axis
from medlabel.imaging.render import render_slice
from medlabel.imaging.stats import RegionStats, region_stats
from medlabel.imaging.windowing import CT_PRESETS, Window
from medlabel.io.nifti import nifti_header_bytes
from medlabel.io.png import encode_png_fast
from medlabel.security.audit import ImageReadKind
from medlabel.security.roles import ProjectRole
from medlabel.services import assignments
from medlabel.services.access import Principal, cached_project_role, require_project
from medlabel.services.context import Context
from medlabel.storage.db.models import Image, Instance, Label, Series, Study

SORTS = {"id": Image.id, "name": Image.name, "created": Image.created_at, "status": Image.status}


@dataclass
class ImagePage:
    items: list[Image]
    total: int


def get_image(ctx: Context, actor: Principal, image_id: int) -> Image:
    with ctx.db.read() as s:
        return _image(s, actor, image_id)


def _image(s: Session, actor: Principal, image_id: int) -> Image:
    image = s.get(Image, image_id)
    if image is None:
        raise NotFoundError(f"image {image_id} not found")
    require_project(s, actor, image.project_id, ProjectRole.VIEWER)
    return image


def _filtered(
    project_id: int, status: str | None, modality: str | None, q: str | None
) -> Select[Image]:
    stmt = select(Image).where(Image.project_id == project_id)
    if status:
        try:
            stmt = stmt.where(Image.status == ImageStatus(status).value)
        except ValueError:
            raise InvalidInputError(
                f"unknown status {status!r}; use one of {[x.value for x in ImageStatus]}"
            ) from None
    if modality:
        stmt = stmt.where(Image.modality == modality.upper())
    if q:
        stmt = stmt.where(Image.name.ilike(f"%{q.replace('%', '').replace('_', '')}%"))
    return stmt


def list_images(
    ctx: Context,
    actor: Principal,
    project_id: int,
    *,
    status: str | None = None,
    modality: str | None = None,
    q: str | None = None,
    sort: str = "id",
    limit: int = 100,
    offset: int = 0,
) -> ImagePage:
    """A page of a project's images, filtered by status, modality and name."""
    if sort.lstrip("-") not in SORTS:
        raise InvalidInputError(f"unknown sort {sort!r}; use one of {sorted(SORTS)}")
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInputError("limit must be within 1..1000 and offset non-negative")
    col = SORTS[sort.lstrip("-")]
    with ctx.db.read() as s:
        require_project(s, actor, project_id)
        stmt = _filtered(project_id, status, modality, q)
        total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        order = col.desc() if sort.startswith("-") else col
        items = list(s.scalars(stmt.order_by(order, Image.id).limit(limit).offset(offset)))
    return ImagePage(items, total)


def next_image(
    ctx: Context, actor: Principal, project_id: int, *, after: int | None = None
) -> Image | None:
    """The next image for the actor to read after ``after`` (wrapping around), without
    claiming it: their reader queue's next image (see
    :func:`medlabel.services.assignments.peek_next`), or None when nothing is left."""
    return assignments.peek_next(ctx, actor, project_id, after=after)


def image_context(ctx: Context, actor: Principal, image_id: int) -> dict[str, Any]:
    """Study and series facts of an image (de-identified), for the viewer."""
    with ctx.db.read() as s:
        image = _image(s, actor, image_id)
        out: dict[str, Any] = {}
        if image.series_id is not None:
            series = s.get(Series, image.series_id)
            assert series is not None
            study = s.get(Study, series.study_id)
            assert study is not None
            out = {
                "study": {
                    "id": study.id,
                    "uid": study.study_uid,
                    "patient": study.patient_pseudonym,
                    "date": study.study_date,
                    "description": study.description,
                },
                "series": {
                    "id": series.id,
                    "uid": series.series_uid,
                    "number": series.series_number,
                    "modality": series.modality,
                    "description": series.description,
                },
            }
        affine = np.asarray(image.affine)
        out["orientation"] = "".join(axis_codes(affine))
        out["native_view"] = native_view(affine).value
        out["views"] = {v.value: image.shape[view_axis(affine, v)] for v in View}
        return out


def pixels(ctx: Context, image: Image) -> np.ndarray:
    """The image's stored array ``(planes, rows, columns[, channels])``, read-only."""
    return ctx.volumes.get(image.pixel_digest)


def resolve_window(
    image: Image,
    *,
    preset: str | None = None,
    center: float | None = None,
    width: float | None = None,
) -> Window | None:
    """The window asked for, else the image's default."""
    if preset:
        if preset not in CT_PRESETS:
            raise InvalidInputError(
                f"unknown window preset {preset!r}; use one of {list(CT_PRESETS)}"
            )
        return CT_PRESETS[preset]
    if (center is None) != (width is None):
        raise InvalidInputError("give both window center and width, or neither")
    if center is not None and width is not None:
        try:
            return Window(center, width)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
    if image.window_center is not None and image.window_width is not None:
        return Window(image.window_center, image.window_width)
    return None


def _slice_facts(ctx: Context, actor: Principal, image_id: int) -> Image:
    """The image, through the access cache: pixels, geometry and window never change, so
    rendering many slices costs no database round trip once the image is known."""
    key = ("image", image_id)
    image = ctx.auth_cache.get(key)
    if image is None:
        with ctx.db.read() as s:
            image = s.get(Image, image_id)
        if image is None:
            raise NotFoundError(f"image {image_id} not found")
        ctx.auth_cache.set(key, image)
    if cached_project_role(ctx, actor, image.project_id) is None:
        raise NotFoundError(f"image {image_id} not found")
    return image


def note_read(ctx: Context, actor: Principal, image_id: int, kind: ImageReadKind) -> None:
    """Record in the audit log that ``actor`` read ``kind`` data of an image (coalesced:
    see :class:`medlabel.security.audit.ImageReadLog`)."""
    image = _slice_facts(ctx, actor, image_id)
    ctx.image_reads.note(actor, image.id, image.project_id, kind)


def slice_png(
    ctx: Context,
    actor: Principal,
    image_id: int,
    *,
    view: str | None = None,
    index: int | None = None,
    preset: str | None = None,
    center: float | None = None,
    width: float | None = None,
) -> bytes:
    """A slice rendered as PNG with the window applied."""
    image = _slice_facts(ctx, actor, image_id)
    window = resolve_window(image, preset=preset, center=center, width=width)
    try:
        v = View(view) if view else None
    except ValueError:
        raise InvalidInputError(f"unknown view {view!r}; use axial, coronal or sagittal") from None
    try:
        img, _ = render_slice(
            pixels(ctx, image), np.asarray(image.affine), view=v, index=index, window=window
        )
    except IndexError as exc:
        raise InvalidInputError(str(exc)) from None
    ctx.image_reads.note(actor, image.id, image.project_id, ImageReadKind.SLICE)
    return encode_png_fast(img)


def thumbnail_png(ctx: Context, actor: Principal, image_id: int) -> bytes:
    image = get_image(ctx, actor, image_id)
    if image.thumbnail_digest is None:
        raise NotFoundError(f"image {image_id} has no thumbnail")
    ctx.image_reads.note(actor, image.id, image.project_id, ImageReadKind.THUMBNAIL)
    return ctx.blobs.read_bytes(image.thumbnail_digest)


def filtered_pixels(ctx: Context, image: Image, spec: ViewFilter) -> np.ndarray:
    """The image's pixels through a view filter, computed once and cached on disk (a
    cache: deleting ``<home>/cache`` is safe)."""
    key = hashlib.sha256(f"{image.pixel_digest}:{spec.cache_key()}".encode()).hexdigest()
    folder = ctx.settings.home / "cache" / "filters"
    path = folder / f"{key}.npy"
    if not path.exists():
        out = apply_view_filter(np.asarray(pixels(ctx, image)), spec)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        with tmp.open("wb") as fh:
            np.save(fh, out, allow_pickle=False)
        os.replace(tmp, path)
    arr: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    return arr


def volume_nifti_stream(
    ctx: Context, actor: Principal, image_id: int, view_filter: ViewFilter | None = None
) -> tuple[int, Iterator[bytes]]:
    """The image (optionally through a view filter) as an uncompressed NIfTI file: its
    size and a chunk iterator.

    The array's C-order bytes are the NIfTI data block, so nothing is copied or
    converted; a browser viewer can load the URL directly.
    """
    image = get_image(ctx, actor, image_id)
    if view_filter is not None:
        arr = filtered_pixels(ctx, image, view_filter)
        if arr.ndim == 4:  # filtered colour: NIfTI RGB needs uint8
            arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    else:
        arr = pixels(ctx, image)
    header = nifti_header_bytes(tuple(arr.shape), arr.dtype, np.asarray(image.affine))
    ctx.image_reads.note(actor, image.id, image.project_id, ImageReadKind.VOLUME)
    flat = arr.reshape(-1).view(np.uint8) if arr.flags.c_contiguous else None
    if flat is None:  # pragma: no cover - stored arrays are C-contiguous
        flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)

    def chunks() -> Iterator[bytes]:
        yield header
        step = 4 * 1024 * 1024
        for start in range(0, flat.size, step):
            yield flat[start : start + step].tobytes()

    return len(header) + flat.size, chunks()


def region_statistics(
    ctx: Context, actor: Principal, image_id: int, mask: np.ndarray
) -> list[tuple[RegionStats, str | None]]:
    """Size and intensity statistics of each label in ``mask`` (with the label's name)."""
    with ctx.db.read() as s:
        image = _image(s, actor, image_id)
        names = {
            lab.value: lab.name
            for lab in s.scalars(select(Label).where(Label.project_id == image.project_id))
            if lab.value is not None
        }
    arr = np.asarray(pixels(ctx, image))
    spacing = np.linalg.norm(np.asarray(image.affine)[:3, :3], axis=0)
    stats = region_stats(arr, mask, [float(x) for x in spacing])
    ctx.image_reads.note(actor, image.id, image.project_id, ImageReadKind.STATS)
    return [(st, names.get(st.value)) for st in stats]


def dicom_header(ctx: Context, actor: Principal, image_id: int) -> list[dict[str, Any]]:
    """The de-identified DICOM header of the image's first instance, as rows of
    ``{tag, keyword, vr, value}`` (sequences nested under ``items``)."""
    with ctx.db.read() as s:
        image = _image(s, actor, image_id)
        digest = s.scalar(
            select(Instance.dicom_digest)
            .where(Instance.image_id == image.id)
            .order_by(Instance.first_plane)
            .limit(1)
        )
    if digest is None:
        return []
    ctx.image_reads.note(actor, image.id, image.project_id, ImageReadKind.DICOM_HEADER)
    ds = pydicom.dcmread(io.BytesIO(ctx.blobs.read_bytes(digest)), stop_before_pixels=True)
    return _rows(ds, depth=0)


def _rows(ds: pydicom.Dataset, depth: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for elem in ds:
        row: dict[str, Any] = {
            "tag": f"({elem.tag.group:04X},{elem.tag.element:04X})",
            "keyword": elem.keyword or "",
            "name": elem.name,
            "vr": elem.VR,
        }
        if elem.VR == "SQ":
            row["items"] = [_rows(item, depth + 1) for item in elem.value[:20]] if depth < 3 else []
        elif elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
            row["value"] = f"<{len(elem.value or b'')} bytes>"
        else:
            text = str(elem.value) if elem.value is not None else ""
            row["value"] = text if len(text) <= 200 else text[:200] + "…"
        rows.append(row)
    return rows
