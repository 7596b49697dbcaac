"""The DICOMweb client: multipart parsing and validation offline, then QIDO/WADO/STOW
against a real Orthanc with its DICOMweb plugin."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydicom
import pytest

from medlabel.core.errors import (
    InvalidInputError,
    NotFoundError,
    RemoteServiceError,
    UnsupportedFormatError,
)
from medlabel.io.dicomweb import (
    AuthKind,
    DicomwebAuth,
    DicomwebClient,
    StudyQuery,
    boundary_of,
    check_url,
    encode_related,
    iter_parts,
)
from tests.support.orthanc import AUTH_PASSWORD, AUTH_USER, Orthanc
from tests.support.pacs_data import StudyFiles, ct_study, load
from tests.support.require import free_port


# offline: edge cases first ------------------------------------------------------------------
def _split(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 10_000])
def test_multipart_round_trip_whatever_the_chunking(tmp_path: Path, chunk: int) -> None:
    payloads = [b"", b"\r\n--not-the-boundary\r\n", bytes(range(256)) * 9, b"last"]
    body, ctype = encode_related(payloads)
    parts = list(
        iter_parts(_split(body, chunk), boundary_of(ctype), lambda i: tmp_path / f"{i}.bin")
    )
    assert [p.path.read_bytes() for p in parts] == payloads
    assert [p.size for p in parts] == [len(x) for x in payloads]
    assert all(p.content_type == "application/dicom" for p in parts)


def test_multipart_with_preamble_and_no_headers(tmp_path: Path) -> None:
    body = b"preamble text\r\n--b\r\n\r\nA\r\n--b\r\nContent-Type: x/y\r\n\r\nBB\r\n--b--\r\n"
    parts = list(iter_parts([body], "b", lambda i: tmp_path / str(i)))
    assert [(p.path.read_bytes(), p.content_type) for p in parts] == [(b"A", ""), (b"BB", "x/y")]


def test_multipart_truncated_is_an_error(tmp_path: Path) -> None:
    body, ctype = encode_related([b"abc"])
    with pytest.raises(UnsupportedFormatError, match="ended before"):
        list(iter_parts([body[:-12]], boundary_of(ctype), lambda i: tmp_path / str(i)))


@pytest.mark.parametrize(
    "ctype", ["application/dicom+json", "multipart/related; type=application/dicom"]
)
def test_boundary_missing(ctype: str) -> None:
    with pytest.raises(UnsupportedFormatError):
        boundary_of(ctype)


def test_quoted_boundary() -> None:
    assert boundary_of('multipart/related; boundary="a b;c"; type=x') == "a b;c"


@pytest.mark.parametrize(
    "url",
    ["", "ftp://pacs/dicom-web", "pacs:8042", "http://user:pw@pacs/dicom-web", "http://p/x?a=1"],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidInputError):
        check_url(url)


def test_auth_needs_its_credentials() -> None:
    with pytest.raises(ValueError, match="username"):
        DicomwebAuth(AuthKind.BASIC, secret="x")
    with pytest.raises(ValueError, match="token"):
        DicomwebAuth("bearer")
    assert DicomwebAuth("bearer", secret="t").headers() == {"Authorization": "Bearer t"}
    assert "s3cr3t" not in repr(DicomwebAuth("bearer", secret="s3cr3t"))


def test_query_parameters_and_validation() -> None:
    q = StudyQuery(
        patient_id="P1",
        accession="A1",
        modality="ct",
        date_from=dt.date(2001, 1, 1),
        date_to=dt.date(2001, 12, 31),
        description="*brain",
        limit=5,
        offset=10,
    )
    params = dict((k, v) for k, v in q.params() if k != "includefield")
    assert params == {
        "PatientID": "P1",
        "AccessionNumber": "A1",
        "ModalitiesInStudy": "CT",
        "StudyDate": "20010101-20011231",
        "StudyDescription": "*brain*",
        "limit": "5",
        "offset": "10",
    }
    assert dict(StudyQuery(date_to=dt.date(2001, 1, 1)).params())["StudyDate"] == "-20010101"
    for bad in (
        {"limit": 0},
        {"offset": -1},
        {"date_from": dt.date(2002, 1, 1), "date_to": dt.date(2001, 1, 1)},
        {"patient_id": "a\\b"},
    ):
        with pytest.raises(InvalidInputError):
            StudyQuery(**bad)  # type: ignore[arg-type]


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    client = DicomwebClient(f"http://127.0.0.1:{free_port()}/dicom-web", timeout=5)
    with pytest.raises(RemoteServiceError, match="cannot reach the PACS"):
        client.search_studies()
    with pytest.raises(InvalidInputError, match="not a DICOM UID"):
        client.retrieve(tmp_path, "1.2.x")


# against Orthanc ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def studies(orthanc: Orthanc) -> dict[str, StudyFiles]:
    return load(orthanc)


@pytest.fixture
def client(orthanc: Orthanc) -> DicomwebClient:
    return DicomwebClient(orthanc.dicomweb_url)


def _ours(found: list, studies: dict[str, StudyFiles]) -> set[str]:  # type: ignore[type-arg]
    """The sample studies among the matches (other tests may have added more)."""
    return {m.study_uid for m in found} & set(studies)


@pytest.mark.services
def test_search_by_each_filter(client: DicomwebClient, studies: dict[str, StudyFiles]) -> None:
    def expect(query: StudyQuery, keep: object) -> None:
        wanted = {uid for uid, s in studies.items() if keep(s)}  # type: ignore[operator]
        assert wanted, "the filter must select some sample study"
        assert _ours(client.search_studies(query), studies) == wanted

    expect(StudyQuery(patient_id="77654033"), lambda s: s.patient_id == "77654033")
    expect(StudyQuery(accession="134"), lambda s: s.accession == "134")
    expect(StudyQuery(modality="CR"), lambda s: "CR" in s.modalities)
    expect(StudyQuery(modality="mr"), lambda s: "MR" in s.modalities)
    expect(
        StudyQuery(date_from=dt.date(2000, 1, 1), date_to=dt.date(2002, 12, 31)),
        lambda s: "20000101" <= s.study_date <= "20021231",
    )
    expect(StudyQuery(date_from=dt.date(2003, 5, 5)), lambda s: s.study_date >= "20030505")
    expect(StudyQuery(date_to=dt.date(1999, 1, 1)), lambda s: s.study_date <= "19990101")
    expect(StudyQuery(description="brain"), lambda s: "brain" in s.description.lower())
    expect(
        StudyQuery(patient_id="98890234", modality="MR", description="Brain"),
        lambda s: s.patient_id == "98890234" and s.description.startswith("Brain"),
    )
    assert client.search_studies(StudyQuery(patient_id="no-such-patient")) == []


@pytest.mark.services
def test_search_reports_the_study_attributes(
    client: DicomwebClient, studies: dict[str, StudyFiles]
) -> None:
    ct = ct_study(studies)
    (match,) = client.search_studies(StudyQuery(patient_id=ct.patient_id, modality="CT"))
    assert match.study_uid == ct.study_uid
    assert match.patient_name == ct.patient_name and match.study_date == ct.study_date
    assert match.modalities == ["CT"]
    assert (match.series_count, match.instance_count) == (2, 7)
    assert client.find_study(ct.study_uid) == match
    assert client.find_study("1.2.3.4.5") is None


@pytest.mark.services
def test_paging(client: DicomwebClient, studies: dict[str, StudyFiles]) -> None:
    everything = client.search_studies(StudyQuery(limit=1000))
    pages = []
    for offset in range(0, len(everything), 2):
        pages += client.search_studies(StudyQuery(limit=2, offset=offset))
    assert sorted(m.study_uid for m in pages) == sorted(m.study_uid for m in everything)
    assert len({m.study_uid for m in pages}) == len(pages)


@pytest.mark.services
def test_retrieve_streams_the_study_to_part10_files(
    client: DicomwebClient, studies: dict[str, StudyFiles], tmp_path: Path
) -> None:
    ct = ct_study(studies)
    seen = []
    files = client.retrieve(tmp_path / "ct", ct.study_uid, on_part=seen.append)
    assert len(files) == len(seen) == 7
    originals = {
        str(pydicom.dcmread(p).SOPInstanceUID): pydicom.dcmread(p).pixel_array for p in ct.files
    }
    for path in files:
        ds = pydicom.dcmread(path)  # a Part-10 file with its meta header
        assert ds.file_meta.TransferSyntaxUID
        assert (ds.pixel_array == originals[str(ds.SOPInstanceUID)]).all()
    series = sorted(ct.series_uids)[0]
    one = client.retrieve(tmp_path / "series", ct.study_uid, series)
    assert {str(pydicom.dcmread(p).SeriesInstanceUID) for p in one} == {series}


@pytest.mark.services
def test_unknown_study_is_not_found(client: DicomwebClient, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such object"):
        client.retrieve(tmp_path, "1.2.826.0.1.3680043.99999.1")


@pytest.mark.services
def test_store_and_find_again(client: DicomwebClient, orthanc: Orthanc, tmp_path: Path) -> None:
    from tests.conftest import sample_file

    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    path = tmp_path / "new.dcm"
    ds.save_as(path)
    result = client.store([path])
    assert result.stored == [ds.SOPInstanceUID] and not result.failed
    assert client.find_study(ds.StudyInstanceUID) is not None
    orthanc.request("DELETE", f"/studies/{orthanc.study_id(ds.StudyInstanceUID)}")


@pytest.mark.services
def test_credentials(orthanc_auth: Orthanc) -> None:
    good = DicomwebClient(
        orthanc_auth.dicomweb_url, DicomwebAuth("basic", AUTH_USER, AUTH_PASSWORD)
    )
    good.ping()
    for auth in (
        DicomwebAuth(),
        DicomwebAuth("basic", AUTH_USER, "wrong"),
        DicomwebAuth("bearer", secret="not-a-token"),
    ):
        with pytest.raises(RemoteServiceError, match="refused the credentials") as info:
            DicomwebClient(orthanc_auth.dicomweb_url, auth).search_studies()
        assert info.value.details["status"] == 401
        assert info.value.status_code < 500
