"""Finding the files to import: folders walked, zips unpacked once, types sniffed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medlabel.core.errors import InvalidInputError, MedlabelError
from medlabel.io.archive import extract_zip
from medlabel.io.sniff import FileKind, iter_files, sniff
from medlabel.services.imports.model import OnError, Run, Source


def scan(paths: Sequence[Path], run: Run) -> list[Source]:
    """Every file to import, with zips (given, or found in folders) unpacked once into
    the run's work folder. Zips inside zips are reported, not unpacked."""
    settings = run.ctx.settings
    sources: list[Source] = []
    zips = 0

    def unpack(archive: Path, name: str) -> None:
        nonlocal zips
        zips += 1
        dest = run.workdir / f"zip{zips}"
        try:
            extract_zip(
                archive,
                dest,
                max_members=settings.max_archive_members,
                max_total_bytes=settings.max_archive_bytes,
                max_ratio=settings.max_archive_ratio,
            )
        except MedlabelError as exc:
            if run.options.on_error == OnError.FAIL:
                raise
            run.problem(name, exc.message, exc.status_code)
            return
        for path in iter_files([dest]):
            kind = sniff(path)
            member = f"{name}/{path.relative_to(dest)}"
            if kind == FileKind.ZIP:
                run.problem(member, "zip files inside a zip are not unpacked")
            else:
                sources.append(Source(path, member, kind))

    for given in paths:
        if not given.exists():
            raise InvalidInputError(f"{given}: no such file or folder")
        root = given if given.is_dir() else given.parent
        for path in iter_files([given]):
            kind = sniff(path)
            name = str(path.relative_to(root))
            if kind == FileKind.ZIP:
                unpack(path, name)
            else:
                sources.append(Source(path, name, kind))
    run.counts["files"] = len(sources)
    return sources
