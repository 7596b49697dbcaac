"""DICOM Segmentation (SEG) export and import, built on highdicom.

Export writes a **BINARY** segmentation: one bit-packed frame per (segment, source plane)
that holds any pixel. BINARY has been in the standard since 2008 and every SEG reader
(3D Slicer/dcmqi, OHIF, ITK, highdicom, ...) understands it, whereas the LABELMAP type
(2024) is not yet widely read. Because the source is a labelmap, segments never overlap.

Only labels present in the mask become segments (numbered 1..K in ascending mask value),
so every segment has frames; readers match segments by label and code, not by number.

Import returns, for every referenced source frame ``(SOP Instance UID, 0-based frame)``,
a 2D array of segment numbers, so the caller can place it on a stored image through the
image's own source instances (:attr:`~medlabel.io.exportitem.ExportItem.planes`) with
:func:`seg_to_labelmap`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes
from pydicom.uid import SegmentationStorage

from medlabel import __version__
from medlabel.annotation.enums import LabelKind
from medlabel.core.errors import InvalidInputError, TooLargeError, UnsupportedFormatError
from medlabel.io.exportitem import CodeTriple, ExportItem, LabelInfo, check_mask_values

#: Generic segmented property category and type when a label has no code.
TISSUE: CodeTriple = ("85756007", "SCT", "Tissue")
_MANUAL_SOURCES = {"", "human", "import"}
#: Segmentation Storage and Label Map Segmentation Storage (2024).
_SEG_CLASSES = {SegmentationStorage, "1.2.840.10008.5.1.4.1.1.66.7"}


@dataclass(frozen=True)
class SegmentInfo:
    """One segment of a DICOM SEG: number, label, codes and display colour."""

    number: int
    label: str
    category: CodeTriple | None
    property_type: CodeTriple | None
    algorithm_type: str
    color: str | None = None


@dataclass(frozen=True, eq=False)
class SegImport:
    """What a DICOM SEG holds, keyed by the source frames it references.

    ``frames`` maps ``(referenced SOP Instance UID, 0-based frame index)`` to a
    ``(rows, columns)`` uint16 array of segment numbers (0 = none); frames without any
    segment are left out.
    """

    sop_instance_uid: str
    series_instance_uid: str
    segmentation_type: str
    rows: int
    columns: int
    referenced_series_uids: tuple[str, ...]
    referenced_instance_uids: tuple[str, ...]
    segments: tuple[SegmentInfo, ...]
    frames: Mapping[tuple[str, int], np.ndarray] = field(default_factory=dict)

    def segment(self, number: int) -> SegmentInfo:
        """The segment with this number."""
        for seg in self.segments:
            if seg.number == number:
                return seg
        raise KeyError(number)


# export -----------------------------------------------------------------------------------
def _concept(triple: CodeTriple) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=triple[0], scheme_designator=triple[1], meaning=triple[2])


def _algorithm(source: str, family: Any) -> tuple[str, hd.AlgorithmIdentificationSequence | None]:
    """MANUAL for people (and imports); SEMIAUTOMATIC for an engine's proposal that a
    person accepted. ``engine:NAME@VERSION`` gives the algorithm's name and version."""
    if source.strip().lower() in _MANUAL_SOURCES:
        return "MANUAL", None
    name = source.removeprefix("engine:")
    name, _, version = name.partition("@")
    ident = hd.AlgorithmIdentificationSequence(
        name=(name.strip() or "engine")[:64], family=family, version=(version or "unknown")[:64]
    )
    return "SEMIAUTOMATIC", ident


def _n_frames(ds: pydicom.Dataset) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _source_layout(
    item: ExportItem, seg_numbers: np.ndarray
) -> tuple[list[pydicom.Dataset], np.ndarray]:
    """Source images and the SEG pixel array in their order (see highdicom's rules:
    one plane per single-frame source image, or all frames of one multi-frame image)."""
    datasets = list(item.source_datasets or [])
    if not datasets:
        raise InvalidInputError(
            f"image {item.name!r} was not imported from DICOM, so a DICOM SEG cannot reference "
            "its source; export it as NIfTI or nnU-Net instead"
        )
    planes = list(item.planes or [])
    if not planes:
        raise InvalidInputError(
            f"image {item.name!r}: {len(datasets)} source DICOM instances for "
            f"{item.volume.spatial_shape[0]} planes and no plane mapping; cannot tell which "
            "instance holds which plane"
        )
    if len(set(planes)) != len(planes):
        raise InvalidInputError(f"image {item.name!r}: two planes map to the same source frame")
    _, rows, cols = item.volume.spatial_shape
    for p, (idx, frame) in enumerate(planes):
        if not 0 <= idx < len(datasets):
            raise InvalidInputError(
                f"image {item.name!r}: plane {p} refers to missing instance {idx}"
            )
        ds = datasets[idx]
        if not 0 <= frame < _n_frames(ds):
            raise InvalidInputError(
                f"image {item.name!r}: plane {p} refers to frame {frame} of an instance with "
                f"{_n_frames(ds)} frame(s)"
            )
        if (ds.get("Rows"), ds.get("Columns")) != (rows, cols):
            raise InvalidInputError(
                f"image {item.name!r}: source instance {idx} is {ds.get('Rows')}x"
                f"{ds.get('Columns')} pixels but the mask is {rows}x{cols}"
            )
    used = sorted({idx for idx, _ in planes})
    if all(_n_frames(datasets[i]) == 1 for i in used):
        return [datasets[idx] for idx, _ in planes], seg_numbers
    if len(used) == 1:
        ds = datasets[used[0]]
        pixels = np.zeros((_n_frames(ds), rows, cols), dtype=seg_numbers.dtype)
        for p, (_, frame) in enumerate(planes):
            pixels[frame] = seg_numbers[p]
        return [ds], pixels
    raise InvalidInputError(
        f"image {item.name!r}: planes come from several instances, at least one of them "
        "multi-frame; DICOM SEG export supports one multi-frame instance or single-frame "
        "instances"
    )


def write_dicom_seg(
    item: ExportItem,
    labels: Iterable[LabelInfo],
    path: Path,
    *,
    series_number: int = 9001,
    series_description: str = "medlabel segmentation",
    manufacturer: str = "medlabel",
    software_version: str = __version__,
    content_label: str = "MEDLABEL",
    algorithm_family: Any = codes.cid7162.ArtificialIntelligence,
) -> Path:
    """Write ``item.mask`` as a BINARY DICOM SEG referencing the item's source instances.

    Parameters
    ----------
    item
        An image imported from DICOM: ``source_datasets`` and ``planes`` map each plane
        of the ``(planes, rows, columns)`` mask to a source instance (and frame).
    labels
        The project's labels; mask labels give segment label, codes and colour (as the
        CIELab recommended display value).
    path
        File to write.
    series_number, series_description, manufacturer, software_version, content_label
        Attributes of the new SEG series (``content_label`` is a DICOM CS: upper case,
        at most 16 characters).
    algorithm_family
        Algorithm family code for engine-made revisions (SEMIAUTOMATIC segments).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InvalidInputError
        No source DICOM instances, no or empty mask, mask values without a label, a
        plane mapping that does not fit the instances, or source instances highdicom
        cannot derive a SEG from (the message carries highdicom's reason).
    """
    if item.mask is None:
        raise InvalidInputError(f"image {item.name!r} has no mask to export as DICOM SEG")
    by_value = {
        lab.value: lab for lab in labels if lab.value is not None and lab.kind == LabelKind.MASK
    }
    present = check_mask_values(item, by_value)
    if not present:
        raise InvalidInputError(f"image {item.name!r}: the mask is empty; nothing to export")
    lut = np.zeros(max(present) + 1, dtype=np.uint8 if len(present) < 256 else np.uint16)
    lut[present] = np.arange(1, len(present) + 1)
    seg_numbers = lut[item.mask]
    sources, pixels = _source_layout(item, seg_numbers)
    algorithm_type, algorithm = _algorithm(item.source, algorithm_family)
    descriptions = []
    for number, value in enumerate(present, start=1):
        lab = by_value[value]
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=lab.name[:64],
                segmented_property_category=_concept(lab.category or TISSUE),
                segmented_property_type=_concept(lab.code or TISSUE),
                algorithm_type=algorithm_type,
                algorithm_identification=algorithm,
                tracking_uid=hd.UID(),
                tracking_id=f"{lab.name[:48]} {item.annotation_id or ''}".strip(),
                display_color=hd.color.CIELabColor.from_string(lab.color),
            )
        )
    description = f"medlabel annotation {item.annotation_id} revision {item.revision_id}"
    creator = None
    if item.author:  # a user name as a single-component DICOM person name ("alice^")
        creator = item.author.replace("^", " ").replace("\\", " ").replace("=", " ")[:63] + "^"
    try:
        with warnings.catch_warnings():
            # pseudonymised patient names ("ANON-…") are single-component on purpose
            warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
            seg = hd.seg.Segmentation(
                source_images=sources,
                pixel_array=pixels,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions,
                series_instance_uid=hd.UID(),
                series_number=series_number,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer=manufacturer,
                manufacturer_model_name="medlabel",
                software_versions=software_version,
                device_serial_number="none",
                content_description=description[:64],
                content_label=content_label,
                content_creator_name=creator,
                series_description=series_description[:64],
                omit_empty_frames=True,
            )
        seg.save_as(path)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise InvalidInputError(
            f"image {item.name!r}: cannot build a DICOM SEG from its source instances: {exc}"
        ) from exc
    return path


# import -----------------------------------------------------------------------------------
def _triple(seq: Any) -> CodeTriple | None:
    if not seq:
        return None
    c = seq[0]
    return (
        str(c.get("CodeValue", c.get("LongCodeValue", ""))),
        str(c.get("CodingSchemeDesignator", "")),
        str(c.get("CodeMeaning", "")),
    )


def _segment_info(item: pydicom.Dataset) -> SegmentInfo:
    color = None
    if "RecommendedDisplayCIELabValue" in item:
        r, g, b = hd.color.CIELabColor.from_dicom_value(item.RecommendedDisplayCIELabValue).to_rgb()
        color = f"#{r:02x}{g:02x}{b:02x}"
    return SegmentInfo(
        number=int(item.SegmentNumber),
        label=str(item.get("SegmentLabel", f"Segment {item.SegmentNumber}")),
        category=_triple(item.get("SegmentedPropertyCategoryCodeSequence")),
        property_type=_triple(item.get("SegmentedPropertyTypeCodeSequence")),
        algorithm_type=str(item.get("SegmentAlgorithmType", "")),
        color=color,
    )


def _frame_references(ds: pydicom.Dataset) -> tuple[list[str], dict[str, list[int]]]:
    """Single-frame source UIDs, and multi-frame source UIDs with their 1-based frames."""
    shared = (
        ds.SharedFunctionalGroupsSequence[0] if ds.get("SharedFunctionalGroupsSequence") else None
    )
    single: dict[str, None] = {}
    multi: dict[str, set[int]] = {}
    for group in ds.get("PerFrameFunctionalGroupsSequence", []):
        holder = group if "DerivationImageSequence" in group else shared
        for der in (holder or pydicom.Dataset()).get("DerivationImageSequence", []):
            for src in der.get("SourceImageSequence", []):
                uid = str(src.ReferencedSOPInstanceUID)
                numbers = src.get("ReferencedFrameNumber")
                if numbers is None:
                    single[uid] = None
                else:
                    numbers = numbers if isinstance(numbers, Sequence) else [numbers]
                    multi.setdefault(uid, set()).update(int(n) for n in numbers)
    return list(single), {uid: sorted(n) for uid, n in multi.items()}


def _pixels(
    seg: hd.seg.Segmentation, get: Callable[..., np.ndarray], numbers: list[int]
) -> np.ndarray:
    """(n, rows, columns) uint16 segment numbers; overlaps: the highest number wins."""
    if seg.segmentation_type != hd.seg.SegmentationTypeValues.FRACTIONAL:
        out = get(combine_segments=True, skip_overlap_checks=True)
        return np.asarray(out, dtype=np.uint16)
    result: np.ndarray | None = None
    for number in numbers:
        prob = np.asarray(get(segment_numbers=[number]))[..., 0]
        if result is None:
            result = np.zeros(prob.shape, dtype=np.uint16)
        result[prob >= 0.5] = number
    assert result is not None
    return result


def read_dicom_seg(
    source: Path | bytes, *, name: str | None = None, max_voxels: int = 1_000_000_000
) -> SegImport:
    """Read a DICOM SEG (BINARY, FRACTIONAL or LABELMAP) file or its bytes.

    Fractional segments are thresholded at 0.5; where segments overlap, the one with the
    highest segment number is kept.

    Raises
    ------
    InvalidInputError
        Not a readable DICOM file, or a SEG whose frames reference no source instance.
    UnsupportedFormatError
        A DICOM file that is not a Segmentation.
    TooLargeError
        More than ``max_voxels`` pixels over all frames.
    """
    label = name or (source.name if isinstance(source, Path) else "DICOM SEG data")
    try:
        ds = pydicom.dcmread(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as exc:
        raise InvalidInputError(f"{label}: not a readable DICOM file ({exc})") from None
    if ds.get("SOPClassUID") not in _SEG_CLASSES:
        kind = getattr(ds.get("SOPClassUID"), "name", None) or "no SOP class"
        raise UnsupportedFormatError(f"{label}: not a DICOM Segmentation ({kind})")
    try:
        rows, cols, n = int(ds.Rows), int(ds.Columns), int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{label}: SEG lacks Rows/Columns/NumberOfFrames ({exc})") from None
    if rows * cols * n > max_voxels:
        raise TooLargeError(
            f"{label}: SEG has {n} frames of {rows}x{cols}, above {max_voxels:.3g} voxels"
        )
    single, multi = _frame_references(ds)
    if not single and not multi:
        raise InvalidInputError(
            f"{label}: the SEG's frames reference no source image instances, so it cannot be "
            "placed on an image"
        )
    frames: dict[tuple[str, int], np.ndarray] = {}
    try:
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
        segments = tuple(_segment_info(s) for s in ds.SegmentSequence)
        numbers = [s.number for s in segments]
        opts: dict[str, Any] = {
            "ignore_spatial_locations": True,
            "assert_missing_frames_are_empty": True,
        }
        if single:
            get = partial(seg.get_pixels_by_source_instance, single, **opts)
            arr = _pixels(seg, get, numbers)
            frames.update({(u, 0): a for u, a in zip(single, arr, strict=True) if a.any()})
        for uid, fnums in multi.items():
            get = partial(seg.get_pixels_by_source_frame, uid, fnums, **opts)
            arr = _pixels(seg, get, numbers)
            frames.update({(uid, f - 1): a for f, a in zip(fnums, arr, strict=True) if a.any()})
    except (ValueError, TypeError, AttributeError, KeyError, RuntimeError, IndexError) as exc:
        raise InvalidInputError(f"{label}: the SEG could not be decoded ({exc})") from None
    series = tuple(str(s.SeriesInstanceUID) for s in ds.get("ReferencedSeriesSequence", []))
    instances = tuple(
        str(i.ReferencedSOPInstanceUID)
        for s in ds.get("ReferencedSeriesSequence", [])
        for i in s.get("ReferencedInstanceSequence", [])
    )
    return SegImport(
        sop_instance_uid=str(ds.SOPInstanceUID),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        segmentation_type=str(ds.get("SegmentationType", "")),
        rows=rows,
        columns=cols,
        referenced_series_uids=series,
        referenced_instance_uids=instances or tuple(single) + tuple(multi),
        segments=segments,
        frames=frames,
    )


def seg_to_labelmap(
    seg: SegImport,
    planes: Sequence[tuple[str, int]],
    shape: tuple[int, int, int],
    label_values: Mapping[str, int],
) -> np.ndarray:
    """Place an imported SEG on an image whose planes come from known source frames.

    Parameters
    ----------
    seg
        From :func:`read_dicom_seg`.
    planes
        For each plane of the image: ``(SOP Instance UID, 0-based frame index)``.
    shape
        The image's ``(planes, rows, columns)``.
    label_values
        Segment label → project mask value.

    Returns
    -------
    np.ndarray
        uint16 labelmap of ``shape`` with project mask values.

    Raises
    ------
    InvalidInputError
        Size mismatch, a segment label missing from ``label_values``, or a segmented
        frame that belongs to none of the image's planes.
    """
    if len(planes) != shape[0]:
        raise ValueError(f"{len(planes)} plane references for shape {tuple(shape)}")
    if (seg.rows, seg.columns) != tuple(shape[1:]):
        raise InvalidInputError(
            f"the SEG's frames are {seg.rows}x{seg.columns} pixels but the image's planes are "
            f"{shape[1]}x{shape[2]}"
        )
    used = sorted({int(v) for plane in seg.frames.values() for v in np.unique(plane) if v})
    lut = np.zeros(max(used, default=0) + 1, dtype=np.uint16)
    for number in used:
        seg_label = seg.segment(number).label
        if seg_label not in label_values:
            known = ", ".join(sorted(label_values)) or "none"
            raise InvalidInputError(
                f"SEG segment {number} ({seg_label!r}) matches no mask label; map it to one of: "
                f"{known}"
            )
        lut[number] = label_values[seg_label]
    index = {(uid, int(f)): p for p, (uid, f) in enumerate(planes)}
    unmatched = [key for key in seg.frames if key not in index]
    if unmatched:
        raise InvalidInputError(
            f"the SEG segments {len(unmatched)} source frame(s) that are not part of this image "
            f"(e.g. instance {unmatched[0][0]} frame {unmatched[0][1]}); import it on the "
            "series it references"
        )
    out = np.zeros(shape, dtype=np.uint16)
    for key, plane in seg.frames.items():
        out[index[key]] = lut[plane]
    return out
