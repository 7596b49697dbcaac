"""The C-STORE receiver's network part (medlabel.io.dimse) without a database: the spool's
batching rules, then real associations from dcmtk's storescu/echoscu and pynetdicom."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from medlabel.io.dimse import Batch, Peer, Refusal, RejectReason, Spool, StorageSCP
from tests.conftest import sample_file
from tests.support import dcmtk

PEER = Peer("ROUTE", "SENDER", "127.0.0.1")


class Collected:
    """The batches a spool reported, with a way to wait for them."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self._cond = threading.Condition()

    def __call__(self, batch: Batch) -> None:
        with self._cond:
            self.batches.append(batch)
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = 30.0) -> list[Batch]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.batches) >= n, timeout), self.batches
            return list(self.batches)


def _content(path: Path) -> pydicom.Dataset:
    """A file's data set without group lengths and padding (a sender may drop those)."""
    ds = pydicom.dcmread(path)
    for elem in list(ds.iterall()):
        if elem.tag.element == 0 or elem.keyword == "DataSetTrailingPadding":
            del ds[elem.tag]
    return ds


def _received_as_sent(received: list[Path], sent: list[Path]) -> bool:
    def key(ds: pydicom.Dataset) -> str:
        return str(ds.SOPInstanceUID)

    a = sorted(map(_content, received), key=key)
    b = sorted(map(_content, sent), key=key)
    return len(a) == len(b) and all(x == y for x, y in zip(a, b, strict=True))


# the spool --------------------------------------------------------------------------------
def test_spool_refuses_a_non_positive_idle_time(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="idle_seconds"):
        Spool(tmp_path, lambda b: None, idle_seconds=0)


def test_a_batch_is_complete_when_its_last_association_ends(tmp_path: Path) -> None:
    got = Collected()
    spool = Spool(tmp_path / "s", got, idle_seconds=60)
    spool.add(1, PEER, "1.2.3", b"a")
    spool.add(2, PEER, "1.2.3", b"b")  # a second association delivers into the same study
    spool.add(1, PEER, "1.2.4", b"c")  # another study: another batch
    spool.ended(1)
    assert [b.files for b in got.batches] == [1]  # study 1.2.4; 1.2.3 still receives
    spool.ended(2)
    spool.ended(2)  # idempotent
    first, second = got.batches
    assert second.files == 2 and [p.read_bytes() for p in second.paths] == [b"a", b"b"]
    assert first.folder.parent == spool.ready_dir and not any(spool.incoming.iterdir())
    meta = json.loads((second.folder / "batch.json").read_text())
    assert meta["peer"]["called_ae"] == "ROUTE"
    # folder and file names carry no value from the data
    assert "1.2.3" not in second.id and all(p.name[:6].isdigit() for p in second.paths)


def test_an_idle_batch_is_complete_while_its_association_stays_open(tmp_path: Path) -> None:
    got = Collected()
    spool = Spool(tmp_path / "s", got, idle_seconds=5)
    spool.add(1, PEER, "1.2.3", b"a")
    assert spool.check_idle() == 0  # not idle yet
    import time

    assert spool.check_idle(now=time.monotonic() + 5) == 1
    spool.add(1, PEER, "1.2.3", b"b")  # later instances of the study start a new batch
    spool.ended(1)
    assert [b.files for b in got.batches] == [1, 1]
    assert got.batches[0].id != got.batches[1].id


def test_flush_recover_done_and_quarantine(tmp_path: Path) -> None:
    got = Collected()
    spool = Spool(tmp_path / "s", got)
    spool.add(1, PEER, "1.2.3", b"a")
    (next(spool.incoming.iterdir()) / "000009.part").write_bytes(b"half")  # a crash mid-write
    # a new process finds what the old one left, completed or not
    again = Spool(tmp_path / "s", got)
    (left,) = again.recover()
    assert left.files == 1 and left.peer == PEER and not list(left.folder.glob("*.part"))
    where = again.quarantine(left, "could not be read", [("000001.dcm", "bad header")])
    reason = json.loads((where / "reason.json").read_text())
    assert reason["files"] == [{"file": "000001.dcm", "reason": "bad header"}]
    assert (where / "000001.dcm").read_bytes() == b"a" and not left.folder.exists()
    # flush completes open batches
    spool = Spool(tmp_path / "t", got)
    spool.add(2, PEER, "1.2.5", b"x")
    spool.flush()
    (batch,) = got.batches
    spool.done(batch)
    assert not batch.folder.exists() and not any(spool.ready_dir.iterdir())


def test_a_failed_write_is_not_counted(tmp_path: Path) -> None:
    got = Collected()
    spool = Spool(tmp_path / "s", got)
    spool.add(1, PEER, "1.2.3", b"a")
    folder = next(spool.incoming.iterdir())
    (folder / "000002.part").mkdir()  # the next write cannot create its file
    with pytest.raises(OSError):
        spool.add(1, PEER, "1.2.3", b"b")
    spool.add(1, PEER, "1.2.3", b"c")
    spool.ended(1)
    (batch,) = got.batches
    assert batch.files == 2 and [p.read_bytes() for p in batch.paths] == [b"a", b"c"]


# the SCP ----------------------------------------------------------------------------------
def test_scp_validates_its_title_and_port(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", lambda b: None)
    with pytest.raises(ValueError, match="AE title"):
        StorageSCP(spool, lambda p: None, ae_title="A" * 17)
    with pytest.raises(ValueError, match="port"):
        StorageSCP(spool, lambda p: None, port=70000)


def _gate(peer: Peer) -> Refusal | None:
    if peer.called_ae != "ROUTE":
        return Refusal(f"no route for {peer.called_ae}")
    if peer.calling_ae == "INTRUDER":
        return Refusal("not allowed", RejectReason.CALLING_AE)
    return None


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[StorageSCP, Collected]]:
    got = Collected()
    spool = Spool(tmp_path / "spool", got, idle_seconds=60)
    scp = StorageSCP(spool, _gate, ae_title="MEDLABEL", port=0)
    scp.start()
    yield scp, got
    scp.stop()


def test_pynetdicom_store_abort_and_idle(tmp_path: Path) -> None:
    """An association that stays open: its study is complete after the idle time; an
    aborted association's instances are kept."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

    got = Collected()
    spool = Spool(tmp_path / "spool", got, idle_seconds=0.2)
    scp = StorageSCP(spool, _gate, port=0)
    scp.start()
    spool.start()
    try:
        ae = AE(ae_title="SENDER")
        ae.add_requested_context(CTImageStorage)
        ds = pydicom.dcmread(sample_file("CT_small.dcm"))
        assoc = ae.associate("127.0.0.1", scp.port, ae_title="ROUTE")
        assert assoc.is_established
        assert assoc.send_c_store(ds).Status == 0
        (batch,) = got.wait(1)  # idle: complete while the association is open
        assert assoc.is_established and batch.files == 1
        assert assoc.send_c_store(ds).Status == 0
        assoc.abort()
        batches = got.wait(2)
        assert batches[1].files == 1
    finally:
        scp.stop()
        spool.stop()


@pytest.mark.services
def test_storescu_series_arrives_as_one_batch_as_sent(
    receiver: tuple[StorageSCP, Collected], ct_series: Path
) -> None:
    dcmtk.require_dcmtk()
    scp, got = receiver
    files = sorted(ct_series.iterdir())
    (result,) = dcmtk.store(scp.port, "ROUTE", files)
    assert result.ok, result.output
    (batch,) = got.wait(1)
    assert batch.files == 5 and batch.peer.calling_ae == "STORESCU"
    assert batch.peer.called_ae == "ROUTE" and batch.peer.host == "127.0.0.1"
    assert _received_as_sent(batch.paths, files)


@pytest.mark.services
def test_unknown_called_or_calling_ae_is_rejected(
    receiver: tuple[StorageSCP, Collected], caplog: pytest.LogCaptureFixture
) -> None:
    dcmtk.require_dcmtk()
    scp, got = receiver
    file = sample_file("CT_small.dcm")
    (result,) = dcmtk.store(scp.port, "NOWHERE", [file])
    assert not result.ok and "Called AE Title Not Recognized" in result.output
    (result,) = dcmtk.store(scp.port, "ROUTE", [file], calling="INTRUDER")
    assert not result.ok and "Calling AE Title Not Recognized" in result.output
    assert "no route for NOWHERE" in caplog.text and "rejected" in caplog.text
    # the receiver's own title answers C-ECHO but stores nothing without a route
    assert dcmtk.echo(scp.port, "MEDLABEL").ok
    (result,) = dcmtk.store(scp.port, "MEDLABEL", [file])
    assert not result.ok
    scp.spool.flush()
    assert got.batches == [] and not any(scp.spool.incoming.iterdir())


@pytest.mark.services
def test_echo_to_a_routed_title(receiver: tuple[StorageSCP, Collected]) -> None:
    dcmtk.require_dcmtk()
    scp, _ = receiver
    assert dcmtk.echo(scp.port, "ROUTE").ok
    assert not dcmtk.echo(scp.port, "NOWHERE").ok


@pytest.mark.services
@pytest.mark.parametrize(
    "name",
    ["SC_rgb_jpeg_dcmtk.dcm", "US1_J2KR.dcm", "MR_small_RLE.dcm", "JPEGLSNearLossless_16.dcm"],
)
def test_compressed_files_are_received_as_sent(
    receiver: tuple[StorageSCP, Collected], name: str
) -> None:
    dcmtk.require_dcmtk()
    scp, got = receiver
    file = sample_file(name)
    (result,) = dcmtk.store(scp.port, "ROUTE", [file])
    assert result.ok, result.output
    (batch,) = got.wait(1)
    (path,) = batch.paths
    sent, received = pydicom.dcmread(file), pydicom.dcmread(path)
    assert received.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
    assert _received_as_sent([path], [file])
