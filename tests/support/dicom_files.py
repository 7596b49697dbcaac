"""The DICOM test files that installed packages ship: pydicom's and pydicom-data's."""

from __future__ import annotations

from pathlib import Path

from pydicom.data.data_manager import DATA_ROOT, DataTypes, external_data_sources


def pydicom_test_files(max_bytes: int = 2_000_000) -> list[Path]:
    """Every ``.dcm`` file of pydicom's test files and of pydicom-data (those under
    ``max_bytes``), sorted."""
    paths = sorted(p for p in Path(DATA_ROOT, "test_files").rglob("*.dcm") if p.is_file())
    for source in external_data_sources().values():
        paths += sorted(
            Path(p)
            for p in source.get_paths("*.dcm", DataTypes.DATASET)
            if Path(p).stat().st_size < max_bytes
        )
    return paths
