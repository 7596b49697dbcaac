"""The import's vocabulary: options, problems, staged images and the running state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from medlabel.core.errors import InvalidInputError, TooLargeError, UnsupportedFormatError
from medlabel.imaging.windowing import Window
from medlabel.io import dicom as dicom_io
from medlabel.io.sniff import FileKind
from medlabel.security.deid import Deidentifier, DeidReport
from medlabel.services.blobrefs import BlobTransaction
from medlabel.services.context import Context
from medlabel.services.imports.worker import Prepared
from medlabel.storage.db.models import Project

ProgressFn = Callable[[str, int, int], None]


class OnError(StrEnum):
    """What to do with a file that cannot be read."""

    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class ImportOptions:
    """``modality`` applies to NIfTI and raster files, which do not record one.

    ``background``: DICOM files are read, checked, de-identified, stored and indexed now;
    their pixels are decoded and their images built by a ``prepare_import`` job (the
    import's status is ``preparing`` until it ends). Files whose pixels then fail to
    decode are reported in the import's problems and removed; with ``on_error=fail``
    only what is found before storing rejects the import.
    """

    modality: str | None = None
    on_error: OnError = OnError.FAIL
    background: bool = False


@dataclass
class Problem:
    file: str
    reason: str
    status: int = 422


@dataclass
class ImportSummary:
    import_id: int
    image_ids: list[int]
    counts: dict[str, int]
    problems: list[Problem]
    report: dict[str, Any]
    #: the ``prepare_import`` job of a background import
    job_id: int | None = None


#: the error class a uniform set of problems is reported with
ERRORS: dict[int, type[InvalidInputError]] = {
    413: TooLargeError,
    415: UnsupportedFormatError,
}


@dataclass
class Source:
    path: Path
    name: str  # path relative to what the user gave (for messages and non-DICOM names)
    kind: FileKind
    digest: str = ""  # a stored instance's blob (when building a background import)


@dataclass
class StagedInstance:
    sop_uid: str
    sop_class_uid: str
    instance_number: int | None
    first_plane: int
    frames: int
    dicom_digest: str
    pixel_sha: str


@dataclass
class StagedImage:
    name: str
    source_format: str
    volume_meta: dict[str, Any]
    modality: str
    shape: list[int]
    channels: int
    dtype: str
    affine: list[list[float]]
    geometry_known: bool
    pixel_digest: str
    pixel_bytes: int
    thumbnail_digest: str
    window: Window | None
    series: dicom_io.SeriesInfo | None = None
    instances: list[StagedInstance] = field(default_factory=list)
    plane_sources: list[list[Any]] | None = None


def _counts() -> dict[str, int]:
    keys = ("files", "instances", "images", "duplicates", "skipped", "rejected")
    return dict.fromkeys(keys, 0)


@dataclass
class Run:
    """State of one import while it runs."""

    ctx: Context
    project: Project
    options: ImportOptions
    deid: Deidentifier
    report: DeidReport
    blobs: BlobTransaction
    workdir: Path
    problems: list[Problem] = field(default_factory=list)
    staged: list[StagedImage] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=_counts)
    #: background import: instances stored now, images built later
    pending: list[Prepared] = field(default_factory=list)

    def problem(self, name: str, reason: str, status: int = 422) -> None:
        """Record a file that could not be imported."""
        if reason.startswith(f"{name}: "):
            reason = reason[len(name) + 2 :]
        self.problems.append(Problem(name, reason, status))
        self.counts["rejected"] += 1

    def skip(self, name: str, reason: str) -> None:
        """Record a file that is not an image (not an error)."""
        self.problems.append(Problem(name, f"skipped: {reason}", 200))
        self.counts["skipped"] += 1

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n
