"""Training data from a project's reference labels, for each trainable task.

The reference of an image is its approved consensus, else its approved readings
(:func:`medlabel.services.review.reference_revisions`). From it:

- **segmentation** (``seg``): the reference mask, keeping the chosen mask labels (other
  values become background);
- **classification** (``cls``): the one chosen classification label the reference
  gives the image (a single-label classifier: images tagged with two of the chosen
  classes are left out and named);
- **detection** (``det``): the reference's boxes of the chosen box labels, as pixel
  corners of a 2D image.

With several approved readers and no consensus, the first reader whose revision has
something of the task is used. Each example records its revision id, which the model
registry keeps as the model's training data. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from medlabel.annotation.enums import LabelKind
from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep.model_dir import TaskKind
from medlabel.engines.deep.tasks import Example, TrainingSet
from medlabel.imaging.volume import Volume
from medlabel.io.arrays import decode_array
from medlabel.services.context import Context
from medlabel.services.images import pixels
from medlabel.services.review import reference_revisions
from medlabel.storage.db.models import Image, Label, Revision

Progress = Callable[[int, int], None]
Note = Callable[[str], None]

_KIND = {
    TaskKind.SEG: LabelKind.MASK,
    TaskKind.CLS: LabelKind.CLASSIFICATION,
    TaskKind.DET: LabelKind.BOX,
}
_WHAT = {TaskKind.SEG: "masks", TaskKind.CLS: "classes", TaskKind.DET: "boxes"}
#: names listed in a message before "and N more"
_SHOWN = 5


@dataclass(frozen=True)
class ReferenceItem:
    """An image whose reference has something of a task, as found (before pixels are read)."""

    image_id: int
    revision_id: int
    #: the reference mask (segmentation)
    mask_digest: str | None = None
    #: the revision's content: boxes, classes (classification, detection)
    content: dict[str, Any] | None = None


def task_labels(
    s: Session, project_id: int, task: TaskKind, names: Sequence[str] = ()
) -> dict[int, str]:
    """The labels a task learns: mask values → names (``seg``), or class index → name
    (``cls``/``det``, in the schema's order). All labels of the task's kind, or those named.

    Raises
    ------
    InvalidInputError
        A name that is not such a label, no label of the kind, or (classification)
        fewer than two classes.
    """
    kind = _KIND[task]
    rows = list(
        s.scalars(
            select(Label)
            .where(Label.project_id == project_id, Label.kind == kind.value)
            .order_by(Label.id)
        )
    )
    if task is TaskKind.SEG:
        rows = [r for r in rows if r.value is not None]
    if not rows:
        raise InvalidInputError(
            f"the project has no {kind.value} label; add one before training a {task.value} model"
        )
    known = [r.name for r in rows]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInputError(
            f"unknown {kind.value} label(s) {unknown}; this project's {kind.value} labels: {known}"
        )
    if task is TaskKind.SEG:
        value = {r.name: int(r.value) for r in rows if r.value is not None}
        return {value[n]: n for n in (list(names) or sorted(value))}
    chosen = [r for r in rows if not names or r.name in names]
    if task is TaskKind.CLS and len(chosen) < 2:
        raise InvalidInputError(
            f"a classifier needs at least two classification labels; chosen: "
            f"{[r.name for r in chosen]}"
        )
    return {i: r.name for i, r in enumerate(chosen)}


def _has(task: TaskKind, rev: Revision, names: set[str]) -> bool:
    if task is TaskKind.SEG:
        return rev.mask_digest is not None
    content = rev.content or {}
    if task is TaskKind.CLS:
        return any(c in names for c in content.get("classes", []))
    return any(b.get("label") in names for b in content.get("boxes", []))


def reference_items(
    s: Session, project_id: int, task: TaskKind = TaskKind.SEG, names: Sequence[str] = ()
) -> list[ReferenceItem]:
    """Images of the project whose reference has a mask (``seg``), one of ``names``
    as a class (``cls``) or a box of ``names`` (``det``), in image order (no permission
    check)."""
    wanted = set(names)
    out: list[ReferenceItem] = []
    for image_id in s.scalars(
        select(Image.id).where(Image.project_id == project_id).order_by(Image.id)
    ):
        ref = reference_revisions(s, image_id)
        rev = next((r for r in ref.revisions if _has(task, r, wanted)), None)
        if rev is not None:
            out.append(ReferenceItem(int(image_id), rev.id, rev.mask_digest, dict(rev.content)))
    return out


def image_volume(ctx: Context, image: Image) -> Volume:
    """The stored image as a :class:`Volume` with its geometry."""
    return Volume(
        pixels(ctx, image),
        np.asarray(image.affine),
        modality=image.modality,
        geometry_known=image.geometry_known,
    )


def _listed(names: Sequence[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _mask_target(ctx: Context, item: ReferenceItem, keep: np.ndarray) -> np.ndarray | None:
    assert item.mask_digest is not None
    mask = keep[np.asarray(decode_array(ctx.blobs.read_bytes(item.mask_digest))).astype(np.int64)]
    return mask if mask.any() else None


def _class_target(item: ReferenceItem, code: dict[str, int]) -> int | list[str]:
    """The class index, or the chosen classes found when there are several."""
    found = [c for c in (item.content or {}).get("classes", []) if c in code]
    return code[found[0]] if len(found) == 1 else found


def _box_target(item: ReferenceItem, code: dict[str, int]) -> Any:
    """Pixel corners ``[x0, y0, x1, y1]`` of the reference's boxes (voxel centres are
    integers, so a voxel box ``start``/``end`` of a 2D image spans ``start + 0.5`` ..
    ``end + 0.5`` in pixels) and their class indices."""
    from medlabel.engines.deep.det_data import BoxTarget

    boxes, classes = [], []
    for b in (item.content or {}).get("boxes", []):
        if b.get("label") in code and b.get("start") and b.get("end"):
            (_, r0, c0), (_, r1, c1) = b["start"], b["end"]
            boxes.append([c0 + 0.5, r0 + 0.5, c1 + 0.5, r1 + 0.5])
            classes.append(code[b["label"]])
    return BoxTarget(np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(classes, np.int64))


def training_set(
    ctx: Context,
    project_id: int,
    task: TaskKind | str = TaskKind.SEG,
    labels: Sequence[str] = (),
    *,
    progress: Progress | None = None,
    note: Note | None = None,
) -> TrainingSet:
    """The project's reference labels as the training set of ``task``.

    Only the chosen labels are used (default: every label of the task's kind). A
    network takes one kind of input: for segmentation, when the project mixes 2D and 3D
    images or greyscale and colour, the largest group is kept; classification and
    detection take 2D images only. What is left out is named through ``note``. Example
    names are ``image-<id>`` and each records its revision id.

    Raises
    ------
    InvalidInputError
        Unknown labels, too few labelled images (two; classification: two classes).
    """
    task = TaskKind(task)
    with ctx.db.read() as s:
        names = task_labels(s, project_id, task, labels)
        items = reference_items(s, project_id, task, list(names.values()))
        images = {i.id: i for i in s.scalars(select(Image).where(Image.project_id == project_id))}
    code = {name: value for value, name in names.items()}
    keep = np.zeros(65536, np.uint8)
    for v in names if task is TaskKind.SEG else ():
        keep[v] = v
    examples: list[Example] = []
    several: list[str] = []
    for n, item in enumerate(items, 1):
        name = f"image-{item.image_id}"
        target: Any
        if task is TaskKind.SEG:
            target = _mask_target(ctx, item, keep)
        elif task is TaskKind.CLS:
            target = _class_target(item, code)
            if isinstance(target, list):
                several.append(f"{name} ({', '.join(target)})")
                target = None
        else:
            target = _box_target(item, code)
        if target is not None:
            vol = image_volume(ctx, images[item.image_id])
            examples.append(Example(name, vol, target, revision=str(item.revision_id)))
        if progress is not None:
            progress(n, len(items))
    if several and note is not None:
        note(f"left out, tagged with more than one of the classes: {_listed(several)}")
    examples = _one_input_kind(task, examples, note)
    _check_enough(task, examples, names)
    return TrainingSet(
        task,
        examples,
        {0: "background", **names} if task is TaskKind.SEG else names,
        source=f"project:{project_id}",
    )


def _one_input_kind(task: TaskKind, examples: list[Example], note: Note | None) -> list[Example]:
    """Keep the examples one network can take (see :func:`training_set`)."""
    if task is not TaskKind.SEG:
        flat = [e for e in examples if e.image.is_2d]
        left = [e.name for e in examples if not e.image.is_2d]
        if left and note is not None:
            note(f"{task.value} models take 2D images; left out 3D: {_listed(left)}")
        return flat
    groups: dict[tuple[bool, int], list[Example]] = {}
    for e in examples:
        groups.setdefault((e.image.is_2d, e.image.channels), []).append(e)
    if len(groups) <= 1:
        return examples
    (is_2d, channels), kept = max(groups.items(), key=lambda kv: len(kv[1]))
    left = [e.name for g in groups.values() for e in g if e not in kept]
    if note is not None:
        kind = f"{'2D' if is_2d else '3D'} {'colour' if channels > 1 else 'greyscale'}"
        note(f"training on the {len(kept)} {kind} image(s); left out: {_listed(left)}")
    return kept


def _check_enough(task: TaskKind, examples: Sequence[Example], names: dict[int, str]) -> None:
    if len(examples) < 2:
        raise InvalidInputError(
            f"training needs at least 2 images whose reference (approved labels) has "
            f"{_WHAT[task]} of {', '.join(names.values())}; this project has {len(examples)}"
        )
    if task is TaskKind.CLS:
        present = sorted({names[int(e.target)] for e in examples})
        if len(present) < 2:
            raise InvalidInputError(
                f"a classifier needs approved examples of at least two classes; the "
                f"approved labels only have {present}"
            )


def check_trainable(
    ctx: Context, project_id: int, task: TaskKind | str = TaskKind.SEG, labels: Sequence[str] = ()
) -> int:
    """How many images have a reference with labels of the task; refuses fewer than two
    (cheap: pixels and masks are not read)."""
    task = TaskKind(task)
    with ctx.db.read() as s:
        names = task_labels(s, project_id, task, labels)
        items = reference_items(s, project_id, task, list(names.values()))
    if len(items) < 2:
        raise InvalidInputError(
            f"training needs at least 2 images with approved {_WHAT[task]} "
            f"({', '.join(names.values())}); this project has {len(items)}: approve more "
            "annotations first"
        )
    return len(items)
