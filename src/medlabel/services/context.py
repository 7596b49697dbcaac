"""The wired-up application: settings, database, blob store and caches."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from medlabel.core.settings import Settings
from medlabel.services.volumes import VolumeCache
from medlabel.storage.blob import BlobStore, LocalBlobStore
from medlabel.storage.db.engine import Database
from medlabel.storage.db.migrate import upgrade

log = logging.getLogger(__name__)


@dataclass
class Context:
    """Everything a service function needs; built once by :func:`open_context`."""

    settings: Settings
    db: Database
    blobs: BlobStore
    volumes: VolumeCache = field(init=False)

    def __post_init__(self) -> None:
        self.volumes = VolumeCache(self.blobs, max_bytes=self.settings.volume_cache_bytes)

    def close(self) -> None:
        self.db.dispose()


def open_context(settings: Settings, *, migrate: bool = True) -> Context:
    """Create the data folders, open the database (migrating it to the newest schema)
    and the blob store."""
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    db = Database(settings.resolved_database_url)
    if migrate:
        upgrade(db.engine)
    blobs = LocalBlobStore(settings.resolved_blob_dir)
    log.debug("opened medlabel home %s", settings.home)
    return Context(settings=settings, db=db, blobs=blobs)
