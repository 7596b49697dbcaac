"""Backups, restores and database moves (issue 7, operations).

- :func:`create_backup` / :func:`restore_backup` / :func:`verify_backup`: one portable
  archive with the rows of every table (one snapshot) and the blobs they refer to.
- :func:`copy_database`: every row of one database into another (SQLite → PostgreSQL).

Both restore and copy insert rows with :class:`~medlabel.services.backup.rows.RowWriter`.
"""

from medlabel.services.backup.archive import (
    BackupReport,
    Manifest,
    RestoreReport,
    create_backup,
    read_manifest,
    restore_backup,
    verify_backup,
)
from medlabel.services.backup.migrate import CopyReport, copy_database, display_url

__all__ = [
    "BackupReport",
    "CopyReport",
    "Manifest",
    "RestoreReport",
    "copy_database",
    "create_backup",
    "display_url",
    "read_manifest",
    "restore_backup",
    "verify_backup",
]
