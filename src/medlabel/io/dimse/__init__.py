"""DICOM networking (DIMSE): a C-STORE receiver that spools what it is sent.

Nothing here touches the database: :class:`StorageSCP` asks a *gate* whether to accept
an association and hands received instances to a :class:`Spool`, which groups them into
batches (one per study, sender and called AE title) and reports each batch when it is
complete — when its association ends, or after an idle time.
"""

from medlabel.io.dimse.scp import Refusal, RejectReason, StorageSCP
from medlabel.io.dimse.spool import Batch, Peer, Spool

__all__ = ["Batch", "Peer", "Refusal", "RejectReason", "Spool", "StorageSCP"]
