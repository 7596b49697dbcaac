"""dcmtk's ``storescu`` and ``echoscu`` for service tests (``apt-get install dcmtk``).

The full paths are used on purpose: pynetdicom installs console scripts with the same
names. ``TCP_NODELAY=1`` spares each DIMSE message the delayed-ACK wait. storescu does
not transcode, so compressed files are sent with the option that proposes their
transfer syntax (one run per transfer syntax, see :func:`store`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom import uid

from tests.support.require import executable

STORESCU = "/usr/bin/storescu"
ECHOSCU = "/usr/bin/echoscu"

#: the storescu option proposing a compressed transfer syntax (uncompressed: none)
PROPOSE = {
    uid.JPEGBaseline8Bit: "-xy",
    uid.JPEGExtended12Bit: "-xx",
    uid.JPEGLosslessSV1: "-xs",
    uid.JPEG2000Lossless: "-xv",
    uid.JPEG2000: "-xw",
    uid.JPEGLSLossless: "-xt",
    uid.JPEGLSNearLossless: "-xu",
    uid.RLELossless: "-xr",
    uid.DeflatedExplicitVRLittleEndian: "-xd",
}


@dataclass
class Result:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and "E: " not in self.output and "F: " not in self.output


def require_dcmtk() -> None:
    """Skip locally / fail under ``CI=true`` when dcmtk is not installed."""
    executable("dcmtk", STORESCU)
    executable("dcmtk", ECHOSCU)


def _run(args: Sequence[str]) -> Result:
    env = dict(os.environ, TCP_NODELAY="1")
    done = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=120)
    return Result(done.returncode, done.stdout + done.stderr)


def store(
    port: int,
    called: str,
    files: Sequence[Path],
    *,
    calling: str = "STORESCU",
    host: str = "127.0.0.1",
) -> list[Result]:
    """Send ``files`` with storescu, one association per transfer syntax (in order of
    first appearance); returns each run's result."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        groups.setdefault(PROPOSE.get(ts, ""), []).append(path)
    results = []
    for flag, paths in groups.items():
        args = [STORESCU, *([flag] if flag else []), "-aet", calling, "-aec", called]
        results.append(_run([*args, host, str(port), *map(str, paths)]))
    return results


def echo(port: int, called: str, *, calling: str = "ECHOSCU", host: str = "127.0.0.1") -> Result:
    """One C-ECHO with echoscu."""
    return _run([ECHOSCU, "-aet", calling, "-aec", called, host, str(port)])
