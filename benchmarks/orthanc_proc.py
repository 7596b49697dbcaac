"""Start a throw-away Orthanc on 127.0.0.1 and ingest files through its REST API."""

from __future__ import annotations

import http.client
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from common import free_port, tree_cpu_seconds

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def orthanc_binary() -> str:
    """Path of the Orthanc executable; explains how to install it when missing."""
    found = shutil.which("Orthanc") or (
        "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None
    )
    if found is None:
        raise SystemExit("Orthanc is not installed: run scripts/install-services.sh (as root)")
    return found


class OrthancServer:
    """A fresh Orthanc with its storage and index in ``workdir``; a context manager.

    Orthanc 1.10 listens on all interfaces whatever the configuration;
    ``RemoteAccessAllowed: false`` makes it refuse clients that are not local.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> OrthancServer:
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "Name": "medlabel-benchmark",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
        }
        if DICOMWEB_PLUGIN.exists():
            config["Plugins"] = [str(DICOMWEB_PLUGIN)]
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
        cfg = self.workdir / "orthanc.json"
        cfg.write_text(json.dumps(config, indent=2))
        log = (self.workdir / "orthanc.log").open("wb")
        env = dict(os.environ, TCP_NODELAY="1")
        self.proc = subprocess.Popen(
            [orthanc_binary(), str(cfg)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        self._wait_ready(timeout=30.0)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited; see {self.workdir / 'orthanc.log'}")
            try:
                self.get_json("/system")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"Orthanc did not answer within {timeout} s")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM, then wait for the process to exit (SIGKILL after 30 s)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def get_json(self, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {resp.status}")
        return json.loads(body)


@dataclass
class IngestResult:
    wall_s: float
    ok: int
    already_stored: int
    failed: list[str]
    server_cpu_s: float
    client_cpu_s: float


def ingest(server: OrthancServer, files: list[Path], threads: int) -> IngestResult:
    """POST every file to ``/instances`` with ``threads`` keep-alive connections.

    Each worker reads its file from disk (page-cached) and posts the bytes; the wall
    time runs from the first request to the last response.
    """
    todo: queue.SimpleQueue[Path] = queue.SimpleQueue()
    for f in files:
        todo.put(f)
    lock = threading.Lock()
    counts = {"ok": 0, "already": 0}
    failed: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=120)
        try:
            while True:
                try:
                    path = todo.get_nowait()
                except queue.Empty:
                    return
                body = path.read_bytes()
                conn.request(
                    "POST",
                    "/instances",
                    body=body,
                    headers={"Content-Type": "application/dicom"},
                )
                resp = conn.getresponse()
                data = resp.read()
                status = ""
                if resp.status == 200:
                    status = str(json.loads(data).get("Status", ""))
                with lock:
                    if status == "Success":
                        counts["ok"] += 1
                    elif status == "AlreadyStored":
                        counts["already"] += 1
                    else:
                        failed.append(f"{path.name}: HTTP {resp.status} {data[:200]!r}")
        finally:
            conn.close()

    cpu0_server = tree_cpu_seconds(server.pid)
    cpu0_client = time.process_time()
    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - t0
    return IngestResult(
        wall_s=wall,
        ok=counts["ok"],
        already_stored=counts["already"],
        failed=failed,
        server_cpu_s=tree_cpu_seconds(server.pid) - cpu0_server,
        client_cpu_s=time.process_time() - cpu0_client,
    )
