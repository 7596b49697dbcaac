"""nnU-Net v2 raw dataset export (``DatasetXXX_Name/imagesTr, labelsTr, dataset.json``).

Follows nnU-Net v2's dataset format: one file per input channel named
``<case>_0000<ending>``, labels ``<case><ending>`` on the same grid, with consecutive
integer labels starting at background 0, and ``dataset.json`` with ``channel_names``,
``labels`` (name → value), ``numTraining`` and ``file_ending``.

- Volumes and calibrated greyscale 2D images (CT, MR, X-ray...) are written as
  ``.nii.gz`` (intensities and geometry kept; a 2D image is a one-slice volume).
- Colour and uncalibrated 2D images (photographs, endoscopy, ultrasound screenshots)
  follow nnU-Net's natural-image convention: one ``.png`` per case holding all colour
  channels, ``channel_names`` ``{"0": "R", "1": "G", "2": "B"}``, labels as 8-bit PNG.
- Channel name ``"CT"`` for CT selects nnU-Net's CT normalisation; other modalities are
  named by their DICOM modality code (z-score normalisation).
- Project mask values are remapped to 1..N in ascending value order, over all mask labels
  of the schema (so every case uses the same numbering); the mapping is kept in
  ``dataset.json`` under ``"medlabel"`` with each case's image and revision.
- Only images with a mask become training cases; the others are listed as skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medlabel import __version__
from medlabel.core.errors import ConflictError, InvalidInputError
from medlabel.io.exportitem import (
    ExportItem,
    LabelInfo,
    check_mask_values,
    mask_labels,
    unique_stems,
)
from medlabel.io.nifti import write_nifti

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CASE_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class NnunetExportSummary:
    """What :func:`write_nnunet` wrote."""

    dataset_dir: Path
    cases: int
    file_ending: str
    labels: dict[str, int]
    value_map: dict[int, int]
    skipped: list[str] = field(default_factory=list)


def _case_stem(name: str) -> str:
    return _CASE_UNSAFE.sub("_", name).strip("_")[:100] or "case"


def _is_natural(items: Sequence[ExportItem]) -> bool:
    """PNG when every image is 2D and colour or uncalibrated, in a PNG-able data type."""
    for it in items:
        v = it.volume
        pngable = v.array.dtype == np.uint8 or (v.channels == 1 and v.array.dtype == np.uint16)
        if not (v.is_2d and (v.channels > 1 or not v.geometry_known) and pngable):
            return False
    return True


def _check_items(items: Sequence[ExportItem]) -> None:
    dims = {"2D" if it.volume.is_2d else "3D" for it in items}
    if len(dims) > 1:
        examples = {
            d: next(it.name for it in items if ("2D" if it.volume.is_2d else "3D") == d)
            for d in dims
        }
        raise InvalidInputError(
            "an nnU-Net dataset must be all 2D or all 3D; this export mixes 2D images (e.g. "
            f"{examples['2D']!r}) with 3D volumes (e.g. {examples['3D']!r})"
        )
    channels = {it.volume.channels for it in items}
    if len(channels) > 1:
        raise InvalidInputError(
            "nnU-Net needs the same input channels for every case; images have "
            f"{sorted(channels)} channels"
        )


def _channel_names(items: Sequence[ExportItem], natural: bool) -> dict[str, str]:
    channels = items[0].volume.channels
    if channels > 1:
        if not natural:
            raise InvalidInputError(
                "colour volumes (3D) and colour images deeper than 8 bits cannot be exported to "
                "nnU-Net; convert them to greyscale or 8-bit RGB"
            )
        return {str(i): "RGBA"[i] for i in range(channels)}
    modalities = sorted({it.volume.modality.upper() or "OT" for it in items})
    if len(modalities) > 1:
        raise InvalidInputError(
            f"nnU-Net needs one kind of input channel; images are of modalities {modalities}: "
            "export each modality as its own dataset"
        )
    return {"0": modalities[0]}


def write_nnunet(
    items: Sequence[ExportItem],
    labels: Iterable[LabelInfo],
    out_dir: Path,
    *,
    dataset_id: int,
    dataset_name: str,
) -> NnunetExportSummary:
    """Write an nnU-Net v2 raw dataset ``out_dir/DatasetXXX_<dataset_name>``.

    Parameters
    ----------
    items
        Images with masks of shape ``(planes, rows, columns)``; items without a mask are
        skipped (reported in the summary).
    labels
        The project's labels; all mask labels become nnU-Net labels 1..N.
    out_dir
        The ``nnUNet_raw`` folder (created if needed).
    dataset_id
        1..999 (nnU-Net reserves 1-10 for the Medical Segmentation Decathlon).
    dataset_name
        Letters, digits, ``_`` and ``-``.

    Raises
    ------
    InvalidInputError
        Bad id or name, no image with a mask, mixed 2D/3D, channels or modalities,
        a label named "background", more than 255 labels for PNG, or an unknown mask
        value.
    ConflictError
        The dataset folder exists and is not empty.
    """
    if not 1 <= int(dataset_id) <= 999:
        raise InvalidInputError(f"nnU-Net dataset id must be 1..999; got {dataset_id}")
    if not _NAME.match(dataset_name):
        raise InvalidInputError(
            f"nnU-Net dataset name {dataset_name!r} must be letters, digits, '_' or '-' "
            "(at most 64, no spaces)"
        )
    cases = [it for it in items if it.mask is not None]
    skipped = [it.name for it in items if it.mask is None]
    if not cases:
        raise InvalidInputError(
            "none of the selected images has a mask; nnU-Net needs labelled cases"
        )
    _check_items(cases)
    natural = _is_natural(cases)
    channel_names = _channel_names(cases, natural)
    masks = mask_labels(labels)
    if any(lab.name == "background" for lab in masks):
        raise InvalidInputError("a mask label is named 'background', which nnU-Net reserves for 0")
    value_map = {int(lab.value or 0): i for i, lab in enumerate(masks, start=1)}
    if natural and len(masks) > 255:
        raise InvalidInputError(
            f"PNG labels hold at most 255 classes; the project has {len(masks)}"
        )
    by_value = {int(lab.value or 0): lab for lab in masks}
    for it in cases:
        check_mask_values(it, by_value)
    lut = np.zeros(max(value_map, default=0) + 1, dtype=np.uint8 if len(masks) < 256 else np.uint16)
    for value, new in value_map.items():
        lut[value] = new

    dataset_dir = Path(out_dir) / f"Dataset{int(dataset_id):03d}_{dataset_name}"
    if dataset_dir.exists() and any(dataset_dir.iterdir()):
        raise ConflictError(f"{dataset_dir} exists and is not empty; choose another id or name")
    images_dir, labels_dir = dataset_dir / "imagesTr", dataset_dir / "labelsTr"
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(exist_ok=True)
    ending = ".png" if natural else ".nii.gz"
    stems = unique_stems(cases, sanitize=_case_stem)
    provenance: dict[str, Any] = {}
    for it in cases:
        case = stems[it.image_id]
        assert it.mask is not None
        label = lut[it.mask]
        if natural:
            Image.fromarray(np.squeeze(it.volume.array[0])).save(images_dir / f"{case}_0000.png")
            Image.fromarray(label[0].astype(np.uint8)).save(labels_dir / f"{case}.png")
        else:
            write_nifti(it.volume, images_dir / f"{case}_0000.nii.gz")
            write_nifti(it.volume.with_array(label), labels_dir / f"{case}.nii.gz")
        provenance[case] = {
            "image_id": it.image_id,
            "name": it.name,
            "annotation_id": it.annotation_id,
            "revision_id": it.revision_id,
            "author": it.author,
            "source": it.source,
        }
    nn_labels = {"background": 0, **{lab.name: value_map[int(lab.value or 0)] for lab in masks}}
    doc = {
        "channel_names": channel_names,
        "labels": nn_labels,
        "numTraining": len(cases),
        "file_ending": ending,
        "name": dataset_name,
        "description": f"exported by medlabel {__version__}",
        "medlabel": {
            "mask_values": {lab.name: lab.value for lab in masks},
            "cases": provenance,
        },
    }
    (dataset_dir / "dataset.json").write_text(
        json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return NnunetExportSummary(dataset_dir, len(cases), ending, nn_labels, value_map, skipped)
