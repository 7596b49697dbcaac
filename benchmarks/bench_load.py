"""Load: 50 concurrent simulated annotators against ``medlabel serve``, on SQLite and on
PostgreSQL, then a check that no acknowledged save was lost.

Set-up, per database: a fresh home (and, for PostgreSQL, a throw-away PostgreSQL 15 with
fsync on, see ``pg_proc.py``) is served by ``medlabel serve --workers N`` as a user would
start it; the server migrates the empty database at start-up. Through the services a
project is created with three labels (box ``lesion``, masks ``organ`` and ``tumour``), a
few CT series (pixels of pydicom-data's 693_UNCR.dcm, see ``datasets.py``) are imported,
and 50 users are created with one API token each: ``--reviewers`` of them are project
reviewers, the rest annotators. Every user first creates its own annotation of one image
(``user % images``; not timed).

Then, for ``--seconds``, every user loops (``--think`` seconds mean pause, exponential,
between actions): list the project's images, render ``--slices-per-round`` random
slices (``slice.png``, random index and CT preset), and save a new revision of its own
annotation with the version it holds (a box edit that keeps the mask, or with
``--mask-share`` probability a painted or erased region of the mask). Reviewers
besides load another user's annotation, pause, and save a box correction to it. A save
on stale data gets HTTP 409: counted as a conflict, not an error; the owner then
reloads its annotation. Errors are any other non-2xx response, a bad body, or a failed
or timed-out request (``--timeout``).

After the run every acknowledged save is checked through the API (admin token): its
revision exists with the boxes, message and mask the client sent (masks fetched and
hashed; a kept mask must match its parent's), numbers run 1..n with each parent the
previous revision, the head is the last one, and no revision exists that no client saw
(beyond saves whose outcome a timeout left unknown). ``medlabel audit verify`` checks
the audit chain the saves appended to, and the server log is searched for tracebacks.

Usage::

    python benchmarks/bench_load.py                  # SQLite then PostgreSQL, 120 s each
    python benchmarks/bench_load.py --db sqlite --seconds 20 --out load_smoke
    python benchmarks/bench_load.py --think 0        # closed loop, no pauses: saturation
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zlib
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench_slices import CLI, Server, _per_process_cpu
from common import (
    MachineLoad,
    machine_info,
    save_result,
    table,
    tree_cpu_seconds,
    wait_for_quiet,
)
from datasets import write_ct_series
from loadusers import (
    BOX_LABEL,
    MASK_VALUES,
    Fixture,
    Plan,
    SimUser,
    UserLog,
    create_annotations,
    op_stats,
    verify,
)
from pg_proc import PostgresServer

# --------------------------------------------------------------------------- set-up


class SlowStartServer(Server):
    """bench_slices' ``Server`` with a longer readiness wait: on a busy shared machine
    the worker processes' imports alone can take a minute."""

    ready_timeout = 240.0

    def __enter__(self) -> SlowStartServer:
        with self.log.open("wb") as log:
            env = dict(os.environ, PYTHONWARNINGS="ignore")
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log}")
            try:
                if httpx.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"server not ready after {self.ready_timeout:g} s; see {self.log}")


def prepare(home: Path, series: list[Path], users: int, reviewers: int) -> Fixture:
    """Project, labels, images, users and tokens, through the services (the server is
    already running on this home and has migrated its database)."""
    from medlabel.annotation.enums import LabelKind
    from medlabel.annotation.schema import LabelSpec
    from medlabel.core.settings import Settings
    from medlabel.security.roles import ProjectRole, Role
    from medlabel.security.tokens import TokenKind
    from medlabel.services import users as users_svc
    from medlabel.services.context import open_context
    from medlabel.services.images import get_image
    from medlabel.services.imports import import_paths
    from medlabel.services.projects import (
        add_labels,
        create_project,
        set_member,
        update_project,
    )

    ctx = open_context(Settings(home=home, preload_engines=[]), migrate=False)
    try:
        project = create_project(ctx, None, "load")
        add_labels(
            ctx,
            None,
            project.id,
            [LabelSpec(name=BOX_LABEL, kind=LabelKind.BOX)]
            + [LabelSpec(name=n, kind=LabelKind.MASK, value=v) for v, n in MASK_VALUES.items()],
        )
        admin = users_svc.create_user(ctx, "loadadmin", secrets.token_urlsafe(18), Role.ADMIN)
        boss = users_svc.principal_of(admin)
        # every image gets the readers its users will be: one annotation per user
        update_project(ctx, boss, project.id, readers_per_image=-(-users // len(series)))
        image_ids: list[int] = []
        for folder in series:
            image_ids += import_paths(ctx, None, project.id, [folder]).image_ids
        if len(image_ids) != len(series):
            raise RuntimeError(f"expected {len(series)} images, got {image_ids}")
        tokens = []
        for i in range(users):
            user = users_svc.create_user(
                ctx, f"reader{i:02d}", secrets.token_urlsafe(18), Role.ANNOTATOR
            )
            role = ProjectRole.REVIEWER if i < reviewers else ProjectRole.ANNOTATOR
            set_member(ctx, None, project.id, user.id, role)
            secret, _ = users_svc.issue_token(
                ctx, users_svc.principal_of(user), TokenKind.API, name="load"
            )
            tokens.append(secret)
        admin_token, _ = users_svc.issue_token(ctx, boss, TokenKind.API, name="verify")
        shape = tuple(get_image(ctx, boss, image_ids[0]).shape)
    finally:
        ctx.close()
    return Fixture(project.id, image_ids, shape, tokens, reviewers, admin_token)


def audit_verify(home: Path) -> dict[str, Any]:
    """``medlabel audit verify`` on the home (its database URL from the environment)."""
    out = subprocess.run(
        [*CLI, "audit", "verify", "--home", str(home)],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    return {"ok": out.returncode == 0, "output": (out.stdout + out.stderr).strip()[-500:]}


def scan_log(path: Path) -> dict[str, Any]:
    """Tracebacks, 5xx access-log lines and lock errors in the server's log."""
    text = path.read_text(errors="replace")
    # uvicorn's access log ('"GET / HTTP/1.1" 500') and medlabel's ('GET / 500 12.0 ms')
    server_errors = re.findall(r'" 5\d\d |\s5\d\d [\d.]+ ms', text)
    excs = re.findall(r"^\w+(?:\.\w+)*(?:Error|Exception): .{0,200}", text, re.MULTILINE)
    return {
        "tracebacks": text.count("Traceback (most recent call last)"),
        "http_5xx_lines": len(server_errors),
        "database_is_locked": text.count("database is locked"),
        "exceptions": sorted(set(excs))[:10],
    }


# --------------------------------------------------------------------------- driver


def run_database(
    db: str, args: argparse.Namespace, scratch: Path, series: list[Path]
) -> dict[str, Any]:
    """Set up, drive and verify one database; returns its report."""
    home = scratch / f"home-{db}"
    log_path = (Path(args.keep_logs) if args.keep_logs else scratch) / f"server-{db}.log"
    result: dict[str, Any] = {"database": db, "workers": args.workers}
    with ExitStack() as stack:
        env_keys = ("MEDLABEL_DATABASE_URL", "MEDLABEL_PRELOAD_ENGINES")
        saved_env = {k: os.environ.get(k) for k in env_keys}
        os.environ["MEDLABEL_PRELOAD_ENGINES"] = "[]"
        os.environ.pop("MEDLABEL_DATABASE_URL", None)
        if db == "postgresql":
            pg = stack.enter_context(PostgresServer(fsync=not args.pg_fsync_off))
            os.environ["MEDLABEL_DATABASE_URL"] = pg.url
            result["postgresql"] = pg.settings()
        else:
            result["sqlite"] = {"journal_mode": "WAL", "synchronous": "NORMAL"}
        try:
            t0 = time.perf_counter()
            server = stack.enter_context(SlowStartServer(home, args.workers, log_path))
            result["server_start_and_migrate_s"] = round(time.perf_counter() - t0, 1)
            fx = prepare(home, series, args.users, args.reviewers)
            print(f"  {len(fx.image_ids)} images {fx.shape}, {args.users} users ready")
            seed = UserLog()
            owns = create_annotations(server.port, fx, seed)
            plan = Plan(
                args.seconds,
                args.think,
                args.slices_per_round,
                args.mask_share,
                args.review_share,
                args.timeout,
            )
            sims = [SimUser(u, fx, owns[u], server.port, plan, owns) for u in range(args.users)]
            quiet = wait_for_quiet(args.max_wait) if args.max_wait else None
            print(f"  driving {args.users} users for {args.seconds:g} s (think {args.think} s)")
            db_pid = pg.pid if db == "postgresql" else None
            db0 = tree_cpu_seconds(db_pid) if db_pid else 0.0
            cpu0, client0 = _per_process_cpu(server.pid), time.process_time()
            load = MachineLoad().start()
            t0 = time.perf_counter()
            deadline = time.monotonic() + args.seconds
            threads = [threading.Thread(target=s.run, args=(deadline,)) for s in sims]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            busy = load.cores()
            cpu1 = _per_process_cpu(server.pid)
            per = sorted(
                (round((cpu1[p] - cpu0.get(p, 0.0)) / wall, 2) for p in cpu1), reverse=True
            )
            client_cores = round((time.process_time() - client0) / wall, 2)
            db_cores = round((tree_cpu_seconds(db_pid) - db0) / wall, 2) if db_pid else 0.0
            logs = [s.log for s in sims]
            result.update(
                duration_s=round(wall, 1),
                quiet=quiet,
                ops=op_stats(logs, wall),
                conflicts_409=sum(log.conflicts for log in logs),
                stale_connection_retries=sum(log.stale_retries for log in logs),
                errors=sum(len(log.errors) for log in logs),
                error_samples=sorted({e for log in logs for e in log.errors})[:20],
                server_cpu_cores=round(sum(per), 2),
                server_cpu_cores_per_process=per,
                client_cpu_cores=client_cores,
                postgresql_cpu_cores=db_cores if db_pid else None,
                other_load_cores=round(max(0.0, busy - sum(per) - client_cores - db_cores), 2),
                machine_busy_cores=busy,
            )
            print("  verifying every acknowledged save ...")
            try:
                result["verification"] = verify(server.port, fx, owns, [seed, *logs])
            except (OSError, ValueError, KeyError, TypeError, zlib.error) as exc:  # keep figures
                result["verification"] = {"ok": False, "error": repr(exc), "problems": []}
        finally:
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        # audit chain and server log, with the server still configured in the environment
        if db == "postgresql":
            os.environ["MEDLABEL_DATABASE_URL"] = pg.url
        try:
            result["audit_verify"] = audit_verify(home)
        finally:
            os.environ.pop("MEDLABEL_DATABASE_URL", None)
            if saved_env["MEDLABEL_DATABASE_URL"] is not None:
                os.environ["MEDLABEL_DATABASE_URL"] = saved_env["MEDLABEL_DATABASE_URL"]
    result["server_log"] = scan_log(log_path)
    return result


def print_report(res: dict[str, Any]) -> None:
    rows = []
    for op, s in res["ops"].items():
        lat = s["latency_ms"]
        rows.append(
            [
                op,
                s["requests"],
                s["requests_per_s"],
                lat["p50"],
                lat["p95"],
                lat["p99"],
                s["conflicts_409"],
                s["errors"],
            ]
        )
    header = ["operation", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "409", "errors"]
    print(table(rows, header))
    v = res["verification"]
    if "error" in v:
        print(f"  verification failed: {v['error']}")
        return
    print(
        f"  server {res['server_cpu_cores']} cores {res['server_cpu_cores_per_process']}, "
        f"PostgreSQL {res['postgresql_cpu_cores']}, client {res['client_cpu_cores']}, "
        f"other load {res['other_load_cores']} cores"
    )
    print(
        f"  verification: {v['acknowledged_saves']} acknowledged saves, "
        f"{v['unanswered_saves']} unanswered, {v['server_revisions']} revisions on the server "
        f"({v['committed_after_no_answer']} committed after the client gave up), lost "
        f"{v['lost_writes']}, phantom {v['phantom_revisions']}, content mismatches "
        f"{v['content_mismatches']}, mask mismatches {v['mask_mismatches']} "
        f"({v['masks_fetched']} masks fetched), chain breaks {v['chain_breaks']} -> "
        f"{'OK' if v['ok'] else 'PROBLEMS'}"
    )
    for p in v["problems"][:10]:
        print(f"    !! {p}")
    print(f"  audit verify: {res['audit_verify']['output']}")
    print(f"  server log: {res['server_log']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="sqlite,postgresql", help="sqlite, postgresql or both.")
    ap.add_argument("--seconds", type=float, default=120.0, help="Measured seconds per database.")
    ap.add_argument("--users", type=int, default=50, help="Simulated users.")
    ap.add_argument("--reviewers", type=int, default=5, help="Of them, project reviewers.")
    ap.add_argument("--workers", type=int, default=2, help="medlabel serve --workers.")
    ap.add_argument("--think", type=float, default=0.5, help="Mean pause between actions, s.")
    ap.add_argument("--slices-per-round", type=int, default=3, help="Slices rendered per round.")
    ap.add_argument("--mask-share", type=float, default=0.25, help="Own saves that edit the mask.")
    ap.add_argument(
        "--review-share", type=float, default=0.5, help="Rounds where a reviewer edits another's."
    )
    ap.add_argument("--images", type=int, default=4, help="CT series in the project.")
    ap.add_argument("--slices", type=int, default=40, help="Slices per CT series (512×512).")
    ap.add_argument("--timeout", type=float, default=60.0, help="Client timeout per request, s.")
    ap.add_argument(
        "--max-wait", type=float, default=60.0, help="Wait for a quiet machine (0: never)."
    )
    ap.add_argument(
        "--pg-fsync-off", action="store_true", help="PostgreSQL with fsync=off (tests only)."
    )
    ap.add_argument("--keep-logs", default=None, help="Write the server logs to this folder.")
    ap.add_argument("--out", default="load", help="Result name prefix (<out>_<db>.json).")
    args = ap.parse_args()
    if not 0 <= args.reviewers < args.users:
        raise SystemExit("--reviewers must be below --users")
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)

    scratch = Path(tempfile.mkdtemp(prefix="medlabel-bench-load-"))
    try:
        series = []
        for i in range(args.images):
            folder = scratch / f"ct{i}"
            _shifted(write_ct_series(folder, args.slices, tag=f"bench-load-{i}"), 500.0 * i)
            series.append(folder)
        for db in args.db.split(","):
            print(f"\n== {db}: medlabel serve --workers {args.workers}, {args.users} users")
            res = run_database(db, args, scratch, series)
            report = {
                "benchmark": "load",
                "machine": machine_info(),
                "source": source_state(),
                "settings": {
                    k: getattr(args, k)
                    for k in (
                        "seconds",
                        "users",
                        "reviewers",
                        "workers",
                        "think",
                        "slices_per_round",
                        "mask_share",
                        "review_share",
                        "images",
                        "slices",
                        "timeout",
                        "pg_fsync_off",
                    )
                },
                "command": "python benchmarks/bench_load.py " + " ".join(sys.argv[1:]),
                **res,
            }
            print_report(res)
            path = save_result(f"{args.out}_{db}", report)
            print(f"  saved {path}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _shifted(paths: list[Path], dz: float) -> None:
    """Move a series ``dz`` mm along the patient axis: the importer treats instances
    with the same pixels at the same position as duplicates, so each series of the
    same source pixels needs its own positions to become its own image."""
    import pydicom

    for path in paths:
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + dz]
        ds.SliceLocation = z + dz
        ds.save_as(path, enforce_file_format=True)


def source_state() -> dict[str, Any]:
    """The commit measured and how many source files differed from it (several people
    edit one working tree; the server runs whatever is on disk when it starts)."""
    root = Path(__file__).resolve().parent.parent

    def git(*cmd: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(root), *cmd], capture_output=True, text=True, check=False
        )
        return out.stdout.strip()

    changed = [ln[3:] for ln in git("status", "--porcelain", "src").splitlines()]
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_src_files": changed}


if __name__ == "__main__":
    main()
