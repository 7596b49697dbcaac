"""Content-addressed blob stores."""

from medlabel.storage.blob.base import (
    BlobIntegrityError,
    BlobRef,
    BlobStat,
    BlobStore,
    BlobStoreError,
)
from medlabel.storage.blob.local import LocalBlobStore

__all__ = [
    "BlobIntegrityError",
    "BlobRef",
    "BlobStat",
    "BlobStore",
    "BlobStoreError",
    "LocalBlobStore",
]
