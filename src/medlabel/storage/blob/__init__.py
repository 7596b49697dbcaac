"""Content-addressed blob stores."""

from medlabel.storage.blob.base import BlobRef, BlobStore
from medlabel.storage.blob.local import LocalBlobStore

__all__ = ["BlobRef", "BlobStore", "LocalBlobStore"]
