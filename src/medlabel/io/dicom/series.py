"""Group instances into series and build a series' images (volumes with geometry)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from pydicom.dataset import Dataset

from medlabel.core.errors import InvalidInputError, TooLargeError
from medlabel.imaging.volume import Volume
from medlabel.io.dicom.frames import FramePlane, frame_planes
from medlabel.io.dicom.kinds import describe_sop_class, is_image
from medlabel.io.dicom.metadata import image_metadata
from medlabel.io.dicom.pixels import decode_frames
from medlabel.io.dicom.reading import PARSE_ERRORS, check_pixel_attributes
from medlabel.io.dicom.results import DicomImage, Rejection, SeriesBuild, SeriesInfo
from medlabel.io.dicom.stacking import ImagePlan, plan_flat, plan_spatial

SeriesKey = tuple[str, str]
_BUILD_ERRORS: tuple[type[Exception], ...] = (*PARSE_ERRORS, MemoryError)


def group_by_series(
    items: Iterable[tuple[str, Dataset]],
) -> dict[SeriesKey, list[tuple[str, Dataset]]]:
    """Group ``(key, dataset)`` items by ``(StudyInstanceUID, SeriesInstanceUID)``.

    Groups and the items inside them keep their first-seen order; a missing UID is
    ``""``. Grouping the keys by their first element gives the studies.

    Examples
    --------
    >>> a, b = Dataset(), Dataset()
    >>> a.StudyInstanceUID, a.SeriesInstanceUID = "1.2", "1.2.3"
    >>> b.StudyInstanceUID, b.SeriesInstanceUID = "1.2", "1.2.4"
    >>> list(group_by_series([("a", a), ("b", b), ("c", a)]))
    [('1.2', '1.2.3'), ('1.2', '1.2.4')]
    """
    groups: dict[SeriesKey, list[tuple[str, Dataset]]] = {}
    for key, ds in items:
        uid = (_uid(ds, "StudyInstanceUID"), _uid(ds, "SeriesInstanceUID"))
        groups.setdefault(uid, []).append((key, ds))
    return groups


def series_info(ds: Dataset) -> SeriesInfo:
    """Extract the study and series attributes of ``ds`` as they are (no de-identification).

    Examples
    --------
    >>> ds = Dataset()
    >>> ds.Modality, ds.SeriesNumber = "CT", "3"
    >>> info = series_info(ds)
    >>> info.modality, info.series_number, info.series_description
    ('CT', 3, '')
    """
    number = ds.get("SeriesNumber")
    try:
        series_number = int(number) if number not in (None, "") else None
    except PARSE_ERRORS:
        series_number = None
    return SeriesInfo(
        study_uid=_uid(ds, "StudyInstanceUID"),
        series_uid=_uid(ds, "SeriesInstanceUID"),
        modality=_text(ds, "Modality") or "OT",
        series_number=series_number,
        series_description=_text(ds, "SeriesDescription"),
        study_description=_text(ds, "StudyDescription"),
        study_date=_text(ds, "StudyDate"),
        frame_of_reference_uid=_uid(ds, "FrameOfReferenceUID"),
        patient_id=_text(ds, "PatientID"),
    )


def build_images(
    items: Sequence[tuple[str, Dataset]],
    *,
    max_voxels: int,
    frames: Mapping[str, np.ndarray] | None = None,
) -> SeriesBuild:
    """Build the images of one series: stacks, split parts, 2D images and frame stacks.

    Single-frame instances with a position and orientation are grouped by size,
    orientation and pixel spacing, sorted along the slice normal (not by Instance
    Number) and stacked; enhanced multi-frame frames are treated the same way using
    their functional groups. Stacks with irregular gaps (missing slices) are rejected;
    instances sharing a position are split by echo, temporal position, acquisition
    number, image type... when that separates them, else rejected. Instances without
    positions become one image each (a 2D image, or a frame stack for multi-frame).

    Parameters
    ----------
    items
        ``(key, dataset)`` pairs of one series; the key names the source (e.g. the file
        path) in messages and in :attr:`DicomImage.planes`.
    max_voxels
        Largest image allowed (planes x rows x columns), checked before decoding.
    frames
        Already decoded frames by key (as :func:`~medlabel.io.dicom.decode_frames`
        returns them), e.g. from a worker process; their datasets may then lack pixel
        data. Other items are decoded here.

    Returns
    -------
    SeriesBuild
        Images in a stable order (independent of the order of ``items``) and the
        rejected instances with reasons (non-images and duplicate SOP Instance UIDs too).

    Raises
    ------
    TooLargeError
        An image would have more than ``max_voxels`` voxels.
    ValueError
        ``items`` mix series, repeat a key, or ``max_voxels`` is not positive.
    """
    _validate_inputs(items, max_voxels)
    rejected: list[Rejection] = []
    datasets: dict[str, Dataset] = {}
    spatial: list[FramePlane] = []
    flat: list[list[FramePlane]] = []
    seen: dict[str, str] = {}
    for key, ds in items:
        sop = str(ds.get("SOPInstanceUID", "") or "")
        if sop and sop in seen:
            rejected.append(Rejection([key], f"{key} repeats the instance {seen[sop]}; ignored"))
            continue
        if not (frames is not None and key in frames) and not is_image(ds):
            rejected.append(Rejection([key], f"{key} is a {describe_sop_class(ds)}, not an image"))
            continue
        try:
            planes = frame_planes(key, ds, check_pixel_attributes(ds, key)[2])
        except InvalidInputError as exc:
            rejected.append(Rejection([key], exc.message))
            continue
        except PARSE_ERRORS as exc:
            rejected.append(Rejection([key], f"{key}: invalid geometry attributes ({exc})"))
            continue
        seen[sop], datasets[key] = key, ds
        if all(p.spatial for p in planes):
            spatial.extend(planes)
        else:
            flat.append(planes)
    plans = _plans(spatial, flat, rejected)
    for plan in plans:
        if plan.voxels > max_voxels:
            name = ", ".join(plan.names) or "the image"
            raise TooLargeError(
                f"series image {name} has {plan.voxels:,} voxels ({len(plan.planes)} planes of "
                f"{plan.planes[0].rows}x{plan.planes[0].columns}), more than the limit of "
                f"{max_voxels:,}",
                details={"voxels": plan.voxels, "limit": max_voxels},
            )
    return SeriesBuild(_assemble_all(plans, datasets, rejected, frames or {}), rejected)


def _plans(
    spatial: list[FramePlane], flat: list[list[FramePlane]], rejected: list[Rejection]
) -> list[ImagePlan]:
    plans: list[ImagePlan] = []
    for result in plan_spatial(spatial):
        if isinstance(result, Rejection):
            rejected.append(result)
        else:
            plans.append(result)
    flat_plans = [plan_flat(planes) for planes in sorted(flat, key=lambda g: g[0].order_key)]
    if len(plans) + len(flat_plans) > 1:
        for plan in plans:
            plan.names = plan.names or ["stack"]
        for number, plan in enumerate(flat_plans, start=1):
            plan.names = [f"image {number}"]
    return plans + flat_plans


def _assemble_all(
    plans: list[ImagePlan],
    datasets: dict[str, Dataset],
    rejected: list[Rejection],
    decoded: Mapping[str, np.ndarray],
) -> list[DicomImage]:
    remaining = Counter(p.key for plan in plans for p in plan.planes)
    cache: dict[str, np.ndarray] = dict(decoded)
    images = []
    for plan in plans:
        keys = list(dict.fromkeys(p.key for p in plan.planes))
        try:
            array = _assemble(plan, datasets, cache)
            first = plan.planes[0]
            ds = datasets[first.key]
            volume = Volume(
                array,
                plan.affine,
                modality=str(ds.get("Modality", "") or "OT").strip() or "OT",
                geometry_known=plan.geometry_known,
                metadata=image_metadata(ds, frame=first.frame, instances=len(keys)),
            )
        except InvalidInputError as exc:
            rejected.append(Rejection(keys, exc.message))
            continue
        except _BUILD_ERRORS as exc:
            rejected.append(Rejection(keys, f"could not build the image from {keys[0]}: {exc}"))
            continue
        finally:
            remaining.subtract(p.key for p in plan.planes)
            for key in keys:
                if remaining[key] <= 0:
                    cache.pop(key, None)
        images.append(
            DicomImage(
                volume=volume,
                planes=[(p.key, p.frame) for p in plan.planes],
                instance_keys=keys,
                part=", ".join(plan.names),
                warnings=list(plan.warnings),
            )
        )
    return images


def _assemble(
    plan: ImagePlan, datasets: dict[str, Dataset], cache: dict[str, np.ndarray]
) -> np.ndarray:
    out: np.ndarray | None = None
    for index, plane in enumerate(plan.planes):
        frames = cache.get(plane.key)
        if frames is None:
            frames = decode_frames(datasets[plane.key], name=plane.key)
            cache[plane.key] = frames
        if plane.frame >= frames.shape[0] or frames.shape[1:3] != (plane.rows, plane.columns):
            raise InvalidInputError(
                f"{plane.key}: decoded pixel data of shape {frames.shape} does not match "
                f"{plane.rows} rows x {plane.columns} columns"
            )
        frame = frames[plane.frame]
        if out is None:
            out = np.empty((len(plan.planes), *frame.shape), dtype=frame.dtype)
        elif frame.shape != out.shape[1:]:
            raise InvalidInputError(f"{plane.key}: frames of different shape in one image")
        elif frame.dtype != out.dtype:
            out = out.astype(np.result_type(out.dtype, frame.dtype))
        out[index] = frame
    if out is None:
        raise ValueError("an image plan has no planes")
    return out


def _validate_inputs(items: Sequence[tuple[str, Dataset]], max_voxels: int) -> None:
    if max_voxels < 1:
        raise ValueError(f"max_voxels must be positive; got {max_voxels}")
    series = {_uid(ds, "SeriesInstanceUID") for _, ds in items}
    if len(series) > 1:
        raise ValueError(
            f"build_images takes one series; got {len(series)} Series Instance UIDs "
            "(use group_by_series first)"
        )
    keys = [key for key, _ in items]
    if len(set(keys)) != len(keys):
        duplicates = sorted(k for k, n in Counter(keys).items() if n > 1)
        raise ValueError(f"item keys must be unique; repeated: {duplicates[:5]}")


def _uid(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()
