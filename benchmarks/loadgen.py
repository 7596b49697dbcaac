"""HTTP load generators for the slice benchmark: wrk (preferred) or a Python fallback.

Both request ``/api/images/{id}/slice.png?view=axial&index=<random>&preset=<random>``
with a bearer token from ``connections`` concurrent keep-alive connections, check that
every response is HTTP 200 with a PNG body, and report requests/s, latency percentiles,
errors, PNG sizes and their own CPU time.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRESETS = (
    "lung",
    "bone",
    "brain",
    "soft_tissue",
    "mediastinum",
    "abdomen",
    "liver",
    "subdural",
    "stroke",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

WRK_LUA = r"""
-- args after "--": image id, number of slices, bearer token, comma-separated presets
local threads, counter = {}, 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end
function init(args)
  image, slices, presets = args[1], tonumber(args[2]), {}
  for p in string.gmatch(args[4], "[^,]+") do table.insert(presets, p) end
  wrk.headers["Authorization"] = "Bearer " .. args[3]
  math.randomseed(os.time() * 100 + id)
  ok, bad, bytes, minb, maxb = 0, 0, 0, 1e12, 0
end
function request()
  local path = "/api/images/" .. image .. "/slice.png?view=axial&index=" ..
    math.random(0, slices - 1) .. "&preset=" .. presets[math.random(#presets)]
  return wrk.format("GET", path)
end
function response(status, headers, body)
  if status == 200 and string.sub(body, 1, 8) == "\137PNG\r\n\26\n" then
    ok = ok + 1
    bytes = bytes + #body
    if #body < minb then minb = #body end
    if #body > maxb then maxb = #body end
  else
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local o, b, by, mn, mx = 0, 0, 0, 1e12, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok"); b = b + t:get("bad"); by = by + t:get("bytes")
    mn = math.min(mn, t:get("minb")); mx = math.max(mx, t:get("maxb"))
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_s": %.3f, "ok_png": %d, "bad": %d, "png_bytes": %d, ' ..
    '"png_min": %d, "png_max": %d, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}, "latency_ms": {"mean": %.3f, "p50": %.3f, "p90": %.3f, ' ..
    '"p95": %.3f, "p99": %.3f, "max": %.3f}}\n',
    summary.requests, summary.duration / 1e6, o, b, by, mn, mx,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean / 1e3, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(95) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


@dataclass
class Target:
    port: int
    image_id: int
    slices: int
    token: str


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def run_wrk(target: Target, seconds: float, connections: int, workdir: Path) -> dict[str, Any]:
    """Run wrk (2 threads) for ``seconds``; returns its figures plus its CPU seconds."""
    script = workdir / "slices.lua"
    script.write_text(WRK_LUA)
    wrk = wrk_binary()
    if wrk is None:
        raise SystemExit("wrk is not installed: run scripts/install-services.sh or --client python")
    cmd = [
        wrk,
        "-t2",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{target.port}",
        "--",
        str(target.image_id),
        str(target.slices),
        target.token,
        ",".join(PRESETS),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    # communicate() reaped the child; its CPU shows in our children's times
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {err.decode()[-1000:]}")
    line = next((ln for ln in out.decode().splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out.decode()}\n{err.decode()}")
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    return result


def run_python(target: Target, seconds: float, connections: int) -> dict[str, Any]:
    """The fallback: this script's ``--loadgen`` mode in a separate Python process."""
    cmd = [sys.executable, __file__, json.dumps(target.__dict__), str(seconds), str(connections)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed: {proc.stderr[-1000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def children_cpu_seconds() -> float:
    """CPU seconds of this process's reaped children (e.g. a finished wrk)."""
    t = os.times()
    return t.children_user + t.children_system


def _python_loadgen(target: Target, seconds: float, connections: int) -> dict[str, Any]:
    latencies: list[float] = []
    sizes: list[int] = []
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    bad = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {target.token}"}

    def worker(seed: int) -> None:
        nonlocal bad
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
        while time.perf_counter() < deadline:
            path = (
                f"/api/images/{target.image_id}/slice.png?view=axial"
                f"&index={rng.randrange(target.slices)}&preset={rng.choice(PRESETS)}"
            )
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
            except OSError:
                with lock:
                    errors["read"] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
                continue
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                if resp.status != 200:
                    errors["status"] += 1
                if resp.status == 200 and body.startswith(PNG_MAGIC):
                    sizes.append(len(body))
                else:
                    bad += 1
        conn.close()

    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    duration = time.perf_counter() - t0
    lat = sorted(latencies) or [0.0]

    def pct(q: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(q / 100 * len(lat)))], 3)

    return {
        "requests": len(latencies),
        "duration_s": round(duration, 3),
        "ok_png": len(sizes),
        "bad": bad,
        "png_bytes": sum(sizes),
        "png_min": min(sizes, default=0),
        "png_max": max(sizes, default=0),
        "errors": errors,
        "latency_ms": {
            "mean": round(1000 * sum(lat) / len(lat), 3),
            "p50": pct(50),
            "p90": pct(90),
            "p95": pct(95),
            "p99": pct(99),
            "max": pct(100),
        },
    }


if __name__ == "__main__":
    _target = Target(**json.loads(sys.argv[1]))
    print(json.dumps(_python_loadgen(_target, float(sys.argv[2]), int(sys.argv[3]))))
