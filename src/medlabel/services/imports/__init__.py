"""Importing files, folders and zips into a project: read → de-identify → store.

The pipeline works in three stages so that a large import neither holds the database's
write lock for long nor keeps all pixels in memory:

1. *scan* (:mod:`.scan`): expand folders and zips and sniff every file;
2. *stage* (:mod:`.staging`): DICOM files are read, de-identified and stored as blobs by
   :func:`.worker.prepare_dicom` — in parallel worker processes for large imports —
   then grouped into series and built into volumes one series at a time; NIfTI and
   raster files become one image each; pixel arrays and thumbnails are written as blobs;
3. *commit* (:mod:`.commit`): one short transaction inserts studies, series, instances,
   images and the import record with its report.

By default any unreadable file fails the whole import and nothing is stored (blobs
written while staging are removed). With ``on_error=skip`` bad files are reported and
the rest is stored.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medlabel.services.imports.model import ImportOptions, ImportSummary, OnError, Problem
    from medlabel.services.imports.pipeline import get_import, import_paths, list_imports
    from medlabel.services.imports.staging import default_window

# Import worker processes load only .worker; the pipeline (database, imaging) is
# imported on first use (PEP 562), so their start-up stays short.
_EXPORTS = {
    "ImportOptions": "model",
    "ImportSummary": "model",
    "OnError": "model",
    "Problem": "model",
    "get_import": "pipeline",
    "import_paths": "pipeline",
    "list_imports": "pipeline",
    "default_window": "staging",
}

__all__ = [
    "ImportOptions",
    "ImportSummary",
    "OnError",
    "Problem",
    "default_window",
    "get_import",
    "import_paths",
    "list_imports",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
