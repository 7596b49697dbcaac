"""The DICOM receiver: routes (who may send where), and studies sent by dcmtk's storescu
and by Orthanc arriving in the routed project through the import pipeline —
de-identified, grouped into series, without duplicates, bad files quarantined."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from medlabel.core.errors import (
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from medlabel.io.dimse import Batch, Peer, RejectReason, Spool
from medlabel.security.audit import AuditAction
from medlabel.security.roles import ProjectRole, Role
from medlabel.services.access import Principal
from medlabel.services.context import Context
from medlabel.services.projects import create_project, set_member
from medlabel.services.receiver import (
    Receiver,
    add_route,
    check_peer,
    find_route,
    import_batch,
    list_routes,
    remove_route,
    spool_root,
)
from medlabel.services.users import create_user, principal_of
from medlabel.storage.db.models import AuditEvent, Image, ImportRecord, Instance, Series, Study
from tests.conftest import sample_file
from tests.services.helpers import stored
from tests.services.test_no_identifiers_stored import FILES, _identifiers
from tests.support import dcmtk
from tests.support.orthanc import Orthanc
from tests.support.require import free_port


@pytest.fixture
def project(ctx: Context) -> int:
    return create_project(ctx, None, "Received").id


def _user(ctx: Context, name: str, role: Role = Role.REVIEWER) -> Principal:
    return principal_of(create_user(ctx, name, "correct horse battery", role))


# routes -----------------------------------------------------------------------------------
def test_route_titles_and_hosts_are_checked(ctx: Context, project: int) -> None:
    for bad in ("", " ", "A" * 17, "BACK\\SLASH", "TAB\tX", "ÄRZTE"):
        with pytest.raises(InvalidInputError, match="AE title"):
            add_route(ctx, None, project, bad)
    with pytest.raises(InvalidInputError, match="host name"):
        add_route(ctx, None, project, "CT", allowed_hosts=["pacs.example.org"])
    with pytest.raises(NotFoundError):
        add_route(ctx, None, 999, "CT")
    route = add_route(ctx, None, project, " CT_1 ", allowed_hosts=["10.1.2.3", "10.2.0.0/16"])
    assert route.ae_title == "CT_1" and route.allowed_hosts == ["10.1.2.3/32", "10.2.0.0/16"]
    with pytest.raises(ConflictError, match="already routes"):
        add_route(ctx, None, project, "CT_1")
    assert find_route(ctx, "CT_1") is not None and find_route(ctx, "ct_1") is None


def test_only_project_reviewers_manage_routes_and_it_is_audited(ctx: Context, project: int) -> None:
    rita = _user(ctx, "rita")
    anna = _user(ctx, "anna", Role.ANNOTATOR)
    set_member(ctx, None, project, rita.id, ProjectRole.REVIEWER)
    set_member(ctx, None, project, anna.id, ProjectRole.ANNOTATOR)
    other = create_project(ctx, None, "Other").id
    with pytest.raises(PermissionDeniedError):
        add_route(ctx, anna, project, "CT")
    with pytest.raises(NotFoundError):  # not a member: the project is not even named
        add_route(ctx, rita, other, "CT")
    route = add_route(ctx, rita, project, "CT", allowed_calling_aets=["MODALITY1"])
    add_route(ctx, None, other, "MR")
    assert [r.ae_title for r in list_routes(ctx, rita)] == ["CT"]
    assert list_routes(ctx, anna) == []
    assert [r.ae_title for r in list_routes(ctx, None)] == ["CT", "MR"]
    with pytest.raises(PermissionDeniedError):
        list_routes(ctx, anna, project)
    with pytest.raises(PermissionDeniedError):
        remove_route(ctx, anna, route.id)
    remove_route(ctx, rita, route.id)
    with pytest.raises(NotFoundError):
        remove_route(ctx, rita, route.id)
    with ctx.db.read() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.action.like("dicom_route%"))))
    assert [(r.action, r.actor) for r in rows] == [
        (AuditAction.DICOM_ROUTE_CREATE.value, "rita"),
        (AuditAction.DICOM_ROUTE_CREATE.value, ""),
        (AuditAction.DICOM_ROUTE_DELETE.value, "rita"),
    ]
    assert rows[0].details == {"ae_title": "CT", "calling_aets": 1, "hosts": 0}


def test_check_peer(ctx: Context, project: int) -> None:
    route = add_route(
        ctx, None, project, "CT", allowed_calling_aets=["MOD1"], allowed_hosts=["10.0.0.0/8"]
    )
    ok = Peer("CT", "MOD1", "10.1.2.3")
    assert check_peer(route, ok) is None
    assert check_peer(route, Peer("CT", "MOD1", "::ffff:10.1.2.3")) is None
    refusal = check_peer(route, Peer("CT", "MOD2", "10.1.2.3"))
    assert refusal is not None and refusal.diagnostic == RejectReason.CALLING_AE
    refusal = check_peer(route, Peer("CT", "MOD1", "192.168.1.1"))
    assert refusal is not None and refusal.diagnostic == RejectReason.NO_REASON
    refusal = check_peer(None, Peer("XX", "MOD1", "10.1.2.3"))
    assert refusal is not None and refusal.diagnostic == RejectReason.CALLED_AE
    assert "'XX'" in refusal.reason


# importing batches (no network) -----------------------------------------------------------
def _batch(
    ctx: Context, files: list[Path], called: str = "CT", extra: bytes | None = None
) -> tuple[Spool, Batch]:
    got: list[Batch] = []
    spool = Spool(spool_root(ctx), got.append)
    peer = Peer(called, "MOD1", "127.0.0.1")
    for path in files:
        spool.add(1, peer, "study", path.read_bytes())
    if extra is not None:
        spool.add(1, peer, "study", extra)
    spool.ended(1)
    (batch,) = got
    return spool, batch


def test_a_batch_is_imported_like_an_upload(ctx: Context, project: int, ct_series: Path) -> None:
    add_route(ctx, None, project, "CT")
    spool, batch = _batch(ctx, sorted(ct_series.iterdir()))
    outcome = import_batch(ctx, spool, batch)
    assert outcome.imported and outcome.images == 1 and outcome.quarantine is None
    assert not batch.folder.exists()
    with ctx.db.read() as s:
        record = s.get(ImportRecord, outcome.import_id)
        assert record is not None and record.project_id == project and record.user_id is None
        assert record.counts["instances"] == 5 and record.report["deidentification"]
        image = s.scalar(select(Image))
        assert image is not None and image.shape == [5, 16, 16]
        audit_row = s.scalar(select(AuditEvent).where(AuditEvent.action == "image.import"))
        assert audit_row is not None
        assert (audit_row.actor, audit_row.client) == ("dicom:CT", "dicom:MOD1@127.0.0.1")


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_unreadable_files_are_quarantined_and_the_rest_imported(
    ctx: Context, project: int, ct_series: Path
) -> None:
    add_route(ctx, None, project, "CT")
    junk = b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x00junk"  # a broken header
    spool, batch = _batch(ctx, sorted(ct_series.iterdir()), extra=junk)
    outcome = import_batch(ctx, spool, batch)
    assert outcome.imported and outcome.images == 1 and outcome.quarantine is not None
    reason = json.loads((outcome.quarantine / "reason.json").read_text())
    assert [f["file"] for f in reason["files"]] == ["000006.dcm"]
    assert (outcome.quarantine / "000006.dcm").read_bytes() == junk
    assert not batch.folder.exists()


def test_a_batch_that_cannot_be_imported_is_quarantined_whole(
    ctx: Context, project: int, ct_series: Path
) -> None:
    before = stored(ctx)
    # no route (e.g. removed after the transfer): nothing stored, all files kept
    spool, batch = _batch(ctx, sorted(ct_series.iterdir()), called="GONE")
    outcome = import_batch(ctx, spool, batch)
    assert not outcome.imported and outcome.quarantine is not None
    assert "no route" in json.loads((outcome.quarantine / "reason.json").read_text())["reason"]
    assert len(list(outcome.quarantine.glob("*.dcm"))) == 5
    # nothing importable: the import fails, nothing is stored, the files are kept
    add_route(ctx, None, project, "CT")
    spool, batch = _batch(ctx, [], extra=b"not dicom at all")
    outcome = import_batch(ctx, spool, batch)
    assert not outcome.imported and outcome.quarantine is not None
    assert "no importable images" in outcome.reason
    assert stored(ctx) == before


def test_receiver_needs_a_free_port(ctx: Context) -> None:
    with pytest.raises(ValueError, match="MEDLABEL_DICOM_PORT"):
        Receiver(ctx)  # dicom_port is not set
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        rx = Receiver(ctx, host="127.0.0.1", port=taken.getsockname()[1])
        with pytest.raises(ConfigurationError, match="cannot listen"):
            rx.start()
    rx.stop()  # harmless after a failed start


# real senders -----------------------------------------------------------------------------
@pytest.fixture
def receiver(ctx: Context) -> Iterator[Receiver]:
    dcmtk.require_dcmtk()
    rx = Receiver(ctx, host="127.0.0.1", port=free_port(), ae_title="MEDLABEL", idle_seconds=60)
    rx.start()
    yield rx
    rx.stop()


@pytest.mark.services
def test_storescu_study_arrives_de_identified_once(
    ctx: Context, project: int, receiver: Receiver, ct_series: Path, tmp_path: Path
) -> None:
    add_route(ctx, None, project, "CT_ROUTE")
    files = sorted(ct_series.iterdir())
    (result,) = dcmtk.store(receiver.port, "CT_ROUTE", files)
    assert result.ok, result.output
    assert receiver.wait(1, timeout=120)
    (first,) = receiver.outcomes
    assert first.imported and first.images == 1 and first.project_id == project
    originals = [pydicom.dcmread(p) for p in files]
    with ctx.db.read() as s:
        (series,) = s.scalars(select(Series))
        (study,) = s.scalars(select(Study))
        uids = set(s.scalars(select(Instance.sop_uid)))
    assert series.modality == "CT" and len(uids) == 5
    assert study.study_uid != str(originals[0].StudyInstanceUID)
    assert not uids & {str(d.SOPInstanceUID) for d in originals}
    assert study.patient_pseudonym != str(originals[0].PatientID)
    # the same study again (a re-send): recognised, nothing new stored
    before = stored(ctx)
    (result,) = dcmtk.store(receiver.port, "CT_ROUTE", files)
    assert result.ok, result.output
    assert receiver.wait(2, timeout=120)
    second = receiver.outcomes[1]
    assert second.images == 0 and second.duplicates == 5
    after = stored(ctx)
    assert {k: v for k, v in after.items() if k != "imports"} == {
        k: v for k, v in before.items() if k != "imports"
    }
    assert after["imports"] == before["imports"] + 1
    assert not any(spool_root(ctx).joinpath("ready").iterdir())


@pytest.mark.services
def test_unknown_ae_is_rejected_and_nothing_stored(
    ctx: Context, project: int, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    add_route(ctx, None, project, "CT_ROUTE", allowed_calling_aets=["GOOD"])
    before = stored(ctx)
    file = sample_file("CT_small.dcm")
    (result,) = dcmtk.store(receiver.port, "NO_SUCH_AE", [file])
    assert "Called AE Title Not Recognized" in result.output
    (result,) = dcmtk.store(receiver.port, "CT_ROUTE", [file], calling="BAD")
    assert "Calling AE Title Not Recognized" in result.output
    assert "no route for called AE title 'NO_SUCH_AE'" in caplog.text
    assert "calling AE title 'BAD' may not send" in caplog.text
    assert dcmtk.echo(receiver.port, "MEDLABEL").ok  # verification without a route
    assert dcmtk.echo(receiver.port, "CT_ROUTE", calling="GOOD").ok
    receiver.stop()
    assert stored(ctx) == before and list(receiver.outcomes) == []


@pytest.mark.services
def test_compressed_study_is_decoded_on_import(
    ctx: Context, project: int, receiver: Receiver
) -> None:
    add_route(ctx, None, project, "US")
    (result,) = dcmtk.store(receiver.port, "US", [sample_file("US1_J2KR.dcm")])
    assert result.ok, result.output
    assert receiver.wait(1, timeout=120)
    (outcome,) = receiver.outcomes
    assert outcome.imported and outcome.images == 1, outcome
    with ctx.db.read() as s:
        image = s.scalar(select(Image))
    assert image is not None and image.modality == "US" and image.channels == 3


@pytest.mark.services
def test_identifiers_reach_neither_database_blobs_nor_logs(
    ctx: Context, project: int, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """As tests/services/test_no_identifiers_stored.py checks for uploads: the receiver's
    own log lines (AE titles, batches, counts) and pynetdicom's hold no identifier."""
    add_route(ctx, None, project, "ALL")
    paths = [sample_file(f) for f in FILES]
    secrets = _identifiers(paths)
    assert len(secrets) > 20
    caplog.set_level(logging.DEBUG)
    results = dcmtk.store(receiver.port, "ALL", paths)
    assert all(r.ok for r in results), [r.output for r in results]
    assert receiver.wait(1, timeout=300)
    receiver.stop()  # every open batch imported
    outcomes = list(receiver.outcomes)
    assert sum(o.images for o in outcomes) == len(FILES), outcomes
    assert all(o.quarantine is None for o in outcomes)
    blobs = [ctx.blobs.read_bytes(d) for d in ctx.blobs.iter_digests()]
    if ctx.db.url.startswith("sqlite"):  # every byte of the database file
        db_file = ctx.settings.home / "medlabel.db"
        ctx.db.dispose()
        with sqlite3.connect(db_file) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        blobs.append(db_file.read_bytes())
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "DICOM batch" in logs and "imported into project" in logs
    for secret in sorted(secrets):
        for data in blobs:
            assert secret.encode() not in data, f"{secret!r} stored"
        assert secret not in logs, f"{secret!r} logged"
    # nothing left in the spool (the originals)
    assert not any(spool_root(ctx).joinpath("ready").iterdir())
    assert not any(spool_root(ctx).joinpath("incoming").iterdir())


@pytest.mark.services
def test_batches_left_by_a_stopped_receiver_are_imported_at_the_next_start(
    ctx: Context, project: int, ct_series: Path
) -> None:
    add_route(ctx, None, project, "CT")
    ready = spool_root(ctx) / "ready" / "20260101T000000-leftover00"
    ready.mkdir(parents=True)
    for i, path in enumerate(sorted(ct_series.iterdir()), 1):
        shutil.copy(path, ready / f"{i:06d}.dcm")
    meta = {"peer": {"called_ae": "CT", "calling_ae": "MOD1", "host": "127.0.0.1", "port": 1}}
    (ready / "batch.json").write_text(json.dumps(meta))
    rx = Receiver(ctx, host="127.0.0.1", port=0)
    rx.start()
    try:
        assert rx.wait(1, timeout=120)
    finally:
        rx.stop()
    (outcome,) = rx.outcomes
    assert outcome.imported and outcome.images == 1 and not ready.exists()


@pytest.mark.services
def test_orthanc_sends_a_study_to_the_receiver(
    ctx: Context, project: int, receiver: Receiver, orthanc: Orthanc, ct_series: Path
) -> None:
    add_route(ctx, None, project, "FROM_PACS", allowed_calling_aets=[orthanc.aet])
    files = sorted(ct_series.iterdir())
    orthanc.clear()  # the Orthanc is shared by the session: other tests' copies of this study
    orthanc.upload(files)
    orthanc.add_modality("medlabel", "FROM_PACS", "127.0.0.1", receiver.port)
    orthanc.send(str(pydicom.dcmread(files[0]).StudyInstanceUID), "medlabel")
    assert receiver.wait(1, timeout=120)
    (outcome,) = receiver.outcomes
    assert outcome.imported and outcome.images == 1 and outcome.project_id == project
    with ctx.db.read() as s:
        assert len(list(s.scalars(select(Instance)))) == 5
