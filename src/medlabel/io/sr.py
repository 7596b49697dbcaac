"""DICOM SR export: an annotation as a TID 1500 measurement report (Comprehensive 3D SR).

What goes in, one measurement group each:

* every mask label present: its **volume** (mm³) and voxel count, finding type = the
  label's code, the source images holding it (TID 1501, no region: the SEG carries the
  pixels);
* every **box**: a rectangle on its plane as an image region (TID 1410) with its area
  (mm²), or, spanning several planes, one rectangle per plane (TID 1411) with its volume;
* every **point**: a POINT image region on its plane (TID 1410);
* the image-level **classes**: qualitative evaluations "Image classification = <label>"
  (TID 1501; the concept name is private: DICOM has no standard one for this).

Image regions use DICOM's 2D image coordinates (column, row), whose origin is the
top-left corner of the top-left pixel: medlabel's voxel centres at integers become
``+0.5``. Labels without a code get a private code (scheme ``99MEDLABEL``) so the
report stays valid; give labels SNOMED codes for interoperable reports.

The report references the **stored, de-identified** instances (their UIDs), as SEG does.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from medlabel import __version__
from medlabel.annotation.enums import LabelKind
from medlabel.core.errors import InvalidInputError
from medlabel.io.exportitem import CodeTriple, ExportItem, LabelInfo

#: the coding scheme of labels that have no code of their own
PRIVATE_SCHEME = "99MEDLABEL"
#: most planes a multi-plane box is drawn on (one rectangle per plane)
MAX_BOX_PLANES = 512
#: concept name of image-level classes ("Finding" would read back as the group's finding type)
CLASSIFICATION = hd.sr.CodedConcept("CLASS", PRIVATE_SCHEME, "Image classification")
_IMAGING_PROCEDURE = hd.sr.CodedConcept("363679005", "SCT", "Imaging procedure")


def label_code(label: LabelInfo | None, name: str) -> hd.sr.CodedConcept:
    """The label's code, or a stable private one built from its name."""
    triple: CodeTriple | None = label.code if label is not None else None
    if triple is not None:
        return hd.sr.CodedConcept(*triple)
    digest = hashlib.sha1(name.encode()).hexdigest()[:12].upper()
    return hd.sr.CodedConcept(f"L{digest}", PRIVATE_SCHEME, name[:64])


def _spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Spacing (plane, row, column) in mm from a voxel-to-LPS affine."""
    norms = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    return float(norms[0]), float(norms[1]), float(norms[2])


class _Sources:
    """Plane index → source image reference (instance, 1-based frame when multi-frame)."""

    def __init__(self, item: ExportItem) -> None:
        if not item.source_datasets or item.planes is None:
            raise InvalidInputError(
                f"image {item.name!r} was not imported from DICOM: a DICOM SR needs the "
                "source instances to reference"
            )
        self.datasets: Sequence[pydicom.Dataset] = item.source_datasets
        self.planes = list(item.planes)

    def _frame(self, plane: int) -> tuple[pydicom.Dataset, list[int] | None]:
        index, frame = self.planes[plane]
        ds = self.datasets[index]
        multi = int(ds.get("NumberOfFrames", 1) or 1) > 1
        return ds, ([frame + 1] if multi else None)

    def region_source(self, plane: int) -> hd.sr.SourceImageForRegion:
        ds, frames = self._frame(plane)
        return hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=ds.SOPClassUID,
            referenced_sop_instance_uid=ds.SOPInstanceUID,
            referenced_frame_numbers=frames,
        )

    def group_sources(self, planes: Iterable[int]) -> list[hd.sr.SourceImageForMeasurementGroup]:
        out: list[hd.sr.SourceImageForMeasurementGroup] = []
        seen: set[tuple[str, int | None]] = set()
        for p in planes:
            ds, frames = self._frame(p)
            key = (str(ds.SOPInstanceUID), frames[0] if frames else None)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                hd.sr.SourceImageForMeasurementGroup(
                    referenced_sop_class_uid=ds.SOPClassUID,
                    referenced_sop_instance_uid=ds.SOPInstanceUID,
                    referenced_frame_numbers=frames,
                )
            )
        return out


def _tracking(what: str, item: ExportItem) -> hd.sr.TrackingIdentifier:
    text = f"{what} (annotation {item.annotation_id})" if item.annotation_id else what
    return hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=text[:64])


def _plane_range(start: float, end: float, n: int) -> range:
    """Planes whose centres lie inside ``[start, end]`` (voxel centres at integers)."""
    first = max(0, int(np.ceil(start - 1e-6)))
    last = min(n - 1, int(np.floor(end + 1e-6)))
    if last < first:  # a box thinner than a plane: the plane nearest its middle
        first = last = min(n - 1, max(0, round((start + end) / 2)))
    return range(first, last + 1)


def _rectangle(start: Sequence[float], end: Sequence[float]) -> np.ndarray:
    r0, c0 = float(start[1]) + 0.5, float(start[2]) + 0.5
    r1, c1 = float(end[1]) + 0.5, float(end[2]) + 0.5
    return np.array([[c0, r0], [c1, r0], [c1, r1], [c0, r1], [c0, r0]], dtype=np.float32)


def _mask_groups(
    item: ExportItem, by_value: dict[int, LabelInfo], sources: _Sources
) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    if item.mask is None:
        return []
    mask = np.asarray(item.mask)
    dp, dr, dc = _spacing(item.volume.affine)
    voxel_mm3 = dp * dr * dc
    values, counts = np.unique(mask[mask != 0], return_counts=True)
    groups = []
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        lab = by_value.get(int(value))
        name = lab.name if lab else f"label {value}"
        planes = np.flatnonzero(np.any(mask == value, axis=(1, 2))).tolist()
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=_tracking(f"{name} mask", item),
                finding_type=label_code(lab, name),
                measurements=[
                    hd.sr.Measurement(
                        name=codes.SCT.Volume,
                        value=float(count) * voxel_mm3,
                        unit=codes.UCUM.CubicMillimeter,
                    ),
                    hd.sr.Measurement(
                        name=hd.sr.CodedConcept("NVOX", PRIVATE_SCHEME, "Voxel count"),
                        value=float(count),
                        unit=hd.sr.CodedConcept("{voxels}", "UCUM", "voxels"),
                    ),
                ],
                source_images=sources.group_sources(planes),
            )
        )
    return groups


def _box_groups(
    item: ExportItem, by_name: dict[str, LabelInfo], sources: _Sources
) -> list[
    hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
    | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
]:
    n_planes = item.volume.spatial_shape[0]
    dp, dr, dc = _spacing(item.volume.affine)
    out: list[
        hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
        | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
    ] = []
    for i, box in enumerate(item.content.boxes):
        if box.start is None or box.end is None:
            raise InvalidInputError(f"box {i} of image {item.name!r} has no voxel corners")
        planes = _plane_range(box.start[0], box.end[0], n_planes)
        if len(planes) > MAX_BOX_PLANES:
            raise InvalidInputError(
                f"box {i} spans {len(planes)} planes; a DICOM SR box may span at most "
                f"{MAX_BOX_PLANES}"
            )
        rect = _rectangle(box.start, box.end)
        area = (box.end[1] - box.start[1]) * dr * (box.end[2] - box.start[2]) * dc
        lab = by_name.get(box.label)
        tracking = _tracking(f"{box.label} box {i + 1}", item)
        regions = [
            hd.sr.ImageRegion(
                graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                graphic_data=rect,
                source_image=sources.region_source(p),
            )
            for p in planes
        ]
        if len(planes) == 1:
            out.append(
                hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=tracking,
                    referenced_region=regions[0],
                    finding_type=label_code(lab, box.label),
                    measurements=[
                        hd.sr.Measurement(
                            name=codes.SCT.Area,
                            value=float(area),
                            unit=codes.UCUM.SquareMillimeter,
                        )
                    ],
                )
            )
        else:
            volume = area * (box.end[0] - box.start[0]) * dp
            out.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=tracking,
                    referenced_regions=regions,
                    finding_type=label_code(lab, box.label),
                    measurements=[
                        hd.sr.Measurement(
                            name=codes.SCT.Volume,
                            value=float(volume),
                            unit=codes.UCUM.CubicMillimeter,
                        )
                    ],
                )
            )
    return out


def _point_groups(
    item: ExportItem, by_name: dict[str, LabelInfo], sources: _Sources
) -> list[hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations]:
    n_planes = item.volume.spatial_shape[0]
    out = []
    for i, pt in enumerate(item.content.points):
        if pt.position is None:
            raise InvalidInputError(f"point {i} of image {item.name!r} has no voxel position")
        plane = min(n_planes - 1, max(0, round(pt.position[0])))
        data = np.array([[pt.position[2] + 0.5, pt.position[1] + 0.5]], dtype=np.float32)
        out.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=_tracking(f"{pt.label} point {i + 1}", item),
                referenced_region=hd.sr.ImageRegion(
                    graphic_type=hd.sr.GraphicTypeValues.POINT,
                    graphic_data=data,
                    source_image=sources.region_source(plane),
                ),
                finding_type=label_code(by_name.get(pt.label), pt.label),
            )
        )
    return out


def _class_group(
    item: ExportItem, by_name: dict[str, LabelInfo], sources: _Sources
) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    if not item.content.classes:
        return []
    evaluations = [
        hd.sr.QualitativeEvaluation(name=CLASSIFICATION, value=label_code(by_name.get(c), c))
        for c in item.content.classes
    ]
    return [
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=_tracking("image classification", item),
            qualitative_evaluations=evaluations,
            source_images=sources.group_sources(range(len(sources.planes))),
        )
    ]


def write_dicom_sr(
    item: ExportItem,
    labels: Iterable[LabelInfo],
    path: Path,
    *,
    series_number: int = 9002,
    series_description: str = "medlabel measurements",
    manufacturer: str = "medlabel",
) -> Path:
    """Write an annotation as a TID 1500 measurement report (Comprehensive 3D SR).

    Parameters
    ----------
    item
        An image imported from DICOM (``source_datasets`` and ``planes`` set) with its
        mask and/or content (boxes and points in voxel coordinates).
    labels
        The project's labels (names, mask values, codes).
    path
        File to write.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InvalidInputError
        The image has no DICOM sources, the annotation holds nothing to report, or
        highdicom refuses the content (its reason is in the message).
    """
    labels = list(labels)
    by_value = {
        lab.value: lab for lab in labels if lab.kind == LabelKind.MASK and lab.value is not None
    }
    by_name = {lab.name: lab for lab in labels}
    sources = _Sources(item)
    try:
        groups: list[
            hd.sr.MeasurementsAndQualitativeEvaluations
            | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
            | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
        ] = []
        groups.extend(_mask_groups(item, by_value, sources))
        groups.extend(_box_groups(item, by_name, sources))
        groups.extend(_point_groups(item, by_name, sources))
        groups.extend(_class_group(item, by_name, sources))
        if not groups:
            raise InvalidInputError(
                f"image {item.name!r}: the annotation has no mask, boxes, points or classes "
                "to report"
            )
        device = hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=hd.UID(), name="medlabel", manufacturer_name=manufacturer
            ),
        )
        person = None
        if item.author:
            person = hd.sr.ObserverContext(
                observer_type=codes.DCM.Person,
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                    name=item.author.replace("^", " ").replace("\\", " ")[:63] + "^"
                ),
            )
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(
                observer_person_context=person, observer_device_context=device
            ),
            procedure_reported=_IMAGING_PROCEDURE,
            imaging_measurements=groups,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
            sr = hd.sr.Comprehensive3DSR(
                evidence=list(sources.datasets),
                content=report,
                series_instance_uid=hd.UID(),
                series_number=series_number,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer=manufacturer,
                series_description=series_description[:64],
                software_versions=__version__,
            )
        sr.save_as(path)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise InvalidInputError(
            f"image {item.name!r}: cannot build a DICOM SR from this annotation: {exc}"
        ) from exc
    return path
