"""Importing existing annotations: NIfTI label masks, DICOM SEG and COCO files.

Each imported annotation becomes a revision (source ``import``) of the acting user's
annotation of the image it belongs to. Files are matched to images:

* NIfTI: an explicit image, else by file name (``case_01.nii.gz``, also with a
  ``_seg``/``_mask``/``_label(s)`` suffix, matches image ``case_01``); values must be the
  project's mask values; the grid must be the image's up to axis order and direction.
* DICOM SEG: by the source instances its frames reference — either the stored
  (de-identified) UIDs, or original UIDs, which are mapped with the project's key;
  segments map to mask labels by name or code.
* COCO: by image file name; categories map to labels by name.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
from sqlalchemy import select

from medlabel.annotation.content import AnnotationContent, normalize_content
from medlabel.annotation.enums import LabelKind, RevisionSource
from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.imaging.reorient import align_to_grid
from medlabel.io.coco import read_coco
from medlabel.io.exportitem import safe_stem
from medlabel.io.nifti import read_nifti
from medlabel.io.seg import read_dicom_seg, seg_to_labelmap
from medlabel.io.sniff import FileKind, sniff
from medlabel.security.deid import Deidentifier, DeidOptions
from medlabel.security.roles import ProjectRole
from medlabel.services import annotations as ann_svc
from medlabel.services.access import Principal, require_project
from medlabel.services.context import Context
from medlabel.storage.db.models import Annotation, Image, Label, Project

log = logging.getLogger(__name__)

_SUFFIX = re.compile(r"(?i)[_-](seg|mask|masks|label|labels|gt)$")


class AnnotationFormat(StrEnum):
    AUTO = "auto"
    NIFTI = "nifti"
    DICOM_SEG = "dicom-seg"
    COCO = "coco"


@dataclass
class ImportedAnnotation:
    image_id: int
    image_name: str
    annotation_id: int
    revision_id: int


def _detect(path: Path) -> AnnotationFormat:
    kind = sniff(path)
    if kind == FileKind.NIFTI:
        return AnnotationFormat.NIFTI
    if kind == FileKind.DICOM:
        return AnnotationFormat.DICOM_SEG
    if path.suffix.lower() == ".json":
        return AnnotationFormat.COCO
    raise InvalidInputError(
        f"{path.name}: cannot tell the annotation format; give one of nifti, dicom-seg, coco"
    )


def _images(ctx: Context, project_id: int) -> list[Image]:
    with ctx.db.read() as s:
        return list(s.scalars(select(Image).where(Image.project_id == project_id)))


def _match_by_name(images: list[Image], file_name: str) -> Image:
    stem = Path(file_name).name
    for ext in (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".json"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    candidates = [stem, _SUFFIX.sub("", stem)]
    for cand in candidates:
        for image in images:
            if cand in (image.name, safe_stem(image.name), Path(image.name).name):
                return image
    raise InvalidInputError(
        f"{file_name}: no image of this project is named {candidates[-1]!r}; "
        "name the image explicitly"
    )


def _existing(ctx: Context, actor: Principal, image_id: int) -> tuple[int | None, int | None]:
    with ctx.db.read() as s:
        ann = s.scalar(
            select(Annotation).where(
                Annotation.image_id == image_id, Annotation.owner_id == actor.id
            )
        )
        return (ann.id, ann.version) if ann else (None, None)


def _save(
    ctx: Context,
    actor: Principal,
    image: Image,
    content: AnnotationContent,
    mask: np.ndarray | None,
    message: str,
) -> ImportedAnnotation:
    ann_id, version = _existing(ctx, actor, image.id)
    view = ann_svc.save_annotation(
        ctx,
        actor,
        image.id,
        content=content,
        mask=mask if mask is not None else ann_svc.KEEP_MASK,
        annotation_id=ann_id,
        base_version=version,
        message=message,
        source=RevisionSource.IMPORT,
    )
    assert view.head is not None
    return ImportedAnnotation(image.id, image.name, view.annotation.id, view.head.id)


def import_annotations(
    ctx: Context,
    actor: Principal,
    project_id: int,
    path: Path,
    *,
    fmt: AnnotationFormat | str = AnnotationFormat.AUTO,
    image_id: int | None = None,
) -> list[ImportedAnnotation]:
    """Import one annotation file into a project as revisions of ``actor``'s annotations.

    Raises
    ------
    InvalidInputError
        Unreadable file, no matching image, unknown labels or a grid mismatch — the
        message says which; nothing is stored for the file.
    """
    try:
        fmt = AnnotationFormat(fmt)
    except ValueError:
        raise InvalidInputError(
            f"unknown annotation format {fmt!r}; use one of {[f.value for f in AnnotationFormat]}"
        ) from None
    with ctx.db.read() as s:
        project = require_project(s, actor, project_id, ProjectRole.ANNOTATOR)
        labels = list(s.scalars(select(Label).where(Label.project_id == project_id)))
    if fmt == AnnotationFormat.AUTO:
        fmt = _detect(path)
    images = _images(ctx, project_id)
    if image_id is not None:
        images = [i for i in images if i.id == image_id]
        if not images:
            raise NotFoundError(f"image {image_id} is not in project {project.name!r}")
    if fmt == AnnotationFormat.NIFTI:
        return [_import_nifti(ctx, actor, images, path, explicit=image_id is not None)]
    if fmt == AnnotationFormat.DICOM_SEG:
        return _import_seg(ctx, actor, project, images, labels, path)
    return _import_coco(ctx, actor, images, labels, path)


def _import_nifti(
    ctx: Context, actor: Principal, images: list[Image], path: Path, *, explicit: bool
) -> ImportedAnnotation:
    image = images[0] if explicit else _match_by_name(images, path.name)
    vol = read_nifti(path, name=path.name, max_voxels=ctx.settings.max_voxels)
    try:
        arr = align_to_grid(vol.array, vol.affine, image.shape, np.asarray(image.affine))
    except ValueError as exc:
        raise InvalidInputError(f"{path.name} does not fit image {image.name!r}: {exc}") from None
    if arr.dtype.kind == "f":
        if not np.all(np.mod(arr, 1) == 0):
            raise InvalidInputError(f"{path.name}: label masks hold whole numbers")
        arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise InvalidInputError(f"{path.name}: mask values must be within 0..65535")
    mask = np.ascontiguousarray(arr, dtype=np.uint16)
    return _save(ctx, actor, image, AnnotationContent(), mask, f"imported from {path.name}")


def _import_seg(
    ctx: Context,
    actor: Principal,
    project: Project,
    images: list[Image],
    labels: list[Label],
    path: Path,
) -> list[ImportedAnnotation]:
    seg = read_dicom_seg(path, name=path.name, max_voxels=ctx.settings.max_voxels)
    deid = Deidentifier(project.deid_secret, DeidOptions.model_validate(project.deid_options))
    refs = set(seg.referenced_instance_uids)
    mapped = {deid.remap_uid(u): u for u in refs}
    by_name = {lab.name.lower(): lab for lab in labels if lab.value is not None}
    by_code = {
        (lab.code_value, lab.code_scheme): lab
        for lab in labels
        if lab.value is not None and lab.code_value
    }
    label_values: dict[str, int] = {}
    planned: list[tuple[Image, np.ndarray]] = []
    for segment in seg.segments:
        lab = by_name.get(segment.label.lower())
        if lab is None and segment.property_type is not None:
            lab = by_code.get((segment.property_type[0], segment.property_type[1]))
        if lab is not None and lab.value is not None:
            label_values[segment.label] = lab.value
    for image in images:
        if not image.plane_sources:
            continue
        uids = {uid for uid, _ in image.plane_sources}
        if uids & refs:  # the SEG references our stored (de-identified) instances
            planes = [(uid, int(f)) for uid, f in image.plane_sources]
        elif uids & set(mapped):  # it references the original instances
            planes = [(mapped[uid], int(f)) for uid, f in image.plane_sources if uid in mapped]
            if len(planes) != len(image.plane_sources):
                continue
        else:
            continue
        shape = (int(image.shape[0]), int(image.shape[1]), int(image.shape[2]))
        planned.append((image, seg_to_labelmap(seg, planes, shape, label_values)))
    out = [
        _save(ctx, actor, image, AnnotationContent(), mask, f"imported from {path.name}")
        for image, mask in planned
    ]
    if not out:
        raise InvalidInputError(
            f"{path.name}: the SEG references none of this project's images (it segments "
            f"{len(refs)} instance(s) of series {', '.join(seg.referenced_series_uids) or '?'}); "
            "import the source images first"
        )
    return out


def _import_coco(
    ctx: Context, actor: Principal, images: list[Image], labels: list[Label], path: Path
) -> list[ImportedAnnotation]:
    entries = read_coco(path, name=path.name)
    kinds = {lab.name: LabelKind(lab.kind) for lab in labels}
    values = {lab.name: lab.value for lab in labels if lab.value is not None}
    planned = []
    for entry in entries:
        image = _match_by_name(images, entry.file_name)
        if image.shape[0] != 1 or image.shape[1:] != [entry.height, entry.width]:
            raise InvalidInputError(
                f"{path.name}: {entry.file_name} is {entry.width}x{entry.height} but image "
                f"{image.name!r} has shape {image.shape}"
            )
        mask = None
        if entry.masks:
            mask = np.zeros((1, entry.height, entry.width), dtype=np.uint16)
            for name, m in entry.masks.items():
                if kinds.get(name) != LabelKind.MASK or name not in values:
                    raise InvalidInputError(
                        f"{path.name}: category {name!r} is not a mask label of this project"
                    )
                mask[0][m] = values[name]
        content = AnnotationContent(
            boxes=entry.boxes, points=entry.points, classes=entry.classes, notes=entry.notes
        )
        try:  # check every entry before storing any, so a bad file stores nothing
            normalize_content(
                content, labels=kinds, shape=image.shape, affine=np.asarray(image.affine)
            )
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path.name}: {entry.file_name}: {exc.message}") from None
        planned.append((image, content, mask))
    return [
        _save(ctx, actor, image, content, mask, f"imported from {path.name}")
        for image, content, mask in planned
    ]
