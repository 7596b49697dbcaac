"""Opening a large CT volume in the annotation workspace: time from navigation to the
first rendered volume, to the server-rendered preview slice, and slice-scroll frame time.

A 512×512×N CT series (pixels of pydicom-data's 693_UNCR.dcm on every slice, new
positions and UIDs; see ``datasets.py``) is imported into a fresh home; ``medlabel serve``
runs as a subprocess on a free port; the system Chromium (headless, software WebGL via
SwiftShader, as in the browser tests) opens ``#/images/<id>`` in a fresh browser context
per run (cold HTTP cache), logged in through the API.

Measured per run (milliseconds since navigation start, from the page's own
``performance.now()`` marks, see ``web/src/workspace/workspace.js``):

* ``preview``     the server-rendered middle slice (PNG) has arrived;
* ``viewerReady`` NiiVue is loaded and its WebGL context set up;
* ``fetched``     the whole volume (uncompressed NIfTI) has arrived;
* ``first_frame`` NiiVue has parsed it, uploaded it and drawn the first frame;
* ``ready``       the annotation (and its mask, if any) is loaded too.

Slice scrolling (in a last, separate page): 60 wheel events over the canvas; the time
from each event to the next animation frame, and the sustained time per slice with the
GPU's work included (a pixel read at the end).

Usage::

    python benchmarks/bench_viewer.py              # 300 slices, 3 runs
    python benchmarks/bench_viewer.py --quick      # 60 slices, 1 run
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_slices import Server
from common import machine_info, save_result, summarize, table
from datasets import write_ct_series

CHROMIUM = os.environ.get("MEDLABEL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TARGET_MS = 3000

log = logging.getLogger("bench_viewer")

SCROLL_JS = """async (n) => {
    const ws = window.__medlabelWorkspace;
    const canvas = ws.r.canvas;
    const gl = ws.viewer.nv.gl;
    const rect = canvas.getBoundingClientRect();
    const x = rect.left + rect.width / 2, y = rect.top + rect.height / 2;
    const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
    // Wait until the GPU has done everything queued (reading a pixel is a fence).
    const settle = async () => {
        await frame();
        await frame();
        gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
    };
    await settle();
    const latencies = [];
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
        const t = performance.now();
        canvas.dispatchEvent(new WheelEvent("wheel", {
            deltaY: i < n / 2 ? -100 : 100, clientX: x, clientY: y, bubbles: true, cancelable: true,
        }));
        await frame();
        latencies.push(performance.now() - t);
    }
    await settle();
    return { latencies, sustained: (performance.now() - t0) / n, slice: ws.viewer.sliceInfo() };
}"""


def prepare_home(home: Path, scratch: Path, slices: int, password: str) -> int:
    """Import the CT volume and create the user; returns the image id."""
    from medlabel.annotation.schema import LabelSpec
    from medlabel.core.settings import Settings
    from medlabel.security.roles import Role
    from medlabel.services.context import open_context
    from medlabel.services.imports import import_paths
    from medlabel.services.projects import add_labels, create_project
    from medlabel.services.users import create_user

    write_ct_series(scratch / "ct", slices, tag="bench-viewer")
    ctx = open_context(Settings(home=home))
    try:
        create_user(ctx, "bench", password, Role.ADMIN)
        project = create_project(ctx, None, "viewer")
        add_labels(ctx, None, project.id, [LabelSpec(name="lesion", kind="mask", value=1)])
        summary = import_paths(ctx, None, project.id, [scratch / "ct"])
    finally:
        ctx.close()
    if len(summary.image_ids) != 1:
        raise RuntimeError(f"expected one image, got {summary.image_ids}")
    return summary.image_ids[0]


def open_once(
    browser: Any, url: str, image_id: int, password: str, *, scroll: bool = False
) -> dict[str, Any]:
    """One cold open in a fresh browser context: the page's marks (and scrolling)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        r = page.request.post(
            f"{url}/api/auth/login", data={"username": "bench", "password": password}
        )
        if not r.ok:
            raise RuntimeError(f"login failed: {r.status} {r.text()}")
        t0 = time.perf_counter()
        page.goto(f"{url}/#/images/{image_id}")
        page.wait_for_selector("[data-testid=workspace][data-state=ready]", timeout=120_000)
        wall_ready = (time.perf_counter() - t0) * 1000
        marks = page.evaluate("() => window.__medlabelWorkspace.timings")
        info = page.evaluate(
            """() => { const ws = window.__medlabelWorkspace; const v = ws.viewer.volume;
                return { dims: Array.from(v.hdr.dims.slice(1, 4)),
                         datatype: v.hdr.datatypeCode, single_slice_mode: ws.viewer.light,
                         software_webgl: ws.viewer.software }; }"""
        )
        result = {"marks": marks, "wall_ready_ms": round(wall_ready), "volume": info}
        if scroll:
            result["scroll"] = page.evaluate(SCROLL_JS, 60)
        if errors:
            raise RuntimeError(f"page errors: {errors}")
        return result
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="60 slices, 1 run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    if args.quick:
        args.slices, args.runs = 60, 1
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from playwright.sync_api import sync_playwright

    scratch = Path(tempfile.mkdtemp(prefix="medlabel-bench-viewer-"))
    password = secrets.token_urlsafe(12)
    try:
        t = time.perf_counter()
        image_id = prepare_home(scratch / "home", scratch, args.slices, password)
        log.info("imported %d slices in %.1f s", args.slices, time.perf_counter() - t)
        shutil.rmtree(scratch / "ct")
        runs = []
        with Server(scratch / "home", 1, scratch / "server.log") as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for i in range(args.runs):
                    run = open_once(browser, server.url, image_id, password)
                    m = run["marks"]
                    log.info(
                        "run %d: preview %s ms, viewer %s ms, fetched %s ms, first frame %s ms",
                        i + 1,
                        m.get("preview"),
                        m.get("viewerReady"),
                        m["fetched"],
                        m["firstFrame"],
                    )
                    runs.append(run)
                    time.sleep(1)
                # Scrolling last, in its own page: with software WebGL its GPU work
                # would still be running when the next page opens.
                scroll = open_once(browser, server.url, image_id, password, scroll=True)
            finally:
                browser.close()
        report(args, runs, scroll["scroll"])
    finally:
        if args.keep:
            log.info("scratch kept at %s", scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def report(args: argparse.Namespace, runs: list[dict[str, Any]], scroll: dict[str, Any]) -> None:
    def col(key: str) -> list[float]:
        return [float(r["marks"][key]) for r in runs if r["marks"].get(key) is not None]

    lat = sorted(scroll["latencies"])
    first = col("firstFrame")
    result = {
        "benchmark": "viewer_open",
        "machine": machine_info(),
        "settings": {
            "slices": args.slices,
            "shape": [args.slices, 512, 512],
            "bytes": args.slices * 512 * 512 * 2 + 352,
            "runs": args.runs,
            "browser": f"{CHROMIUM} headless, software WebGL (SwiftShader)",
            "viewport": [1280, 800],
        },
        "ms_since_navigation": {
            "preview_png": summarize(col("preview"), 0),
            "viewer_ready": summarize(col("viewerReady"), 0),
            "volume_fetched": summarize(col("fetched"), 0),
            "first_volume_frame": summarize(first, 0),
            "ready": summarize(col("ready"), 0),
        },
        "scroll_ms": {
            "wheel_to_next_frame_median": round(statistics.median(lat), 1),
            "wheel_to_next_frame_p95": round(lat[int(0.95 * (len(lat) - 1))], 1),
            "sustained_per_slice": round(scroll["sustained"], 1),
        },
        "target_ms": TARGET_MS,
        "meets_target": bool(first) and statistics.median(first) < TARGET_MS,
        "volume": runs[0]["volume"] if runs else None,
    }
    name = "viewer_quick" if args.quick else "viewer"
    path = save_result(name, result)
    rows = [
        [k.replace("_", " "), v["median"], v["min"], v["max"]]
        for k, v in result["ms_since_navigation"].items()
    ]
    print(table(rows, ["since navigation", "median ms", "min ms", "max ms"]))
    sc = result["scroll_ms"]
    print(
        f"\nslice scroll (60 wheel steps): wheel → next frame median "
        f"{sc['wheel_to_next_frame_median']} ms (p95 {sc['wheel_to_next_frame_p95']} ms); "
        f"sustained {sc['sustained_per_slice']} ms per slice, GPU work included"
    )
    print(f"first frame < {TARGET_MS} ms: {'met' if result['meets_target'] else 'NOT met'}")
    print(f"saved {path}")


if __name__ == "__main__":
    sys.exit(main())
