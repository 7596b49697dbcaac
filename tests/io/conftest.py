"""Fixtures for the DICOM tests: real pydicom / pydicom-data files and series made from them."""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from medlabel.io.dicom import read_dataset

PYDICOM_FILES = Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"
DICOMDIR_TESTS = PYDICOM_FILES / "dicomdirtests"


def data_path(name: str) -> Path:
    """Path of a pydicom / pydicom-data test file, never downloading."""
    found = get_testdata_file(name, download=False)
    if found is None:
        pytest.fail(f"test file {name} is missing: install the dev extra (pydicom-data)")
    return Path(str(found))


def read_testdata(name: str) -> Dataset:
    """A test file read with :func:`read_dataset`."""
    return read_dataset(data_path(name), name=name)


def read_folder(relative: str) -> list[tuple[str, Dataset]]:
    """All files of a folder of pydicom's dicomdirtests, read with :func:`read_dataset`."""
    folder = DICOMDIR_TESTS / relative
    return [
        (f"{relative}/{p.name}", read_dataset(p, name=p.name)) for p in sorted(folder.iterdir())
    ]


def unit(v: Sequence[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


# An oblique orientation: row direction (towards increasing column), column direction.
OBLIQUE_ROW = unit([0.9, 0.3, 0.1])
OBLIQUE_COL = unit(np.cross(unit([0.2, -0.1, 1.0]), OBLIQUE_ROW))


SeriesFactory = Callable[..., list[tuple[str, Dataset]]]


@pytest.fixture
def make_series() -> SeriesFactory:
    """Build a series of single-frame instances from a real file's pixel data.

    ``make_series(positions, template="MR_small.dcm", row=..., col=..., spacing=...,
    instance_numbers=..., extra=[{keyword: value}, ...])`` returns ``(key, dataset)``
    items; each dataset is written to bytes and read back with ``read_dataset``. Slice
    ``i`` has the template's pixels plus ``10 * i`` so slices can be told apart.
    """

    def factory(
        positions: Sequence[Sequence[float]],
        *,
        template: str = "MR_small.dcm",
        row: Sequence[float] = (1.0, 0.0, 0.0),
        col: Sequence[float] = (0.0, 1.0, 0.0),
        spacing: Sequence[float] | None = None,
        instance_numbers: Sequence[int] | None = None,
        extra: Sequence[dict[str, object]] | None = None,
        series_uid: str | None = None,
    ) -> list[tuple[str, Dataset]]:
        base = pydicom.dcmread(data_path(template))
        pixels = base.pixel_array
        series = series_uid or generate_uid()
        items = []
        for i, position in enumerate(positions):
            ds = copy.deepcopy(base)
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.SeriesInstanceUID = series
            ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
            ds.ImageOrientationPatient = [f"{v:.8f}" for v in [*row, *col]]
            if spacing is not None:
                ds.PixelSpacing = [f"{v:.6f}" for v in spacing]
            ds.InstanceNumber = instance_numbers[i] if instance_numbers else i + 1
            ds.PixelData = (pixels + 10 * i).astype(pixels.dtype).tobytes()
            for keyword, value in (extra[i] if extra else {}).items():
                setattr(ds, keyword, value)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            key = f"slice{i:03d}.dcm"
            items.append((key, read_dataset(buffer.getvalue(), name=key)))
        return items

    return factory


def to_bytes(ds: Dataset) -> bytes:
    """Serialise a data set as a DICOM file."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
