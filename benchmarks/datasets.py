"""Benchmark inputs built from the real DICOM files that installed packages ship.

* :func:`write_ct_series` — a CT series of ``n`` 512×512 slices made from the real head CT
  ``693_UNCR.dcm`` (pydicom-data): every slice has the same (real) pixels, new Study,
  Series and SOP Instance UIDs, and an ImagePositionPatient that steps by the slice
  thickness, so both medlabel and Orthanc see ``n`` distinct instances of one series.
* :data:`MIXED_FILES` — one file per SOP Instance UID from pydicom's test files and
  pydicom-data that both medlabel and Orthanc 1.10 accept (chosen once by importing every
  ``*.dcm`` of both packages into each; see docs/benchmarks.md). Left out: files that are
  broken on purpose (truncated, bad VR, missing meta, JPEG with wrong lengths), non-image
  objects (RT, SR, SEG, waveforms: medlabel skips them by design), JPEG-LS near-lossless
  files (Orthanc 1.10 rejects them), and further encodings of an already listed SOP
  Instance (both systems store those once, so they would not measure ingest).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

CT_SOURCE = "693_UNCR.dcm"

# (package, file name); "pydicom" = pydicom/data/test_files, "pydicom-data" = data_store/data
MIXED_FILES: tuple[tuple[str, str], ...] = (
    ("pydicom-data", "693_J2KR.dcm"),
    ("pydicom-data", "693_UNCI.dcm"),
    ("pydicom-data", "JPEG-LL.dcm"),
    ("pydicom-data", "JPEG2000_UNC.dcm"),
    ("pydicom-data", "JPGLosslessP14SV1_1s_1f_8b.dcm"),
    ("pydicom-data", "MR-SIEMENS-DICOM-WithOverlays.dcm"),
    ("pydicom-data", "MR2_J2KR.dcm"),
    ("pydicom-data", "OBXXXX1A.dcm"),
    ("pydicom-data", "OT-PAL-8-face.dcm"),
    ("pydicom-data", "RG1_J2KI.dcm"),
    ("pydicom-data", "RG1_J2KR.dcm"),
    ("pydicom-data", "RG3_J2KI.dcm"),
    ("pydicom-data", "RG3_J2KR.dcm"),
    ("pydicom-data", "SC_rgb.dcm"),
    ("pydicom-data", "SC_rgb_dcmtk_ebcr_dcmd.dcm"),
    ("pydicom-data", "SC_rgb_dcmtk_ebcyn1_dcmd.dcm"),
    ("pydicom-data", "US1_J2KI.dcm"),
    ("pydicom-data", "US1_J2KR.dcm"),
    ("pydicom-data", "bad_sequence.dcm"),
    ("pydicom-data", "color-pl.dcm"),
    ("pydicom-data", "color3d_jpeg_baseline.dcm"),
    ("pydicom-data", "eCT_Supplemental.dcm"),
    ("pydicom-data", "emri_small.dcm"),
    ("pydicom-data", "explicit_VR-UN.dcm"),
    ("pydicom-data", "gdcm-US-ALOKA-16.dcm"),
    ("pydicom-data", "mlut_18.dcm"),
    ("pydicom-data", "vlut_04.dcm"),
    ("pydicom", "CT_small.dcm"),
    ("pydicom", "ExplVR_BigEnd.dcm"),
    ("pydicom", "GDCMJ2K_TextGBR.dcm"),
    ("pydicom", "J2K_pixelrep_mismatch.dcm"),
    ("pydicom", "MR_small.dcm"),
    ("pydicom", "SC_jpeg_no_color_transform_2.dcm"),
    ("pydicom", "SC_rgb_jpeg_dcmd.dcm"),
    ("pydicom", "SC_rgb_jpeg_dcmtk.dcm"),
    ("pydicom", "SC_rgb_jpeg_lossy_gdcm.dcm"),
    ("pydicom", "SC_rgb_small_odd.dcm"),
    ("pydicom", "SC_rgb_small_odd_jpeg.dcm"),
    ("pydicom", "examples_overlay.dcm"),
    ("pydicom", "examples_rgb_color.dcm"),
    ("pydicom", "image_dfl.dcm"),
)


def testdata_path(name: str) -> Path:
    """Path of a pydicom test file (pydicom or pydicom-data), never downloading."""
    found = get_testdata_file(name, download=False)
    if found is None:
        raise FileNotFoundError(
            f"{name} not found; install pydicom-data (pip install pydicom-data)"
        )
    return Path(str(found))


def write_ct_series(dest: Path, n: int, *, tag: str = "bench") -> list[Path]:
    """Write ``n`` CT slices into ``dest`` (created), all with the pixels of 693_UNCR.dcm.

    UIDs are derived from ``tag`` and the slice number, so the same call gives the same
    files. Positions step by the source's SliceThickness (5 mm) starting one step past the
    source slice, so no slice coincides with 693_UNCR.dcm itself.
    """
    dest.mkdir(parents=True, exist_ok=True)
    src = pydicom.dcmread(testdata_path(CT_SOURCE))
    step = float(src.get("SliceThickness") or 1.0)
    x, y, z0 = (float(v) for v in src.ImagePositionPatient)
    study = generate_uid(entropy_srcs=[tag, "study"])
    series = generate_uid(entropy_srcs=[tag, "series"])
    paths = []
    for k in range(1, n + 1):
        ds = src.copy()
        sop = generate_uid(entropy_srcs=[tag, "sop", str(k)])
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SeriesDescription = "benchmark: 693_UNCR pixels repeated"
        ds.SeriesNumber = 9001
        ds.InstanceNumber = k
        z = z0 + k * step
        ds.ImagePositionPatient = [x, y, z]
        ds.SliceLocation = z
        path = dest / f"ct_{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def copy_mixed(dest: Path) -> list[Path]:
    """Copy :data:`MIXED_FILES` into ``dest`` (named ``<package>__<file>``)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for package, name in MIXED_FILES:
        target = dest / f"{package}__{name}"
        shutil.copyfile(testdata_path(name), target)
        out.append(target)
    return out


def build_import_set(dest: Path, ct_slices: int) -> list[Path]:
    """The import benchmark's folder: ``dest/ct`` (synthetic series) + ``dest/mixed``."""
    return write_ct_series(dest / "ct", ct_slices) + copy_mixed(dest / "mixed")
