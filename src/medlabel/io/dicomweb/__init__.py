"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS) client for PACS connections.

Needs the ``[pacs]`` extra (``requests``, through ``dicomweb-client``), imported when a
client is built.
"""

from medlabel.io.dicomweb.client import (
    AuthKind,
    DicomwebAuth,
    DicomwebClient,
    StoreResult,
    StudyMatch,
    StudyQuery,
    check_url,
)
from medlabel.io.dicomweb.multipart import Part, boundary_of, encode_related, iter_parts

__all__ = [
    "AuthKind",
    "DicomwebAuth",
    "DicomwebClient",
    "Part",
    "StoreResult",
    "StudyMatch",
    "StudyQuery",
    "boundary_of",
    "check_url",
    "encode_related",
    "iter_parts",
]
