"""Per-file DICOM work, run in worker processes for large imports: read, check,
de-identify, store the de-identified file as a blob, decode the pixels once, and leave
the header and the decoded frames on disk for the volume builder. Everything here is
picklable and free of database access.

A task runs in one of three modes (:class:`Mode`): ``full`` does all of that in one
pass; a background import splits it in two, ``ingest`` (read, check, de-identify, store;
no decoding) now and ``stored`` (decode an already de-identified, stored file) in the
job that builds the images."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import pydicom

from medlabel.core.errors import MedlabelError
from medlabel.io import dicom as dicom_io
from medlabel.io.dicom.writing import dicom_file_bytes
from medlabel.security.deid import QUIET_VALIDATION, Deidentifier, DeidOptions, DeidResult
from medlabel.storage.blob import BlobStore

log = logging.getLogger(__name__)
#: makes the de-identified file's bytes
Written = Callable[[], bytes]
#: per process: de-identifiers by (secret, options), built on first use
_DEIDENTIFIERS: dict[tuple[str, str], Deidentifier] = {}


class Mode(StrEnum):
    """What :func:`prepare_dicom` does with a file."""

    FULL = "full"  # read, de-identify, store, decode
    INGEST = "ingest"  # read, de-identify, store (pixels checked as far as cheap)
    STORED = "stored"  # decode a stored, already de-identified file


@dataclass(frozen=True)
class DicomTask:
    """One file to prepare. ``deid`` is (project secret, options as JSON); ``stored`` is
    the digest of the file in the blob store (mode ``stored``, where ``path`` is that
    blob's local copy)."""

    path: Path
    name: str
    out: Path
    deid: tuple[str, str]
    blobs: BlobStore
    mode: Mode = Mode.FULL
    stored: str = ""


@dataclass
class Prepared:
    """What became of one DICOM file. ``error`` (with an HTTP-like ``status``) or
    ``skipped`` (a non-image, with its kind) or a stored, de-identified instance whose
    header (without pixels) and decoded frames are at ``header_path`` and
    ``frames_path``."""

    name: str
    error: str | None = None
    status: int = 422
    skipped: str | None = None
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    content_key: str = ""
    dicom_digest: str = ""
    created: bool = False
    frame_of_reference_added: bool = False
    deid: DeidResult | None = None
    header_path: Path | None = None
    frames_path: Path | None = None
    #: mode ``ingest``: what the instance row needs until the images are built
    series: dicom_io.SeriesInfo | None = None
    sop_class_uid: str = ""
    instance_number: int | None = None
    frame_count: int = 1
    #: set by the parent as results arrive (while workers go on): header and frames
    header: pydicom.Dataset | None = None
    frames: np.ndarray | None = None


def _deidentifier(secret: str, options: str) -> Deidentifier:
    key = (secret, options)
    deid = _DEIDENTIFIERS.get(key)
    if deid is None:
        if len(_DEIDENTIFIERS) > 8:
            _DEIDENTIFIERS.clear()
        deid = Deidentifier(secret, DeidOptions.model_validate_json(options))
        _DEIDENTIFIERS[key] = deid
    return deid


def warm_up() -> None:
    """Run by each import worker process as it starts: de-identify and check one small
    file that pydicom ships (CT_small.dcm), so that the tables, lazily loaded modules
    and caches the first files of an import need are ready before it comes."""
    try:
        from pydicom.data import get_testdata_file

        found = get_testdata_file("CT_small.dcm")
        if not isinstance(found, str):
            return
        data = Path(found).read_bytes()
        fast = Deidentifier("medlabel worker warm-up", DeidOptions()).deidentify_file(data)
        if fast is not None:
            ds = fast[0].dataset
            dicom_io.check_dataset(ds, name="warm-up", check_pixels=False)
            dicom_io.series_info(ds)
            missing_frame_of_reference(ds)
            hashlib.sha256(fast[0].data).digest()
    except Exception:  # only a head start: an import works without it
        log.debug("import worker warm-up failed", exc_info=True)


def content_key(ds: pydicom.Dataset, frames: np.ndarray) -> str:
    """Identity of an instance's content: its decoded pixels and where they are. The same
    image sent again under new UIDs, or re-encoded with another transfer syntax, has the
    same key."""
    h = hashlib.sha256()
    for kw in ("Rows", "Columns", "NumberOfFrames", "ImagePositionPatient",
               "ImageOrientationPatient"):  # fmt: skip
        h.update(repr(ds.get(kw)).encode())
    h.update(str(frames.dtype).encode())
    h.update(np.ascontiguousarray(frames).data)
    return h.hexdigest()


def ensure_frame_of_reference(ds: pydicom.Dataset) -> bool:
    """Give spatially located images that lack a Frame of Reference UID one (the same for
    a whole series), so DICOM SEG can be made for them later. True if one was added."""
    uid = missing_frame_of_reference(ds)
    if uid is None:
        return False
    ds.FrameOfReferenceUID = uid
    return True


def missing_frame_of_reference(ds: pydicom.Dataset) -> str | None:
    """The Frame of Reference UID :func:`ensure_frame_of_reference` adds to ``ds``, or
    None if it adds none."""
    if "FrameOfReferenceUID" in ds:
        return None
    if "ImagePositionPatient" not in ds and "PerFrameFunctionalGroupsSequence" not in ds:
        return None
    # derived from the (already de-identified) series UID: one per series, the same on
    # every import; "2.25." + a 128-bit number, as the de-identifier's UIDs
    series = str(ds.get("SeriesInstanceUID", ""))
    digest = hashlib.sha256(f"medlabel frame of reference\0{series}".encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def prepare_dicom(task: DicomTask) -> Prepared:
    """Read, check and de-identify one file; store the de-identified file as a blob;
    leave its header and decoded frames on disk for the volume builder (what is done
    depends on ``task.mode``, see :class:`Mode`)."""
    # pydicom's validation warnings quote values: of an original file, identifiers
    with QUIET_VALIDATION:
        return _prepare(task)


def _prepare(task: DicomTask) -> Prepared:
    out = Prepared(task.name)
    stored = task.mode == Mode.STORED
    source = task.path.read_bytes()
    # de-identified from the encoded elements when it can be (much faster), else after
    # reading a pydicom data set; the same file either way
    fast = None if stored else _deidentifier(*task.deid).deidentify_file(source)
    try:
        if fast is None:
            ds = dicom_io.read_dataset(source, name=task.name, check_pixels=task.mode == Mode.FULL)
        else:
            if task.mode == Mode.FULL:
                fast[0].decodable_pixels()
            ds = fast[0].dataset
            dicom_io.check_dataset(ds, name=task.name, check_pixels=task.mode == Mode.FULL)
    except MedlabelError as exc:
        out.error, out.status = exc.message, exc.status_code
        return out
    if not dicom_io.is_image(ds):
        out.skipped = str(dicom_io.sop_kind(ds))
        return out
    written: Written
    if fast is not None:
        encoded, out.deid = fast
        frame_of_reference = missing_frame_of_reference(ds)
        if frame_of_reference is not None:
            encoded.put_text(0x00200052, "UI", frame_of_reference)
            out.frame_of_reference_added = True
        written = lambda: encoded.data  # noqa: E731
    elif not stored:
        out.deid = _deidentifier(*task.deid).deidentify(ds)
        out.frame_of_reference_added = ensure_frame_of_reference(ds)
        written = lambda: dicom_file_bytes(ds, source)  # noqa: E731
    out.study_uid = str(ds.get("StudyInstanceUID", ""))
    out.series_uid = str(ds.get("SeriesInstanceUID", ""))
    out.sop_uid = str(ds.SOPInstanceUID)
    if task.mode == Mode.INGEST:
        return _ingested(task, ds, written, out)
    try:
        frames = dicom_io.decode_frames(ds, name=task.name)
    except MedlabelError as exc:
        out.error, out.status = exc.message, exc.status_code
        return out
    out.content_key = content_key(ds, frames)
    if stored:
        out.dicom_digest = task.stored
        out.header_path = task.path
    else:
        data = _written(written, task.name, out)
        if data is None:
            return out
        _store(task, data, out)
    out.frames_path = task.out.with_suffix(".npy")
    np.save(out.frames_path, np.ascontiguousarray(frames), allow_pickle=False)
    return out


def _written(written: Written, name: str, out: Prepared) -> bytes | None:
    try:
        return written()
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        out.error = (
            f"{name}: could not be written again after de-identification ({exc}); "
            "its header is malformed"
        )
        return None


def _store(task: DicomTask, data: bytes, out: Prepared) -> None:
    ref = task.blobs.put_bytes(data)
    out.dicom_digest, out.created = ref.digest, ref.created
    # the builder reads the header from the stored file itself when the store is local,
    # else from a copy (pickles would not do: some pydicom values, e.g. palette LUT
    # descriptors, cannot be pickled)
    if task.mode == Mode.FULL and task.blobs.local_path(ref.digest) is None:
        out.header_path = task.out.with_suffix(".dcm")
        out.header_path.write_bytes(data)


def _ingested(task: DicomTask, ds: pydicom.Dataset, written: Written, out: Prepared) -> Prepared:
    """Mode ``ingest``: what the instance row needs; the file stored, nothing decoded."""
    try:
        out.series = dicom_io.series_info(ds)
        out.sop_class_uid = str(ds.SOPClassUID)
        out.frame_count = dicom_io.number_of_frames(ds)
        number = ds.get("InstanceNumber")
        out.instance_number = int(number) if number not in (None, "") else None
    except (TypeError, ValueError) as exc:
        out.error = f"{task.name}: invalid instance attributes ({exc})"
        return out
    data = _written(written, task.name, out)
    if data is not None:
        _store(task, data, out)
    return out


def load_prepared(prep: Prepared, blobs: BlobStore) -> None:
    """Attach the header (read from the stored de-identified file) and the decoded frames
    (memory-mapped from the import's work folder) that :func:`prepare_dicom` left."""
    assert prep.frames_path is not None
    path = prep.header_path or blobs.local_path(prep.dicom_digest)
    assert path is not None
    prep.header = pydicom.dcmread(path, stop_before_pixels=True)
    prep.frames = np.load(prep.frames_path, mmap_mode="r", allow_pickle=False)
