"""A real local Ray cluster for tests: ``ray start --head`` on 127.0.0.1 with free ports
and its own ``--temp-dir``, stopped by ending exactly the processes of that cluster (never
``ray stop``, which ends every Ray cluster of the machine)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.require import free_port, missing, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def ray_executable() -> Path:
    """The ``ray`` program beside this Python, else skip / fail (CI installs the extra)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        missing("Ray", "the ray package (pip install 'medlabel[ray]')")
    path = Path(sys.executable).parent / "ray"
    if not path.exists():
        missing("Ray", f"the ray program beside {sys.executable}")
    return path


def _cluster_pids(temp_dir: Path) -> set[int]:
    """Processes whose command line names ``temp_dir``, and all their descendants."""
    parents: dict[int, int] = {}
    roots: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        if str(temp_dir).encode() in cmd:
            roots.add(pid)
    found = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    found.discard(os.getpid())
    return found


def stop_cluster(temp_dir: Path, grace: float = 5.0) -> None:
    """SIGTERM the cluster's processes, SIGKILL what is left after ``grace`` seconds."""
    pids = _cluster_pids(temp_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = {p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)}
            time.sleep(0.1)
        if not pids:
            return


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@contextmanager
def ray_cluster(num_cpus: int = 2, attempts: int = 3) -> Iterator[str]:
    """Start a head node on 127.0.0.1 and yield its address (``127.0.0.1:port``).

    Workers get the repository on ``PYTHONPATH``, so job kinds defined in ``tests`` can
    run on them.
    """
    ray = ray_executable()
    temp_dir = Path(tempfile.mkdtemp(prefix="medlabel-ray-", dir="/tmp"))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    args = [
        str(ray),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--include-dashboard=false",
        f"--num-cpus={num_cpus}",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        f"--dashboard-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
    ]
    try:
        for attempt in range(1, attempts + 1):  # a busy machine can time out Ray's start-up
            done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
            if done.returncode == 0:
                break
            stop_cluster(temp_dir)
            if attempt == attempts:
                raise RuntimeError(f"ray start failed ({done.returncode}):\n{done.stderr[-3000:]}")
        wait_for_port(port, 30.0)
        yield f"127.0.0.1:{port}"
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
