"""The running state of an import or of a background import's build: a work folder,
the de-identifier, and the blobs written on the way — removed again unless committed."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medlabel.security.deid import Deidentifier, DeidOptions, DeidReport
from medlabel.services.blobrefs import BlobTransaction
from medlabel.services.context import Context
from medlabel.services.imports.model import ImportOptions, Run
from medlabel.storage.db.models import Project


@contextlib.contextmanager
def import_run(
    ctx: Context, project: Project, options: ImportOptions, *, prefix: str
) -> Iterator[Run]:
    """A :class:`Run` with a fresh work folder under the home's ``tmp``.

    On success the new blobs nothing refers to (files of duplicates) are deleted; on any
    error every new blob no committed row refers to is; the work folder goes either way.
    """
    deid = Deidentifier(project.deid_secret, DeidOptions.model_validate(project.deid_options))
    tmp_root = ctx.settings.home / "tmp"
    tmp_root.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=tmp_root))
    run = Run(ctx, project, options, deid, DeidReport(deid.options),
              BlobTransaction(ctx.blobs), workdir)  # fmt: skip
    try:
        yield run
        with ctx.db.read() as s:  # e.g. files of duplicate instances
            run.blobs.release_unreferenced(s)
    except BaseException:
        with ctx.db.read() as s:
            run.blobs.rollback(s)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
