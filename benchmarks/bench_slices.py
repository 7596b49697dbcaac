"""Rendered-slice latency and throughput: 512×512 CT slices as PNG under 8 concurrent
clients, against ``medlabel serve`` with 1 and with 2 workers.

A 100-slice CT volume (pixels of pydicom-data's 693_UNCR.dcm on every slice, see
``datasets.py``) is imported into a fresh home; an admin user is created with the CLI;
the server is started as a subprocess on a free port and a bearer token is created
through the API. The load generator (wrk with a Lua script, or ``--client python``)
requests random axial slices with random CT window presets. Every response must be
HTTP 200 with a PNG body.

Usage::

    python benchmarks/bench_slices.py             # 5 s warm-up + 20 s per worker count
    python benchmarks/bench_slices.py --quick     # smoke check (1 s + 3 s, 1 worker)
    python benchmarks/bench_slices.py --profile   # also a py-spy breakdown of the server
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
from PIL import Image as PILImage

from common import (
    MachineLoad,
    children,
    free_port,
    machine_info,
    save_result,
    table,
    tool_version,
    tree_cpu_seconds,
    wait_for_quiet,
)
from datasets import write_ct_series
from loadgen import (
    PNG_MAGIC,
    PRESETS,
    Target,
    children_cpu_seconds,
    run_python,
    run_wrk,
    wrk_binary,
)
from profiling import PidRecorder, breakdown, read_stacks, top_leaves

CLI = [sys.executable, "-c", "from medlabel.cli.main import app; app()"]
TARGET_RPS = 300

# Stages of a slice request for the py-spy breakdown: a stack goes to the first of
# SLICE_RULES matching any frame, else to the FRAMEWORK_RULES stage of its innermost
# matching frame (see profiling.breakdown).
SLICE_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("PNG encoding (zlib)", ("io/png.py",)),
    ("windowing (HU → 8-bit)", ("imaging/windowing.py",)),
    ("slicing + reorientation", ("imaging/render.py", "imaging/reorient.py", "orientation.py")),
    ("pixel volume lookup (memmap cache)", ("services/volumes.py",)),
    ("authentication: token lookup (SQLAlchemy + SQLite)", ("resolve_token",)),
    ("image row + access check (SQLAlchemy + SQLite)", ("services/images.py", "sqlalchemy")),
]
FRAMEWORK_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("thread-pool hand-off (anyio, threading)", ("anyio/", "threading.py", "concurrent/")),
    ("@app.middleware (BaseHTTPMiddleware)", ("starlette/middleware/base.py",)),
    ("FastAPI/Starlette routing, dependencies, responses", ("fastapi/", "starlette/")),
    ("pydantic", ("pydantic",)),
    ("access log (logging)", ("logging/",)),
    ("uvicorn + HTTP parsing", ("uvicorn/", "httptools", "h11")),
    ("asyncio event loop", ("asyncio/",)),
    ("other medlabel code (deps, errors, app)", ("medlabel/",)),
]


def prepare_home(home: Path, scratch: Path, slices: int, password: str) -> int:
    """Import the CT volume and create the admin user; returns the image id."""
    from medlabel.core.settings import Settings
    from medlabel.services.context import open_context
    from medlabel.services.imports import import_paths
    from medlabel.services.projects import create_project

    write_ct_series(scratch / "ct", slices, tag="bench-slices")
    ctx = open_context(Settings(home=home))
    try:
        project = create_project(ctx, None, "slices")
        summary = import_paths(ctx, None, project.id, [scratch / "ct"])
    finally:
        ctx.close()
    if len(summary.image_ids) != 1:
        raise RuntimeError(f"expected one image, got {summary.image_ids}")
    subprocess.run(
        [
            *CLI,
            "users",
            "create",
            "bench",
            "--role",
            "admin",
            "--password-stdin",
            "--home",
            str(home),
        ],
        input=password + "\n",
        text=True,
        capture_output=True,
        check=True,
    )
    return summary.image_ids[0]


class Server:
    """``medlabel serve`` as a subprocess; a context manager that waits for readiness
    and, on exit, sends SIGTERM and waits for the process (SIGKILL after 30 s)."""

    def __init__(self, home: Path, workers: int, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [
            *CLI,
            "serve",
            "--home",
            str(home),
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with self.log.open("wb") as log:
            env = dict(os.environ, PYTHONWARNINGS="ignore")
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log}")
            try:
                if httpx.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after 60 s; see {self.log}")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def bearer_token(url: str, password: str) -> str:
    with httpx.Client(base_url=url, timeout=30) as c:
        c.post("/api/auth/login", json={"username": "bench", "password": password})
        r = c.post("/api/auth/tokens", json={"name": "bench"})
        r.raise_for_status()
        return str(r.json()["token"])


def check_responses(target: Target) -> dict[str, Any]:
    """Every preset on a few slices: HTTP 200, image/png, decodes to 512×512 greyscale."""
    headers = {"Authorization": f"Bearer {target.token}"}
    sizes = []
    with httpx.Client(base_url=f"http://127.0.0.1:{target.port}", headers=headers) as c:
        for i, preset in enumerate(PRESETS):
            for index in (0, target.slices // 2, target.slices - 1, i):
                r = c.get(
                    f"/api/images/{target.image_id}/slice.png",
                    params={"view": "axial", "index": index, "preset": preset},
                )
                if r.status_code != 200 or r.headers["content-type"] != "image/png":
                    raise RuntimeError(f"{preset} #{index}: HTTP {r.status_code} {r.text[:200]}")
                if not r.content.startswith(PNG_MAGIC):
                    raise RuntimeError(f"{preset} #{index}: not a PNG")
                img = PILImage.open(io.BytesIO(r.content))
                if img.size != (512, 512) or img.mode != "L":
                    raise RuntimeError(f"{preset} #{index}: {img.size} {img.mode}")
                sizes.append(len(r.content))
    return {"checked": len(sizes), "png_bytes_min": min(sizes), "png_bytes_max": max(sizes)}


def component_timings(home: Path, image_id: int, token: str, slices: int) -> dict[str, float]:
    """Median milliseconds per call of each step of a slice request, timed in this
    process (no HTTP, no concurrency): what one request costs at least."""
    import numpy as np

    from medlabel.core.settings import Settings
    from medlabel.imaging.render import render_slice
    from medlabel.imaging.windowing import CT_PRESETS, apply_window
    from medlabel.io.png import encode_png_fast
    from medlabel.services import images, users
    from medlabel.services.context import open_context

    ctx = open_context(Settings(home=home), migrate=False)
    try:
        me = users.resolve_token(ctx, token)
        assert me is not None
        image = images.get_image(ctx, me, image_id)
        arr, affine = images.pixels(ctx, image), np.asarray(image.affine)
        windows = [CT_PRESETS[p] for p in PRESETS]
        rendered = [
            render_slice(arr, affine, view="axial", index=i % slices, window=windows[i % 9])[0]
            for i in range(9)
        ]
        steps: dict[str, Any] = {
            "token lookup (resolve_token)": lambda i: users.resolve_token(ctx, token),
            "image row + access check, uncached (get_image)": lambda i: images.get_image(
                ctx, me, image_id
            ),
            "pixel array lookup (memmap cache)": lambda i: images.pixels(ctx, image),
            "slice + window (render_slice)": lambda i: render_slice(
                arr, affine, view="axial", index=i % slices, window=windows[i % 9]
            ),
            "  of which windowing (apply_window)": lambda i: apply_window(
                arr[i % slices], windows[i % 9]
            ),
            "PNG encoding (encode_png_fast)": lambda i: encode_png_fast(rendered[i % 9]),
            "whole slice_png service call": lambda i: images.slice_png(
                ctx, me, image_id, view="axial", index=i % slices, preset=PRESETS[i % 9]
            ),
        }
        out = {}
        for name, fn in steps.items():
            fn(0)
            times = []
            for i in range(200):
                t0 = time.perf_counter()
                fn(i)
                times.append(time.perf_counter() - t0)
            out[name] = round(1000 * sorted(times)[len(times) // 2], 3)
        out["slice_png beyond render + encode (lookups, window choice)"] = round(
            out["whole slice_png service call"]
            - out["slice + window (render_slice)"]
            - out["PNG encoding (encode_png_fast)"],
            3,
        )
        return out
    finally:
        ctx.close()


def _per_process_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of the server process itself and of each child's process tree."""
    out = {pid: tree_cpu_seconds(pid) - sum(tree_cpu_seconds(c) for c in children(pid))}
    out.update({c: tree_cpu_seconds(c) for c in children(pid)})
    return out


def drive(
    target: Target, client: str, seconds: float, connections: int, workdir: Path, server_pid: int
) -> dict[str, Any]:
    """One load window: the load generator's figures plus server and client CPU (the
    server's per process: with ``--workers N`` the uvicorn supervisor and its workers)."""
    cpu0, cpu_client0 = _per_process_cpu(server_pid), children_cpu_seconds()
    load = MachineLoad().start()
    t0 = time.perf_counter()
    if client == "wrk":
        res = run_wrk(target, seconds, connections, workdir)
    else:
        res = run_python(target, seconds, connections)
    wall = time.perf_counter() - t0
    busy = load.cores()
    cpu1 = _per_process_cpu(server_pid)
    per = [round((cpu1[p] - cpu0.get(p, 0.0)) / wall, 2) for p in cpu1]
    res["server_cpu_cores"] = round(sum(per), 2)
    res["server_cpu_cores_per_process"] = sorted(per, reverse=True)
    res["client_cpu_cores"] = round((children_cpu_seconds() - cpu_client0) / wall, 2)
    res["other_load_cores"] = round(max(0.0, busy - sum(per) - res["client_cpu_cores"]), 2)
    res["requests_per_s"] = round(res["requests"] / res["duration_s"], 1)
    res["png_mean_bytes"] = round(res["png_bytes"] / max(1, res["ok_png"]))
    return res


def profile_server(
    pid: int, target: Target, client: str, args: argparse.Namespace, workers: int, scratch: Path
) -> dict[str, Any]:
    """Two more load windows under py-spy: sampling every busy thread, then only the
    thread that holds the GIL (what one Python process can do at a time)."""
    out: dict[str, Any] = {}
    for view, gil in (("busy_threads", False), ("gil_holder", True)):
        raw = scratch / f"server-{workers}-{view}.pyspy"
        with PidRecorder(pid, raw, subprocesses=workers > 1, gil=gil):
            run = drive(target, client, args.profile_seconds, args.connections, scratch, pid)
        stacks = read_stacks(raw)
        prof = breakdown(stacks, SLICE_RULES, FRAMEWORK_RULES)
        prof.update(
            requests_per_s_under_profiler=run["requests_per_s"], top_leaves=top_leaves(stacks)
        )
        out[view] = prof
        print(f"  py-spy ({view.replace('_', ' ')}; {run['requests_per_s']} req/s while sampled)")
        rows = [[k, v["samples"], f"{100 * v['share']:.1f}%"] for k, v in prof["stages"].items()]
        print(table(rows, ["stage", "samples", "share"]))
    return out


def _window_line(w: dict[str, Any]) -> str:
    lat = w["latency_ms"]
    return (
        f"{w['requests_per_s']} req/s, p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
        f"p99 {lat['p99']} ms, server {w['server_cpu_cores_per_process']} cores, "
        f"client {w['client_cpu_cores']} cores, other load {w['other_load_cores']} cores"
    )


def _representative(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """The window least disturbed by other processes (lowest ``other_load_cores``; on a
    tie the faster one), plus a summary of all windows and their median requests/s."""
    best = min(windows, key=lambda w: (round(w["other_load_cores"], 1), -w["requests_per_s"]))
    res = dict(best)
    rates = sorted(w["requests_per_s"] for w in windows)
    res["median_requests_per_s"] = rates[(len(rates) - 1) // 2]
    res["windows"] = [
        {
            "requests_per_s": w["requests_per_s"],
            "latency_ms": w["latency_ms"],
            "errors": w["errors"],
            "bad": w["bad"],
            "server_cpu_cores_per_process": w["server_cpu_cores_per_process"],
            "other_load_cores": w["other_load_cores"],
        }
        for w in windows
    ]
    res["all_windows_ok"] = all(w["bad"] == 0 and not any(w["errors"].values()) for w in windows)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default=None, help="Server worker counts (default 1,2).")
    ap.add_argument("--seconds", type=float, default=20.0, help="Measured seconds per run.")
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="Measured windows per worker count; the one least disturbed by other "
        "processes is reported, all are kept in the JSON.",
    )
    ap.add_argument("--warmup", type=float, default=5.0, help="Warm-up seconds (discarded).")
    ap.add_argument("--connections", type=int, default=8, help="Concurrent clients.")
    ap.add_argument("--slices", type=int, default=100, help="Slices of the CT volume.")
    ap.add_argument(
        "--client",
        choices=["wrk", "python"],
        default=None,
        help="Load generator (default: wrk if installed).",
    )
    ap.add_argument("--profile", action="store_true", help="py-spy breakdown of the server.")
    ap.add_argument("--profile-seconds", type=float, default=10.0, help="Per profile window.")
    ap.add_argument(
        "--max-wait", type=float, default=120.0, help="Wait for a quiet machine (0: never)."
    )
    ap.add_argument("--quick", action="store_true", help="Smoke check: 1 worker, 1 s + 3 s.")
    ap.add_argument("--out", default=None, help="Result name (default slices / slices_quick).")
    args = ap.parse_args()
    if args.quick:
        args.workers, args.seconds, args.warmup = args.workers or "1", 3.0, 1.0
        args.repeats = 1
        args.profile_seconds = 3.0
        args.max_wait = min(args.max_wait, 10.0)
    args.workers = args.workers or "1,2"
    client = args.client or ("wrk" if wrk_binary() else "python")
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)

    scratch = Path(tempfile.mkdtemp(prefix="medlabel-bench-slices-"))
    try:
        home, password = scratch / "home", secrets.token_urlsafe(18)
        image_id = prepare_home(home, scratch, args.slices, password)
        report: dict[str, Any] = {
            "benchmark": "slice_png",
            "machine": machine_info(),
            "load_generator": tool_version(["wrk", "--version"]) if client == "wrk" else client,
            "settings": {
                "connections": args.connections,
                "seconds": args.seconds,
                "warmup": args.warmup,
                "slices": args.slices,
                "presets": PRESETS,
                "view": "axial",
                "quick": args.quick,
            },
            "target_rps": TARGET_RPS,
            "runs": [],
        }
        token = ""
        rows = []
        for workers in (int(w) for w in args.workers.split(",")):
            print(f"\n== medlabel serve --workers {workers} ({client}, {args.connections} clients)")
            with Server(home, workers, scratch / f"server-{workers}.log") as server:
                token = token or bearer_token(server.url, password)
                target = Target(server.port, image_id, args.slices, token)
                checked = check_responses(target)
                drive(target, client, args.warmup, args.connections, scratch, server.pid)
                windows = []
                for _ in range(args.repeats):
                    quiet = wait_for_quiet(args.max_wait) if args.max_wait else None
                    w = drive(target, client, args.seconds, args.connections, scratch, server.pid)
                    w["quiet"] = quiet
                    windows.append(w)
                    print(f"  window: {_window_line(w)}")
                    if w["bad"] or any(w["errors"].values()):
                        print(f"  !! {w['bad']} bad responses, errors {w['errors']}")
                res = _representative(windows)
                res.update(workers=workers, client=client, check=checked)
                if args.profile:
                    res["profile"] = profile_server(
                        server.pid, target, client, args, workers, scratch
                    )
            lat = res["latency_ms"]
            print(f"  quietest window: {_window_line(res)}")
            report["runs"].append(res)
            rows.append(
                [
                    workers,
                    client,
                    res["requests"],
                    res["requests_per_s"],
                    "–".join(
                        str(f(w["requests_per_s"] for w in res["windows"])) for f in (min, max)
                    ),
                    lat["p50"],
                    lat["p95"],
                    lat["p99"],
                    sum(w["bad"] + sum(w["errors"].values()) for w in res["windows"]),
                    res["png_mean_bytes"],
                    res["server_cpu_cores"],
                    res["client_cpu_cores"],
                    res["other_load_cores"],
                ]
            )
        report["components_ms"] = component_timings(home, image_id, token, args.slices)
        print("\nIn-process cost of each step (median ms per call):")
        print(table([[k, v] for k, v in report["components_ms"].items()], ["step", "ms"]))
        header = [
            "workers",
            "client",
            "requests",
            "req/s (quietest window)",
            "req/s, all windows",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "errors (all windows)",
            "PNG bytes (mean)",
            "server CPU cores",
            "client CPU cores",
            "other load, cores",
        ]
        print("\n" + table(rows, header))
        path = save_result(args.out or ("slices_quick" if args.quick else "slices"), report)
        print(f"\nsaved {path}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
