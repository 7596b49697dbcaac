"""Importing real files: DICOM series, NIfTI, PNG, zips, duplicates, and bad input that
must be refused without storing anything."""

from __future__ import annotations

import gzip
import io
import shutil
import struct
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from medlabel.core.errors import InvalidInputError, MedlabelError, TooLargeError
from medlabel.services.context import Context
from medlabel.services.imports import ImportOptions, OnError, import_paths
from medlabel.services.projects import create_project
from medlabel.storage.db.models import Image, ImportRecord, Instance, Series, Study
from tests.conftest import sample_file
from tests.services.helpers import stored


@pytest.fixture
def project(ctx: Context) -> int:
    return create_project(ctx, None, "P").id


def _image(ctx: Context, image_id: int) -> Image:
    with ctx.db.read() as s:
        image = s.get(Image, image_id)
        assert image is not None
        return image


def test_dicom_series_becomes_one_volume_with_dicom_geometry(
    ctx: Context, project: int, ct_series: Path
) -> None:
    summary = import_paths(ctx, None, project, [ct_series])
    assert summary.counts["instances"] == 5 and len(summary.image_ids) == 1
    image = _image(ctx, summary.image_ids[0])
    assert image.shape == [5, 16, 16] and image.modality == "CT"
    # the volume's first and last planes sit where the source instances say
    originals = sorted(
        (pydicom.dcmread(p) for p in ct_series.iterdir()),
        key=lambda d: float(d.ImagePositionPatient[2]),
    )
    affine = np.asarray(image.affine)
    first = affine @ [0, 0, 0, 1]
    last = affine @ [4, 0, 0, 1]
    positions = {tuple(np.round(np.asarray(d.ImagePositionPatient, float), 3)) for d in originals}
    assert tuple(np.round(first[:3], 3)) in positions
    assert tuple(np.round(last[:3], 3)) in positions
    assert abs(np.linalg.norm(affine[:3, 0]) - 2.5) < 1e-6
    with ctx.db.read() as s:
        assert s.scalar(select(Study.id)) and s.scalar(select(Series.modality)) == "CT"
        instances = list(s.scalars(select(Instance).order_by(Instance.first_plane)))
    assert [i.first_plane for i in instances] == [0, 1, 2, 3, 4]
    # stored instances are de-identified copies with remapped UIDs
    ds = pydicom.dcmread(io.BytesIO(ctx.blobs.read_bytes(instances[0].dicom_digest)))
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.SOPInstanceUID not in {d.SOPInstanceUID for d in originals}
    assert ds.StudyInstanceUID.startswith("2.25.")


def test_pixels_are_in_hounsfield_units(ctx: Context, project: int, tmp_path: Path) -> None:
    src = sample_file("CT_small.dcm")
    summary = import_paths(ctx, None, project, [src])
    image = _image(ctx, summary.image_ids[0])
    ds = pydicom.dcmread(src)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    got = ctx.volumes.get(image.pixel_digest)
    assert np.array_equal(got[0], expected)
    assert image.meta["units"] == "HU"


def test_reimport_is_recognised_as_duplicate(ctx: Context, project: int, ct_series: Path) -> None:
    import_paths(ctx, None, project, [ct_series])
    before = stored(ctx)
    again = import_paths(ctx, None, project, [ct_series])
    assert again.counts["duplicates"] == 5 and again.image_ids == []
    after = stored(ctx)
    assert after["images"] == before["images"] and after["instances"] == before["instances"]


def test_same_content_with_new_uids_is_a_duplicate(
    ctx: Context, project: int, tmp_path: Path
) -> None:
    src = sample_file("CT_small.dcm")
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    copy = tmp_path / "resent.dcm"
    ds.save_as(copy)
    import_paths(ctx, None, project, [src])
    again = import_paths(ctx, None, project, [copy])
    assert again.counts["duplicates"] == 1 and again.image_ids == []


def test_compressed_and_uncompressed_copies_are_one_instance(ctx: Context, project: int) -> None:
    summary = import_paths(
        ctx, None, project, [sample_file("US1_UNCR.dcm"), sample_file("US1_J2KR.dcm")]
    )
    assert len(summary.image_ids) == 1 and summary.counts["duplicates"] == 1
    image = _image(ctx, summary.image_ids[0])
    assert image.channels == 3 and image.modality == "US"


def test_zip_upload_equals_folder(
    ctx: Context, project: int, ct_series: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(ct_series.iterdir()):
            zf.write(p, f"study/{p.name}")
    summary = import_paths(ctx, None, project, [archive])
    image = _image(ctx, summary.image_ids[0])
    assert image.shape == [5, 16, 16]


def test_nifti_keeps_its_geometry(ctx: Context, project: int, nifti_file: Path) -> None:
    summary = import_paths(ctx, None, project, [nifti_file], options=ImportOptions(modality="MR"))
    image = _image(ctx, summary.image_ids[0])
    nii = nib.load(nifti_file)
    assert image.name == "anatomical" and image.modality == "MR"
    arr = ctx.volumes.get(image.pixel_digest)
    assert arr.shape == nii.shape[::-1]
    # voxel (i, j, k) of the NIfTI is voxel (k, j, i) of ours, at the same place (RAS vs LPS)
    ijk = np.array([3, 7, 11])
    ras = nii.affine @ [*ijk, 1]
    lps = np.asarray(image.affine) @ [ijk[2], ijk[1], ijk[0], 1]
    assert np.allclose([-ras[0], -ras[1], ras[2]], lps[:3])
    assert arr[ijk[2], ijk[1], ijk[0]] == np.asarray(nii.dataobj)[tuple(ijk)]


@pytest.mark.parametrize(
    ("mode", "dtype", "channels"),
    [("L", np.uint8, 1), ("RGB", np.uint8, 3), ("I;16", np.uint16, 1)],
)
def test_png_images(
    ctx: Context, project: int, tmp_path: Path, mode: str, dtype: type, channels: int
) -> None:
    rgb = pydicom.dcmread(sample_file("US1_UNCR.dcm")).pixel_array  # a real ultrasound frame
    if mode == "L":
        pil = PILImage.fromarray(rgb[..., 0])
    elif mode == "RGB":
        pil = PILImage.fromarray(rgb)
    else:
        pil = PILImage.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    path = tmp_path / "frame.png"
    pil.save(path)
    summary = import_paths(ctx, None, project, [path])
    image = _image(ctx, summary.image_ids[0])
    assert image.shape == [1, 480, 640] and image.channels == channels
    assert image.dtype == np.dtype(dtype).name and image.source_format == "png"
    assert not image.geometry_known


def test_junk_files_are_skipped_and_reported(ctx: Context, project: int, ct_series: Path) -> None:
    (ct_series / "README.txt").write_text("not an image")
    summary = import_paths(ctx, None, project, [ct_series])
    assert summary.counts["skipped"] == 1 and len(summary.image_ids) == 1
    assert any("README.txt" in p.file and "skipped" in p.reason for p in summary.problems)


def test_report_is_kept_per_import(ctx: Context, project: int) -> None:
    summary = import_paths(ctx, None, project, [sample_file("CT_small.dcm")])
    with ctx.db.read() as s:
        record = s.get(ImportRecord, summary.import_id)
    assert record is not None
    actions = record.report["deidentification"]["actions"]
    assert actions["PatientName"] and actions["StudyInstanceUID"]
    assert record.counts["images"] == 1


# bad input: a clear error naming the problem, nothing stored ----------------------------
def _nifti_claiming(tmp_path: Path, shape: tuple[int, ...]) -> Path:
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((1, 1, 1))
    raw = bytearray(hdr.binaryblock)
    struct.pack_into("<8h", raw, 40, len(shape), *shape, *([1] * (7 - len(shape))))
    path = tmp_path / "huge.nii.gz"
    path.write_bytes(gzip.compress(bytes(raw) + b"\0" * 4 + b"\0" * 64))
    return path


def _unsupported_syntax(tmp_path: Path) -> Path:
    ds = pydicom.dcmread(sample_file("JPEG2000.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video
    path = tmp_path / "video.dcm"
    ds.save_as(path, enforce_file_format=False)
    return path


def _missing_slice(tmp_path: Path, ct_series: Path) -> Path:
    files = sorted(ct_series.iterdir())
    dest = tmp_path / "gappy"
    dest.mkdir()
    for p in files[:2] + files[3:]:
        shutil.copy(p, dest / p.name)
    return dest


def _zip_slip(tmp_path: Path) -> Path:
    path = tmp_path / "slip.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../evil.dcm", sample_file("CT_small.dcm").read_bytes())
    return path


def _zip_bomb(tmp_path: Path) -> Path:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", b"\0" * (64 * 1024 * 1024))
    return path


def _truncated_png(tmp_path: Path) -> Path:
    buf = io.BytesIO()
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256), np.uint8)).save(
        buf, "PNG"
    )
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


BAD_INPUTS = {
    "truncated DICOM": (lambda tmp, ser: sample_file("MR_truncated.dcm"), "MR_truncated"),
    "text named .dcm": (lambda tmp, ser: _write(tmp / "notes.dcm", b"hello world"), "notes.dcm"),
    "NIfTI claiming 10^12 voxels": (
        lambda tmp, ser: _nifti_claiming(tmp, (10000, 10000, 10000)),
        "voxels",
    ),
    "unsupported transfer syntax": (lambda tmp, ser: _unsupported_syntax(tmp), "MPEG2"),
    "series with a missing slice": (_missing_slice, "spacing"),
    "zip slip": (lambda tmp, ser: _zip_slip(tmp), ".."),
    "zip bomb": (lambda tmp, ser: _zip_bomb(tmp), "zeros.dcm"),
    "truncated PNG": (lambda tmp, ser: _truncated_png(tmp), "cut.png"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_and_nothing_is_stored(
    ctx: Context, project: int, tmp_path: Path, ct_series: Path, case: str
) -> None:
    make, fragment = BAD_INPUTS[case]
    bad = make(tmp_path, ct_series)
    good = sample_file("CT_small.dcm")
    before = stored(ctx)
    with pytest.raises(MedlabelError) as info:
        import_paths(ctx, None, project, [good, bad])
    assert 400 <= info.value.status_code < 500
    assert fragment.lower() in info.value.message.lower(), info.value.message
    assert stored(ctx) == before


def test_zip_bomb_is_a_413(ctx: Context, project: int, tmp_path: Path) -> None:
    with pytest.raises(TooLargeError):
        import_paths(ctx, None, project, [_zip_bomb(tmp_path)])


def test_skip_mode_stores_the_good_and_reports_the_bad(
    ctx: Context, project: int, tmp_path: Path
) -> None:
    bad = _write(tmp_path / "broken.dcm", b"DICM" * 10)
    summary = import_paths(
        ctx,
        None,
        project,
        [sample_file("CT_small.dcm"), bad],
        options=ImportOptions(on_error=OnError.SKIP),
    )
    assert len(summary.image_ids) == 1 and summary.counts["rejected"] == 1
    assert summary.problems[0].file.endswith("broken.dcm")


def test_nothing_importable_is_an_error(ctx: Context, project: int, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="no importable images"):
        import_paths(ctx, None, project, [empty])


def test_missing_path_is_named(ctx: Context, project: int, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="nope"):
        import_paths(ctx, None, project, [tmp_path / "nope"])
