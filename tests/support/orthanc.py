"""A throw-away Orthanc (with its DICOMweb plugin) for service tests.

Usage::

    from tests.support.orthanc import orthanc  # the session fixture

    def test_x(orthanc: Orthanc) -> None:
        orthanc.upload([path, ...])                      # REST POST /instances
        orthanc.add_modality("SCP", "MYSCP", "127.0.0.1", port)
        orthanc.send(study_uid, "SCP")                   # C-STORE to that modality

or, outside pytest, ``with start_orthanc(workdir) as server: ...``.

One Orthanc runs per test session, listening on free ports of 127.0.0.1 with its
storage in a temporary directory; it is stopped at the end of the session. When
``/usr/sbin/Orthanc`` or the DICOMweb plugin is absent the tests are skipped
locally and fail under ``CI=true`` (``scripts/install-services.sh`` installs both).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.require import free_port, missing, stop

ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


class OrthancError(RuntimeError):
    """Orthanc answered a REST call with an error status."""


class Orthanc:
    """A running Orthanc: addresses plus a few REST helpers.

    Attributes
    ----------
    http_url : str
        ``http://127.0.0.1:<port>`` (REST API root).
    dicomweb_url : str
        ``http_url + "/dicom-web"`` (DICOMweb root, no trailing slash).
    dicom_port : int
        DICOM (DIMSE) port on 127.0.0.1.
    aet : str
        Orthanc's own application entity title.
    username, password : str | None
        HTTP basic credentials when the server was started with authentication.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        aet: str = "ORTHANC",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.aet = aet
        self.username = username
        self.password = password
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb_url = f"{self.http_url}/dicom-web"
        self.proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Orthanc:
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "Name": "medlabel-tests",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": self.username is not None,
            "DicomCheckCalledAet": False,
            "DicomModalitiesInDatabase": True,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        if self.username is not None:
            config["RegisteredUsers"] = {self.username: self.password or ""}
        cfg = self.workdir / "orthanc.json"
        cfg.write_text(json.dumps(config, indent=2))
        log = (self.workdir / "orthanc.log").open("wb")
        env = dict(os.environ, TCP_NODELAY="1")
        self.proc = subprocess.Popen(
            [str(ORTHANC_BINARY), str(cfg)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        deadline = time.monotonic() + 30.0
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited; see {self.workdir / 'orthanc.log'}")
            try:
                self.get("/system")
                return self
            except (OSError, OrthancError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("Orthanc did not answer within 30 s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, wait (SIGKILL after 30 s)."""
        if self.proc is not None:
            stop(self.proc, grace=30.0)
            self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # ------------------------------------------------------------------ REST
    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        timeout: float = 60.0,
    ) -> Any:
        """One REST call; returns the decoded JSON (or raw bytes for non-JSON)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        headers = {"Content-Type": content_type} if body is not None else {}
        if self.username is not None:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 400:
            raise OrthancError(f"{method} {path}: HTTP {resp.status} {data[:300]!r}")
        if resp.getheader("Content-Type", "").startswith("application/json"):
            return json.loads(data) if data else None
        return data

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post_json(self, path: str, payload: Any) -> Any:
        return self.request("POST", path, json.dumps(payload).encode())

    def upload(self, paths: Iterable[Path | str]) -> list[dict[str, Any]]:
        """POST every file to ``/instances``; returns Orthanc's answers (ID, Status, ...)."""
        answers = []
        for p in paths:
            answer = self.request("POST", "/instances", Path(p).read_bytes(), "application/dicom")
            answers.append(answer)
        return answers

    def clear(self) -> None:
        """Delete every patient (and so every study, series, instance)."""
        for pid in self.get("/patients"):
            self.request("DELETE", f"/patients/{pid}")

    def study_id(self, study_uid: str) -> str:
        """Orthanc's own id of the study with this StudyInstanceUID."""
        found = self.post_json(
            "/tools/find",
            {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}},
        )
        if not found:
            raise OrthancError(f"no study {study_uid} in Orthanc")
        return str(found[0])

    def add_modality(self, name: str, aet: str, host: str, port: int) -> None:
        """Declare a DICOM peer (``PUT /modalities/{name}``)."""
        payload = {"AET": aet, "Host": host, "Port": port}
        self.request("PUT", f"/modalities/{name}", json.dumps(payload).encode())

    def send(self, study: str, modality: str, *, timeout: float = 120.0) -> Any:
        """C-STORE a study to a declared modality (``POST /modalities/{name}/store``).

        ``study`` is either Orthanc's id or a StudyInstanceUID. Synchronous.
        """
        resource = study if "." not in study else self.study_id(study)
        payload = {"Resources": [resource], "Synchronous": True}
        return self.request(
            "POST",
            f"/modalities/{modality}/store",
            json.dumps(payload).encode(),
            timeout=timeout,
        )


def require_orthanc() -> None:
    """Skip (locally) or fail (``CI=true``) when Orthanc or its DICOMweb plugin is absent."""
    if not ORTHANC_BINARY.exists():
        missing("Orthanc", f"{ORTHANC_BINARY} (apt-get install orthanc)")
    if not DICOMWEB_PLUGIN.exists():
        missing("Orthanc", f"{DICOMWEB_PLUGIN} (apt-get install orthanc-dicomweb)")


@contextmanager
def start_orthanc(
    workdir: Path | None = None,
    *,
    aet: str = "ORTHANC",
    username: str | None = None,
    password: str | None = None,
) -> Iterator[Orthanc]:
    """Start a fresh Orthanc, yield it, stop it and remove its temporary storage."""
    own = workdir is None
    base = Path(tempfile.mkdtemp(prefix="medlabel-orthanc-")) if workdir is None else workdir
    server = Orthanc(base, aet=aet, username=username, password=password)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if own:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def orthanc() -> Iterator[Orthanc]:
    """One Orthanc + DICOMweb for the whole session (skips when not installed).

    Tests share it: upload what you need, and do not assume it is empty (or call
    ``orthanc.clear()`` first).
    """
    require_orthanc()
    with start_orthanc() as server:
        yield server


#: user and password of :func:`orthanc_auth`
AUTH_USER, AUTH_PASSWORD = "medlabel", "orthanc-test-password"


@pytest.fixture(scope="session")
def orthanc_auth() -> Iterator[Orthanc]:
    """A second, empty Orthanc that requires HTTP basic authentication
    (:data:`AUTH_USER` / :data:`AUTH_PASSWORD`)."""
    require_orthanc()
    with start_orthanc(username=AUTH_USER, password=AUTH_PASSWORD) as server:
        yield server
