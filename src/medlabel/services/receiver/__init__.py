"""The DICOM receiver: routes (called AE title → project) and the C-STORE ingest path."""

from medlabel.services.receiver.receiver import BatchOutcome, Receiver, import_batch, spool_root
from medlabel.services.receiver.routes import (
    add_route,
    check_ae_title,
    check_peer,
    find_route,
    list_routes,
    remove_route,
)

__all__ = [
    "BatchOutcome",
    "Receiver",
    "add_route",
    "check_ae_title",
    "check_peer",
    "find_route",
    "import_batch",
    "list_routes",
    "remove_route",
    "spool_root",
]
