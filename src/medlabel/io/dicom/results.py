"""Typed results of building images from a DICOM series."""

from __future__ import annotations

from dataclasses import dataclass, field

from medlabel.imaging.volume import Volume


@dataclass(frozen=True)
class Rejection:
    """Instances that could not become an image, and why (a message for the user)."""

    keys: list[str]
    reason: str


@dataclass(frozen=True)
class DicomImage:
    """One image (2D, 3D stack or frame stack) built from a series.

    Attributes
    ----------
    volume
        Pixels in modality units with the affine to LPS.
    planes
        For each plane of ``volume`` (in plane order), the source item key and the
        0-based frame index inside that instance (0 for single-frame instances); needed to
        reference source instances, e.g. from a DICOM SEG.
    instance_keys
        The distinct source item keys, in plane order.
    part
        ``""`` when the series gives one image; otherwise names this part, e.g.
        ``"orientation 2"``, ``"echo 2"``, ``"image 3"``.
    warnings
        Things the user should know (sheared stack, nominal spacing...).
    """

    volume: Volume
    planes: list[tuple[str, int]]
    instance_keys: list[str]
    part: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SeriesBuild:
    """Images built from one series, and the instances that were left out."""

    images: list[DicomImage]
    rejected: list[Rejection]


@dataclass(frozen=True)
class SeriesInfo:
    """Identifying and descriptive attributes of a series (plain extraction)."""

    study_uid: str
    series_uid: str
    modality: str
    series_number: int | None
    series_description: str
    study_description: str
    study_date: str
    frame_of_reference_uid: str
    patient_id: str
