"""Large imports run in worker processes and store exactly what an in-process import
stores."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from medlabel.core.settings import Settings
from medlabel.services.context import open_context
from medlabel.services.imports import ImportOptions, OnError, import_paths
from medlabel.services.imports.staging import PARALLEL_FROM
from medlabel.services.projects import create_project
from medlabel.storage.db.models import Image, Instance
from tests.conftest import sample_file


def _series(folder: Path, n: int) -> Path:
    """``n`` slices of the real CT_small pixels, 2 mm apart, shuffled file names."""
    src = pydicom.dcmread(sample_file("CT_small.dcm"))
    series = generate_uid()
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(rng.permutation(n)):
        ds = copy.deepcopy(src)
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        x, y, z = (float(v) for v in src.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + 2.0 * i]
        ds.InstanceNumber = i + 1
        ds.save_as(folder / f"{name:04d}.dcm")
    return folder


@pytest.mark.slow
def test_worker_processes_store_the_same_as_in_process(
    tmp_path: Path, new_database: Callable[[], str | None]
) -> None:
    folder = _series(tmp_path / "series", PARALLEL_FROM + 8)
    (folder / "broken.dcm").write_bytes(b"DICM" + b"\0" * 200)  # one bad file, skipped
    results = {}
    for workers in (1, 2):
        settings = Settings(
            home=tmp_path / f"home{workers}", database_url=new_database(), import_workers=workers
        )
        ctx = open_context(settings)
        try:
            project = create_project(ctx, None, "P")
            summary = import_paths(
                ctx, None, project.id, [folder], options=ImportOptions(on_error=OnError.SKIP)
            )
            with ctx.db.read() as s:
                image = s.get(Image, summary.image_ids[0])
                assert image is not None
                sops = sorted(i.sop_uid for i in s.query(Instance).all())
            pixels = np.asarray(ctx.volumes.get(image.pixel_digest))
            results[workers] = (summary.counts, image.shape, image.affine, sops, pixels)
            blobs = sorted(ctx.blobs.iter_digests())
            results[workers] += (len(blobs),)
        finally:
            ctx.close()
    one, two = results[1], results[2]
    assert one[0] == two[0] and one[0]["rejected"] == 1
    assert one[1] == two[1] == [PARALLEL_FROM + 8, 128, 128]
    assert one[2] == two[2]
    assert len(one[3]) == len(two[3]) == PARALLEL_FROM + 8  # UIDs differ: per-project keys
    assert np.array_equal(one[4], two[4])
    assert one[5] == two[5]


@pytest.mark.slow
def test_palette_colour_images_import_in_workers(tmp_path: Path) -> None:
    # palette LUT descriptors are pydicom values that cannot be pickled; the worker
    # hands headers over as DICOM files instead
    folder = tmp_path / "many"
    folder.mkdir()
    src = pydicom.dcmread(sample_file("OBXXXX1A.dcm"))
    for i in range(PARALLEL_FROM):
        ds = copy.deepcopy(src)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = generate_uid()
        ds.PixelData = bytes(range(i, 256)) * 4 + ds.PixelData[(256 - i) * 4 :]  # distinct
        ds.save_as(folder / f"{i}.dcm")
    ctx = open_context(Settings(home=tmp_path / "home", import_workers=2))
    try:
        project = create_project(ctx, None, "P")
        summary = import_paths(ctx, None, project.id, [folder])
        assert len(summary.image_ids) == PARALLEL_FROM
        with ctx.db.read() as s:
            image = s.get(Image, summary.image_ids[0])
            assert image is not None and image.channels == 3
    finally:
        ctx.close()
