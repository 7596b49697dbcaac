"""A C-STORE SCP (pynetdicom) that writes what it receives to a :class:`Spool`.

It accepts every storage SOP class with the uncompressed, deflated and compressed
(JPEG, JPEG-LS, JPEG 2000, RLE, ...) transfer syntaxes pynetdicom knows, and
Verification (C-ECHO). Before an association is accepted a *gate* decides whether the
called AE title, the calling AE title and the sender's address may deliver; a refused
association is rejected with the matching A-ASSOCIATE-RJ reason, and the refusal is
logged. Each C-STORE only writes the received bytes to the spool (no decoding of pixels,
no database): importing happens elsewhere once a batch is complete.

pynetdicom's own DIMSE logging (which would print SOP Instance UIDs) is switched off for
this server; what this module logs names AE titles, addresses and counts, never values
from the data.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from pydicom import Dataset

from medlabel.core.optional import require
from medlabel.io.dimse.spool import Peer, Spool

if TYPE_CHECKING:
    from pynetdicom import AE
    from pynetdicom.association import Association
    from pynetdicom.events import Event
    from pynetdicom.transport import ThreadedAssociationServer

log = logging.getLogger(__name__)

#: C-STORE statuses (PS3.4 B.2.3 and PS3.7 C)
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
NOT_AUTHORIZED = 0x0124


class RejectReason(IntEnum):
    """Why an association is rejected (A-ASSOCIATE-RJ diagnostic, service user)."""

    NO_REASON = 0x01
    CALLING_AE = 0x03
    CALLED_AE = 0x07


@dataclass(frozen=True)
class Refusal:
    """A gate's answer when a peer may not deliver: why (logged, and sent in the error
    comment of refused C-STOREs) and the rejection reason for the peer."""

    reason: str
    diagnostic: RejectReason = RejectReason.CALLED_AE


#: decides about a requested association: None to accept it
Gate = Callable[[Peer], Refusal | None]


@dataclass
class _Association:
    token: int
    peer: Peer
    refusal: Refusal | None = None  # verification only (the receiver's own AE title)
    received: int = 0
    refused: int = 0
    ended: bool = field(default=False)


def _peer(assoc: Association) -> Peer:
    rq = assoc.requestor.primitive
    called = str(getattr(rq, "called_ae_title", "") or "").strip()
    calling = str(getattr(rq, "calling_ae_title", "") or "").strip()
    return Peer(called, calling, str(assoc.requestor.address), int(assoc.requestor.port))


def _failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    return ds


class StorageSCP:
    """The C-STORE receiver.

    Parameters
    ----------
    spool : Spool
        Where received instances go.
    gate : callable
        ``gate(peer)`` returns None to accept an association, or a :class:`Refusal`.
        Associations to ``ae_title`` itself that the gate refuses are accepted for
        C-ECHO only (their C-STOREs fail with status 0x0124, "not authorized"), so the
        receiver can be checked with ``echoscu`` before any route exists.
    ae_title : str
        The receiver's own AE title.
    host, port : str, int
        Where to listen (port 0: any free port, see :attr:`port`).

    Examples
    --------
    >>> from pathlib import Path
    >>> import tempfile
    >>> spool = Spool(Path(tempfile.mkdtemp()) / "spool", on_ready=lambda batch: None)
    >>> scp = StorageSCP(spool, gate=lambda peer: None, port=0)
    >>> scp.start(); scp.port > 0
    True
    >>> scp.stop()
    """

    def __init__(
        self,
        spool: Spool,
        gate: Gate,
        *,
        ae_title: str = "MEDLABEL",
        host: str = "127.0.0.1",
        port: int = 11112,
    ) -> None:
        title = ae_title.strip()
        if not 1 <= len(title) <= 16 or "\\" in title:
            raise ValueError(f"an AE title has 1 to 16 characters and no backslash: {ae_title!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, got {port}")
        self.spool = spool
        self.gate = gate
        self.ae_title = title
        self.host = host
        self._port = port
        self._server: ThreadedAssociationServer | None = None
        self._lock = threading.Lock()
        self._associations: dict[int, _Association] = {}
        self._tokens = 0

    @property
    def port(self) -> int:
        """The port listened on (the one asked for, or the free one picked for 0)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._port

    @property
    def running(self) -> bool:
        return self._server is not None

    def _ae(self) -> AE:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        ae = AE(ae_title=self.ae_title)
        for cx in AllStoragePresentationContexts:
            assert cx.abstract_syntax is not None
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
        ae.maximum_associations = 16
        ae.network_timeout = 60
        ae.acse_timeout = 30
        ae.dimse_timeout = 120
        return ae

    def start(self) -> None:
        """Listen (in background threads) until :meth:`stop`.

        Raises
        ------
        OSError
            When the address cannot be bound (e.g. the port is taken).
        MissingDependencyError
            When pynetdicom (extra ``pacs``) is not installed.
        """
        require("pynetdicom", extra="pacs", feature="the DICOM receiver")
        from pynetdicom import evt

        if self._server is not None:
            return
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, self._on_open),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_RELEASED, self._on_ended),
            (evt.EVT_ABORTED, self._on_ended),
            (evt.EVT_CONN_CLOSE, self._on_ended),
        ]
        server = self._ae().start_server(
            (self.host, self._port), block=False, evt_handlers=handlers
        )
        assert server is not None
        self._server = server
        log.info("DICOM receiver %s listening on %s:%d", self.ae_title, self.host, self.port)

    def stop(self) -> None:
        """Stop listening and end open associations (what they delivered stays in the
        spool)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            log.info("DICOM receiver %s stopped", self.ae_title)

    # event handlers (run in the association's thread) ---------------------------------------
    def _state(self, assoc: Association) -> _Association | None:
        with self._lock:
            return self._associations.get(id(assoc))

    def _on_open(self, event: Event) -> None:
        """Before the association starts: switch off pynetdicom's standard handlers,
        which log every PDU and DIMSE message with its UIDs."""
        from pynetdicom import _handlers, evt

        for kind, handler in (
            (evt.EVT_DIMSE_RECV, _handlers.standard_dimse_recv_handler),
            (evt.EVT_DIMSE_SENT, _handlers.standard_dimse_sent_handler),
            (evt.EVT_PDU_RECV, _handlers.standard_pdu_recv_handler),
            (evt.EVT_PDU_SENT, _handlers.standard_pdu_sent_handler),
        ):
            event.assoc.unbind(kind, handler)

    def _on_requested(self, event: Event) -> None:
        assoc = event.assoc
        peer = _peer(assoc)
        try:
            refusal = self.gate(peer)
        except Exception:
            log.exception("DICOM association %s: the route check failed", peer.describe())
            refusal = Refusal("the route check failed", RejectReason.NO_REASON)
        with self._lock:
            self._tokens += 1
            state = _Association(self._tokens, peer)
            self._associations[id(assoc)] = state
        if refusal is None:
            log.info("DICOM association %s accepted", peer.describe())
            return
        if peer.called_ae == self.ae_title and refusal.diagnostic == RejectReason.CALLED_AE:
            state.refusal = refusal
            log.info("DICOM association %s accepted for verification only: %s",
                     peer.describe(), refusal.reason)  # fmt: skip
            return
        log.warning("DICOM association %s rejected: %s", peer.describe(), refusal.reason)
        state.ended = True
        assoc.acse.send_reject(0x01, 0x01, int(refusal.diagnostic))
        assoc.kill()  # as pynetdicom does after its own rejections

    def _on_echo(self, event: Event) -> int:
        return SUCCESS

    def _on_store(self, event: Event) -> int | Dataset:
        state = self._state(event.assoc)
        if state is None or state.ended:
            return _failure(NOT_AUTHORIZED, "association not accepted")
        if state.refusal is not None:
            state.refused += 1
            return _failure(NOT_AUTHORIZED, state.refusal.reason)
        try:
            study_uid = str(event.dataset.get("StudyInstanceUID", "") or "")
            data = event.encoded_dataset(include_meta=True)
        except Exception as exc:  # noqa: BLE001 - any malformed data set is refused
            state.refused += 1
            log.warning("DICOM association %s: a data set could not be decoded (%s)",
                        state.peer.describe(), type(exc).__name__)  # fmt: skip
            return _failure(CANNOT_UNDERSTAND, "the data set could not be decoded")
        try:
            self.spool.add(state.token, state.peer, study_uid, data)
        except OSError as exc:
            state.refused += 1
            log.error("DICOM association %s: could not spool an instance (%s)",
                      state.peer.describe(), exc.strerror or type(exc).__name__)  # fmt: skip
            return _failure(OUT_OF_RESOURCES, "could not store the instance")
        state.received += 1
        return SUCCESS

    def _on_ended(self, event: Event) -> None:
        with self._lock:
            state = self._associations.get(id(event.assoc))
            if state is not None and event.event.name == "EVT_CONN_CLOSE":
                del self._associations[id(event.assoc)]
            if state is None:
                return
            first = not state.ended
            state.ended = True
        if first and state.refusal is None:
            log.info("DICOM association %s ended: %d instance(s) received, %d refused",
                     state.peer.describe(), state.received, state.refused)  # fmt: skip
        self.spool.ended(state.token)
