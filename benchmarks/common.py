"""Helpers shared by the benchmark scripts: machine facts, ports, CPU accounting, results."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_info() -> dict[str, Any]:
    """CPU count and model, RAM, OS, Python and key package versions, and the UTC date."""
    cpu_model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
                break
    versions: dict[str, str | None] = {}
    for dist in (
        "medlabel",
        "pydicom",
        "numpy",
        "pillow",
        "fastapi",
        "uvicorn",
        "sqlalchemy",
        "python-gdcm",
        "pyjpegls",
        "pylibjpeg",
        "pylibjpeg-openjpeg",
        "pylibjpeg-libjpeg",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "ram_gib": round(mem_kib / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def tool_version(cmd: list[str]) -> str | None:
    """First line of ``cmd``'s output (e.g. ``["Orthanc", "--version"]``), None if missing."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    """Ids of the live direct children of a process."""
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process and its live descendants."""
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime
        stack.extend(children(p))
    return total


def summarize(values: list[float], digits: int = 1) -> dict[str, Any]:
    """Median, min, max and the individual values."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": [round(v, digits + 2) for v in values],
    }


def save_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``benchmarks/results/<name>.json`` and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A Markdown table (also readable in a terminal)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cpu_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all CPUs."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return (total - idle) / _CLK_TCK, total / _CLK_TCK


class MachineLoad:
    """Busy CPU cores of the whole machine between ``start()`` and ``cores()``; minus
    the benchmark's own processes this is what others ran meanwhile."""

    def __init__(self) -> None:
        self._busy0, self._t0 = 0.0, 0.0

    def start(self) -> MachineLoad:
        self._busy0, _ = _cpu_times()
        self._t0 = time.monotonic()
        return self

    def cores(self) -> float:
        busy, _ = _cpu_times()
        return round((busy - self._busy0) / max(1e-6, time.monotonic() - self._t0), 2)


def wait_for_quiet(max_wait: float, threshold: float = 0.25, settle: int = 3) -> dict[str, Any]:
    """Wait (up to ``max_wait`` s) until the machine was busy less than ``threshold``
    cores for ``settle`` consecutive seconds, so that other work does not skew a run.
    Returns how long it waited and whether it got quiet."""
    t0 = time.monotonic()
    calm = 0
    load = 0.0
    while time.monotonic() - t0 < max_wait:
        meter = MachineLoad().start()
        time.sleep(1.0)
        load = meter.cores()
        calm = calm + 1 if load < threshold else 0
        if calm >= settle:
            return {"quiet": True, "waited_s": round(time.monotonic() - t0, 1)}
    return {"quiet": False, "waited_s": round(time.monotonic() - t0, 1), "last_load": load}


def _own_cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class TreeCpuTracker:
    """CPU seconds used by a process and every descendant it starts, including those
    that exit before it does (polled every ``interval`` s, so a process's last few
    milliseconds may be missed). Use as a context manager around the process's life."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _poll(self) -> None:
        stack = [self.pid]
        while stack:
            p = stack.pop()
            cpu = _own_cpu_seconds(p)
            if cpu is not None:
                self.seen[p] = max(cpu, self.seen.get(p, 0.0))
            stack.extend(children(p))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def __enter__(self) -> TreeCpuTracker:
        self._poll()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def total(self) -> float:
        return sum(self.seen.values())
