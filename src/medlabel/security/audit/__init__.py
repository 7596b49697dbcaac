"""The audit log: an append-only, hash-chained record of reads of image data, changes,
logins, exports and permission changes (who, what, when, from where).

- :func:`record` appends an event inside the caller's transaction;
- :class:`ImageReadLog` coalesces image reads into one event per user, image and kind
  per time window;
- :func:`verify_chain` recomputes the chain and reports the first broken row;
- :mod:`.query` lists and exports events.

No event holds patient identifiers: details are ids of our own rows, counts, formats
and status codes.
"""

from medlabel.security.audit.actions import AuditAction, ImageReadKind
from medlabel.security.audit.chain import GENESIS, Break, VerifyResult, event_hash, verify_chain
from medlabel.security.audit.log import (
    Actor,
    Origin,
    changed,
    origin,
    origin_scope,
    record,
    set_origin,
)
from medlabel.security.audit.reads import ImageReadLog

__all__ = [
    "GENESIS",
    "Actor",
    "AuditAction",
    "Break",
    "ImageReadKind",
    "ImageReadLog",
    "Origin",
    "VerifyResult",
    "changed",
    "event_hash",
    "origin",
    "origin_scope",
    "record",
    "set_origin",
    "verify_chain",
]
