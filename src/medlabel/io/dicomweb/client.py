"""A small DICOMweb client: QIDO-RS search, WADO-RS retrieval to disk, STOW-RS store.

Plain HTTP over ``requests`` (the ``[pacs]`` extra): retrieval streams each instance of
a ``multipart/related`` answer straight to a file, and every failure becomes a
:class:`~medlabel.core.errors.MedlabelError` that says what to fix:

=================================  ==========================================
what happened                      error (HTTP status medlabel answers with)
=================================  ==========================================
unreachable, refused, timed out    :class:`RemoteServiceError` (424)
PACS says 401 / 403                :class:`RemoteServiceError` (424), "check the credentials"
PACS says 404 (unknown study)      :class:`NotFoundError` (404)
PACS says 400                      :class:`InvalidInputError` (422)
anything else                      :class:`RemoteServiceError` (424)
=================================  ==========================================
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from medlabel.core.errors import (
    InvalidInputError,
    MedlabelError,
    NotFoundError,
    RemoteServiceError,
)
from medlabel.core.optional import require
from medlabel.io.dicomweb.multipart import Part, boundary_of, encode_related, iter_parts

log = logging.getLogger(__name__)

#: the QIDO-RS attributes asked for with every study search
STUDY_FIELDS = (
    "StudyInstanceUID",
    "PatientID",
    "PatientName",
    "AccessionNumber",
    "StudyDate",
    "StudyDescription",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
#: a page of search results is at most this long
MAX_LIMIT = 1000
_CHUNK = 1 << 20


class AuthKind(StrEnum):
    """How medlabel authenticates to a DICOMweb server."""

    NONE = "none"
    BASIC = "basic"
    BEARER = "bearer"


@dataclass(frozen=True)
class DicomwebAuth:
    """Credentials for a DICOMweb server.

    Parameters
    ----------
    kind
        ``none``, ``basic`` (``username`` + ``secret`` as password) or ``bearer``
        (``secret`` is the token).

    Raises
    ------
    ValueError
        A kind without the credentials it needs.
    """

    kind: AuthKind = AuthKind.NONE
    username: str | None = None
    secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", AuthKind(self.kind))
        if self.kind == AuthKind.BASIC and (not self.username or self.secret is None):
            raise ValueError("basic authentication needs a username and a password (secret)")
        if self.kind == AuthKind.BEARER and not self.secret:
            raise ValueError("bearer authentication needs a token (secret)")

    def headers(self) -> dict[str, str]:
        if self.kind == AuthKind.BEARER:
            return {"Authorization": f"Bearer {self.secret}"}
        return {}

    def requests_auth(self) -> tuple[str, str] | None:
        if self.kind == AuthKind.BASIC:
            return (self.username or "", self.secret or "")
        return None


def check_url(url: str) -> str:
    """A DICOMweb root URL without its trailing slash.

    Raises
    ------
    InvalidInputError
        Not an ``http(s)://host[:port]/path`` URL, or credentials in the URL.

    Examples
    --------
    >>> check_url("http://pacs.example:8042/dicom-web/")
    'http://pacs.example:8042/dicom-web'
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(
            f"{url!r} is not a DICOMweb URL: give http(s)://host[:port]/path, e.g. "
            "http://pacs.example:8042/dicom-web"
        )
    if parts.username or parts.password:
        raise InvalidInputError("put credentials in the connection's auth settings, not the URL")
    if parts.query or parts.fragment:
        raise InvalidInputError(f"{url!r}: a DICOMweb root URL has no query or fragment")
    return url.strip().rstrip("/")


def _date(value: dt.date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


@dataclass(frozen=True)
class StudyQuery:
    """QIDO-RS study search filters (all optional, combined with AND).

    ``description`` matches anywhere in the study description (``*text*``); the date
    range is inclusive, either end may be open. ``limit``/``offset`` page the results.
    """

    patient_id: str | None = None
    accession: str | None = None
    modality: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    description: str | None = None
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInputError(f"limit must be within 1..{MAX_LIMIT}, got {self.limit}")
        if self.offset < 0:
            raise InvalidInputError(f"offset must not be negative, got {self.offset}")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise InvalidInputError(f"date_from {self.date_from} is after date_to {self.date_to}")
        for name in ("patient_id", "accession", "modality", "description"):
            value = getattr(self, name)
            if value is not None and ("\\" in value or len(value) > 64):
                raise InvalidInputError(f"{name} must be at most 64 characters, without '\\'")

    def params(self) -> list[tuple[str, str]]:
        """The query parameters of the search."""
        out: list[tuple[str, str]] = []
        if self.patient_id:
            out.append(("PatientID", self.patient_id))
        if self.accession:
            out.append(("AccessionNumber", self.accession))
        if self.modality:
            out.append(("ModalitiesInStudy", self.modality.upper()))
        if self.date_from or self.date_to:
            if self.date_from == self.date_to:
                out.append(("StudyDate", _date(self.date_from)))
            else:
                out.append(("StudyDate", f"{_date(self.date_from)}-{_date(self.date_to)}"))
        if self.description:
            out.append(("StudyDescription", f"*{self.description.strip('*')}*"))
        out.extend(("includefield", f) for f in STUDY_FIELDS)
        out.append(("limit", str(self.limit)))
        out.append(("offset", str(self.offset)))
        return out


def _value(ds: dict[str, Any], tag: str) -> Any:
    values = (ds.get(tag) or {}).get("Value") or []
    return values[0] if values else None


def _text(ds: dict[str, Any], tag: str) -> str:
    v = _value(ds, tag)
    if isinstance(v, dict):  # PN: {"Alphabetic": "..."}
        return str(v.get("Alphabetic", ""))
    return "" if v is None else str(v)


@dataclass(frozen=True)
class StudyMatch:
    """One study a PACS found (its identifiers are the PACS's, not yet de-identified)."""

    study_uid: str
    patient_id: str
    patient_name: str
    accession: str
    study_date: str
    description: str
    modalities: list[str]
    series_count: int | None
    instance_count: int | None

    @classmethod
    def from_json(cls, ds: dict[str, Any]) -> StudyMatch:
        """From a DICOM JSON dataset of a QIDO-RS answer (tolerant of missing fields)."""

        def count(tag: str) -> int | None:
            v = _value(ds, tag)
            try:
                return int(v) if v is not None else None
            except (TypeError, ValueError):
                return None

        modalities = [str(m) for m in (ds.get("00080061") or {}).get("Value") or []]
        return cls(
            study_uid=_text(ds, "0020000D"),
            patient_id=_text(ds, "00100020"),
            patient_name=_text(ds, "00100010"),
            accession=_text(ds, "00080050"),
            study_date=_text(ds, "00080020"),
            description=_text(ds, "00081030"),
            modalities=modalities,
            series_count=count("00201206"),
            instance_count=count("00201208"),
        )


@dataclass
class StoreResult:
    """What a STOW-RS store did: SOP Instance UIDs stored and failed (with reasons)."""

    stored: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _sop_list(answer: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return list((answer.get(tag) or {}).get("Value") or [])


class DicomwebClient:
    """Talks to one DICOMweb server.

    Parameters
    ----------
    url
        The DICOMweb root, e.g. ``http://orthanc:8042/dicom-web``.
    auth
        Credentials (default: none).
    timeout
        Seconds to wait for the connection and between bytes of an answer.
    name
        How messages name the server (default: the URL).

    Raises
    ------
    InvalidInputError
        A malformed URL.
    MissingDependencyError
        ``requests`` is not installed (``pip install 'medlabel[pacs]'``).
    """

    def __init__(
        self,
        url: str,
        auth: DicomwebAuth | None = None,
        *,
        timeout: float = 30.0,
        name: str | None = None,
    ) -> None:
        self.url = check_url(url)
        self.auth = auth or DicomwebAuth()
        self.timeout = timeout
        self.name = name or self.url
        self._requests = require("requests", extra="pacs", feature="connecting to a PACS")
        self._session = self._requests.Session()
        self._session.headers.update(self.auth.headers())
        self._session.auth = self.auth.requests_auth()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> DicomwebClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------- HTTP
    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        stream: bool = False,
        **kwargs: Any,
    ) -> Any:
        req = self._requests
        try:
            resp = self._session.request(
                method, f"{self.url}{path}", timeout=self.timeout, stream=stream, **kwargs
            )
        except req.exceptions.Timeout:
            raise RemoteServiceError(
                f"the PACS {self.name} did not answer within {self.timeout:g} s ({what})",
                details={"service": "pacs", "url": self.url},
            ) from None
        except req.exceptions.ConnectionError as exc:
            raise RemoteServiceError(
                f"cannot reach the PACS at {self.url} ({what}): is the URL right and the "
                f"server running? ({type(exc).__name__})",
                details={"service": "pacs", "url": self.url},
            ) from None
        except req.exceptions.RequestException as exc:
            raise RemoteServiceError(
                f"request to the PACS {self.name} failed ({what}): {exc}",
                details={"service": "pacs", "url": self.url},
            ) from None
        if resp.status_code >= 400:
            body = resp.text[:300] if not stream else ""
            resp.close()
            raise _http_error(self, resp.status_code, what, body)
        return resp

    def _json(self, path: str, params: Sequence[tuple[str, str]], what: str) -> list[Any]:
        # '*' (QIDO wildcard) stays literal: some servers (Orthanc) do not match "%2A"
        query = urlencode(list(params), safe="*")
        resp = self._request(
            "GET",
            f"{path}?{query}" if query else path,
            what=what,
            headers={"Accept": "application/dicom+json"},
        )
        if resp.status_code == 204 or not resp.content:
            return []
        try:
            data = resp.json()
        except ValueError:
            raise RemoteServiceError(
                f"the PACS {self.name} answered {what} with something that is not JSON",
                details={"service": "pacs", "url": self.url},
            ) from None
        if not isinstance(data, list):
            raise RemoteServiceError(f"the PACS {self.name} answered {what} with {type(data)}")
        return data

    # -------------------------------------------------------------------------- QIDO
    def search_studies(self, query: StudyQuery | None = None) -> list[StudyMatch]:
        """QIDO-RS ``GET /studies`` with the query's filters and paging."""
        query = query or StudyQuery()
        found = self._json("/studies", query.params(), "study search")
        return [StudyMatch.from_json(ds) for ds in found if isinstance(ds, dict)]

    def find_study(self, study_uid: str) -> StudyMatch | None:
        """The study with this StudyInstanceUID, or None when the PACS does not have it."""
        params = [("StudyInstanceUID", _uid(study_uid)), ("limit", "1")]
        params += [("includefield", f) for f in STUDY_FIELDS]
        found = self._json("/studies", params, f"looking up study {study_uid}")
        matches = [StudyMatch.from_json(ds) for ds in found if isinstance(ds, dict)]
        return next((m for m in matches if m.study_uid == study_uid.strip()), None)

    def search_series(self, study_uid: str) -> list[dict[str, Any]]:
        """QIDO-RS ``GET /studies/{uid}/series`` (DICOM JSON datasets)."""
        return self._json(f"/studies/{_uid(study_uid)}/series", [], f"series of study {study_uid}")

    def search_instances(
        self, study_uid: str, series_uid: str | None = None
    ) -> list[dict[str, Any]]:
        """QIDO-RS instances of a study (or of one of its series)."""
        path = f"/studies/{_uid(study_uid)}"
        if series_uid:
            path += f"/series/{_uid(series_uid)}"
        return self._json(f"{path}/instances", [], f"instances of study {study_uid}")

    # -------------------------------------------------------------------------- WADO
    def retrieve(
        self,
        dest: Path,
        study_uid: str,
        series_uid: str | None = None,
        *,
        on_part: Callable[[Part], None] | None = None,
    ) -> list[Path]:
        """WADO-RS: write every instance of a study (or series) to ``dest`` as a Part-10
        file, streamed (``dest/<n>.dcm``); returns the files.

        ``on_part`` is called after each file (progress; it may raise to stop).

        Raises
        ------
        NotFoundError
            The PACS does not know the study or series.
        """
        dest.mkdir(parents=True, exist_ok=True)
        path = f"/studies/{_uid(study_uid)}"
        if series_uid:
            path += f"/series/{_uid(series_uid)}"
        what = f"retrieving study {study_uid}"
        accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
        resp = self._request("GET", path, what=what, stream=True, headers={"Accept": accept})
        try:
            boundary = boundary_of(resp.headers.get("Content-Type", ""))
            prefix = len(list(dest.iterdir()))
            files: list[Path] = []
            try:
                chunks = resp.iter_content(chunk_size=_CHUNK)
                for part in iter_parts(chunks, boundary, lambda i: dest / f"{prefix + i}.dcm"):
                    if part.content_type and "dicom" not in part.content_type.lower():
                        raise RemoteServiceError(
                            f"the PACS sent a {part.content_type!r} part where DICOM was asked"
                        )
                    files.append(part.path)
                    if on_part is not None:
                        on_part(part)
            except self._requests.exceptions.RequestException as exc:
                raise RemoteServiceError(
                    f"the PACS {self.name} broke off {what}: {exc}",
                    details={"service": "pacs", "url": self.url},
                ) from None
        finally:
            resp.close()
        if not files:
            raise NotFoundError(f"the PACS {self.name} returned no instances for study {study_uid}")
        return files

    # -------------------------------------------------------------------------- STOW
    def store(self, files: Iterable[Path | bytes], study_uid: str | None = None) -> StoreResult:
        """STOW-RS: store Part-10 files (paths or bytes) in one request.

        Raises
        ------
        RemoteServiceError
            The PACS refused the request or stored none of the instances.
        """
        payloads = [f if isinstance(f, bytes) else Path(f).read_bytes() for f in files]
        if not payloads:
            raise InvalidInputError("nothing to store")
        body, ctype = encode_related(payloads)
        path = f"/studies/{_uid(study_uid)}" if study_uid else "/studies"
        resp = self._request(
            "POST",
            path,
            what="storing instances",
            data=body,
            headers={"Content-Type": ctype, "Accept": "application/dicom+json"},
        )
        answer: dict[str, Any] = {}
        try:
            parsed = resp.json() if resp.content else {}
            answer = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            pass
        result = StoreResult()
        for item in _sop_list(answer, "00081199"):
            result.stored.append(_text(item, "00081155"))
        for item in _sop_list(answer, "00081198"):
            result.failed[_text(item, "00081155")] = f"failure reason {_text(item, '00081197')}"
        if payloads and not result.stored:
            raise RemoteServiceError(
                f"the PACS {self.name} stored none of {len(payloads)} instance(s)"
                + (f": {result.failed}" if result.failed else ""),
                details={"service": "pacs", "url": self.url},
            )
        return result

    def ping(self) -> None:
        """Check that the server answers QIDO-RS with these credentials (one study)."""
        self.search_studies(StudyQuery(limit=1))


def _uid(uid: str) -> str:
    uid = uid.strip()
    if not uid or len(uid) > 64 or any(c not in "0123456789." for c in uid):
        raise InvalidInputError(f"{uid!r} is not a DICOM UID (digits and dots, at most 64)")
    return uid


def _http_error(client: DicomwebClient, status: int, what: str, body: str) -> MedlabelError:
    details = {"service": "pacs", "url": client.url, "status": status}
    if status in (401, 403):
        return RemoteServiceError(
            f"the PACS {client.name} refused the credentials (HTTP {status}) while {what}: "
            "check the connection's auth kind, username and secret",
            details=details,
        )
    if status == 404:
        return NotFoundError(
            f"the PACS {client.name} has no such object ({what}; HTTP 404)", details=details
        )
    if status == 400:
        return InvalidInputError(
            f"the PACS {client.name} refused the request ({what}; HTTP 400): {body}".rstrip(": "),
            details=details,
        )
    return RemoteServiceError(
        f"the PACS {client.name} failed ({what}; HTTP {status}) {body}".rstrip(),
        details=details,
    )
