"""How fast the audit log's hash chain verifies, appends and skips coalesced reads.

* **verify**: a SQLite medlabel database holding ``--rows`` chained audit events (default
  1,000,000; built by bulk insert with medlabel's own hash function, not one request per
  row) is checked by ``medlabel audit verify`` (a subprocess, so start-up is included)
  and by ``verify_chain`` in-process (median of ``--repeat`` runs).
* **append**: ``record()`` calls, one write transaction each (as a service makes them).
* **coalesced read**: :meth:`ImageReadLog.note` for a (user, image, kind) already recorded
  in the current window, i.e. what each further slice request pays.

Usage::

    python benchmarks/bench_audit.py                 # 1M rows, ~2 min on 2 cores
    python benchmarks/bench_audit.py --rows 100000   # quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import MachineLoad, machine_info, save_result, table, wait_for_quiet
from medlabel.core.settings import Settings
from medlabel.security.audit import GENESIS, AuditAction, ImageReadLog, record, verify_chain
from medlabel.security.audit.chain import at_text, event_hash
from medlabel.security.roles import Role
from medlabel.services.access import Principal
from medlabel.services.context import open_context
from medlabel.storage.db.models.audit import canonical_json

INSERT = (
    "INSERT INTO audit_events (id, at, actor_id, actor, action, target_type, target_id, "
    "project_id, client, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: a plausible mix: mostly coalesced image reads, then saves, logins, changes
MIX = [
    ("image.read", "image", {"kind": "slice"}),
    ("image.read", "image", {"kind": "slice"}),
    ("image.read", "image", {"kind": "volume"}),
    ("annotation.save", "annotation", {"image_id": 0, "revision_id": 0, "source": "human"}),
    ("annotation.submit", "annotation", {"revision_id": 0, "comments": 0}),
    ("login", "user", {}),
    ("proposal.accept", "image", {"proposals": [1, 2], "count": 2, "mode": "add"}),
    ("export.download", "export", {"format": "nifti", "bytes": 123456}),
]


def build(db_path: Path, rows: int, batch: int = 50_000) -> float:
    """Append ``rows`` chained events straight into the SQLite file; returns seconds."""
    import sqlite3

    rng = random.Random(0)
    start = time.perf_counter()
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA synchronous=OFF")
    prev = GENESIS
    buf: list[tuple[object, ...]] = []
    for i in range(1, rows + 1):
        action, ttype, details = MIX[rng.randrange(len(MIX))]
        user = rng.randrange(1, 40)
        at = at_text(t0 + dt.timedelta(milliseconds=37 * i))
        fields = {
            "id": i,
            "at": at,
            "actor_id": user,
            "actor": f"reader{user:02d}",
            "action": action,
            "target_type": ttype,
            "target_id": str(rng.randrange(1, 5000)),
            "project_id": rng.randrange(1, 6),
            "client": f"10.0.{user}.{rng.randrange(2, 250)}",
            "details": canonical_json(details),
            "prev_hash": prev,
        }
        prev = event_hash(**fields)  # type: ignore[arg-type]
        buf.append((*fields.values(), prev))
        if len(buf) == batch:
            conn.executemany(INSERT, buf)
            buf.clear()
    if buf:
        conn.executemany(INSERT, buf)
    conn.execute("UPDATE audit_head SET last_id = ?, last_hash = ? WHERE id = 1", (rows, prev))
    conn.commit()
    conn.close()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--appends", type=int, default=2000)
    ap.add_argument("--max-wait", type=float, default=120)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        home = Path(tmp) / "home"
        settings = Settings(home=home, preload_engines=[])
        open_context(settings).close()  # migrate
        print(f"building {args.rows:,} chained rows …", flush=True)
        build_s = build(home / "medlabel.db", args.rows)
        size_mb = (home / "medlabel.db").stat().st_size / 1e6
        print(f"built in {build_s:.1f} s ({size_mb:.0f} MB)")

        quiet = wait_for_quiet(args.max_wait)
        load = MachineLoad().start()
        t0 = time.perf_counter()
        cli = subprocess.run(
            [str(Path(sys.executable).parent / "medlabel"), "audit", "verify", "--home", str(home)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "COLUMNS": "200"},
        )
        cli_s = time.perf_counter() - t0
        cli_load = load.cores()
        if cli.returncode != 0:
            raise SystemExit(f"audit verify failed: {cli.stdout}{cli.stderr}")
        print(cli.stdout.strip())

        ctx = open_context(settings, migrate=False)
        runs = []
        for _ in range(args.repeat):
            wait_for_quiet(args.max_wait)
            with ctx.db.read() as s:
                t0 = time.perf_counter()
                result = verify_chain(s)
                runs.append(time.perf_counter() - t0)
            assert result.ok and result.rows == args.rows, result
        verify_load = load.cores()

        actor = Principal(id=1, username="reader01", role=Role.ANNOTATOR)
        t0 = time.perf_counter()
        for i in range(args.appends):
            with ctx.db.write() as s:
                record(s, actor, AuditAction.LABEL_UPDATE, target_type="label", target_id=i)
        append_s = time.perf_counter() - t0

        reads = ImageReadLog(ctx.db, window_seconds=600)
        reads.note(actor, 1, 1, "slice")
        n = 200_000
        t0 = time.perf_counter()
        for _ in range(n):
            reads.note(actor, 1, 1, "slice")
        note_us = (time.perf_counter() - t0) / n * 1e6
        ctx.close()

    verify_med = statistics.median(runs)
    print(
        table(
            [
                ["`medlabel audit verify` (subprocess)", f"{args.rows:,}", f"{cli_s:.1f}", ""],
                [
                    "verify_chain (in-process, median)",
                    f"{args.rows:,}",
                    f"{verify_med:.1f}",
                    f"{args.rows / verify_med:,.0f} rows/s",
                ],
                [
                    "record(), one transaction each",
                    f"{args.appends:,}",
                    f"{append_s:.1f}",
                    f"{args.appends / append_s:,.0f} appends/s",
                ],
                ["coalesced image read (repeat)", f"{n:,}", "", f"{note_us:.2f} µs each"],
            ],
            ["what", "rows", "seconds", "rate"],
        )
    )
    print(f"busy cores (all processes) during verify: CLI {cli_load}, in-process {verify_load}")
    save_result(
        "audit",
        {
            "benchmark": "audit",
            "machine": machine_info(),
            "rows": args.rows,
            "build_s": round(build_s, 2),
            "db_mb": round(size_mb, 1),
            "cli_verify_s": round(cli_s, 2),
            "cli_output": cli.stdout.strip(),
            "verify_s": {
                "median": round(verify_med, 2),
                "runs": [round(r, 3) for r in runs],
            },
            "verify_rows_per_s": round(args.rows / verify_med),
            "append_per_s": round(args.appends / append_s),
            "coalesced_read_us": round(note_us, 3),
            "busy_cores_all_processes": {"cli": cli_load, "in_process": verify_load},
            "quiet_wait": quiet,
        },
    )


if __name__ == "__main__":
    main()
