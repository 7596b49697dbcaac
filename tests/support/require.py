"""Skip a test whose real service is missing here — or fail it under ``CI=true``, where
the project's own setup must have installed it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest


def missing(service: str, reason: str) -> NoReturn:
    """Skip locally; fail in CI (a green CI run must not hide an uninstalled service)."""
    message = f"{service} tests need {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI must install it)")
    pytest.skip(message)


def executable(service: str, name_or_path: str) -> Path:
    """The path of a program the service needs, else skip / fail."""
    found = shutil.which(name_or_path) if os.sep not in name_or_path else name_or_path
    if not found or not os.access(found, os.X_OK):
        missing(service, f"the program {name_or_path}")
    return Path(found)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode} before listening")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reaps the process."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
