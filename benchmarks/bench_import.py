"""DICOM import throughput: medlabel (de-identification included) next to Orthanc's REST
ingest of the same files, in the same run.

Data (built in a temporary folder, see ``datasets.py``): ``ct`` — a 300-slice 512×512 CT
series whose slices all carry the real pixels of pydicom-data's 693_UNCR.dcm (new UIDs and
positions); ``mixed`` — 42 real instances of many modalities and transfer syntaxes from
pydicom's and pydicom-data's test files; ``all`` — both together (the headline figure).
``--data DIR`` measures any folder instead.

medlabel: ``import_paths`` called in-process on a fresh home per run (after one untimed
warm-up import, so module loading is not counted), and the ``medlabel import`` CLI end to
end (interpreter start, migrations and project creation included). Orthanc: a fresh
server per run, every file POSTed to ``/instances`` by 1 and by 4 client threads.

Usage::

    python benchmarks/bench_import.py            # full run (about 12 minutes on 2 cores)
    python benchmarks/bench_import.py --quick    # smoke check (30 CT slices, 1 run)
    python benchmarks/bench_import.py --profile  # also a py-spy breakdown per data set
    python benchmarks/bench_import.py --runs 5 --pairs 7 --profile   # docs/benchmarks.md

After the blocks of runs, ``--pairs`` (default 5) alternates a background import and
Orthanc with the most client threads on each data set and reports the ratio per pair.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from common import (
    MachineLoad,
    TreeCpuTracker,
    machine_info,
    save_result,
    summarize,
    table,
    tool_version,
    tree_cpu_seconds,
    wait_for_quiet,
)
from datasets import MIXED_FILES, build_import_set
from orthanc_proc import OrthancServer, ingest, orthanc_binary
from profiling import PidRecorder, breakdown, read_stacks, top_leaves

# Stages of an import, for the py-spy breakdown (first matching rule wins).
IMPORT_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("Python module imports (start-up, lazy imports)", ("_find_and_load",)),
    ("pixel decode: GDCM plugin", ("decoders/gdcm.py",)),
    (
        "pixel decode: other (openjpeg, libjpeg, RLE, native, YBR→RGB, LUTs)",
        ("pydicom/pixels/", "io/dicom/pixels.py"),
    ),
    ("write de-identified DICOM copy", ("dicom_file_bytes (",)),
    (
        "de-identify from the encoded elements (scan, walk, assemble the copy)",
        ("io/dicom/encoded.py", "security/deid/encoded.py"),
    ),
    ("de-identify", ("security/deid/",)),
    ("blob store writes (sha256 + file write)", ("storage/blob/",)),
    ("content key (sha256 of decoded pixels)", ("content_key (",)),
    ("pixel volume + thumbnail encoding", ("_put_volume", "staged_image (")),
    ("series assembly (geometry, stacking)", ("io/dicom/series.py", "io/dicom/stacking.py")),
    (
        "checks and index attributes of the de-identified header (pydicom values)",
        ("check_dataset (", "series_info (", "missing_frame_of_reference (", "is_image ("),
    ),
    ("read + parse full DICOM file", ("read_dataset",)),
    ("header pre-read for series grouping", ("_stage_dicom",)),
    ("scan folders + sniff file types", ("_scan", "imports/scan.py")),
    ("database (SQLAlchemy, migrations)", ("sqlalchemy", "alembic")),
    (
        "hand-over between workers and parent (pickle, .npy, pool)",
        ("prepare_dicom", "load_prepared", "concurrent/futures", "multiprocessing/"),
    ),
]
# charged by the innermost matching frame when no rule above matched
IMPORT_INNER_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("temporary work folder (create, remove)", ("shutil.py", "tempfile.py")),
]
MODE_NAMES = {
    "service": "in-process import_paths",
    "background": "in-process import_paths, background (stored + indexed)",
    "cli": "medlabel import (CLI)",
}
# Before each run, wait up to this long for other processes to leave the CPUs alone.
QUIET_WAIT_S = 60.0
CLI = [sys.executable, "-c", "from medlabel.cli.main import app; app()"]


def _medlabel_service_run(
    home: Path, paths: list[Path], skip_invalid: bool, background: bool = False, build: bool = True
) -> dict[str, Any]:
    from medlabel.core.settings import Settings
    from medlabel.services.context import open_context
    from medlabel.services.imports import ImportOptions, OnError, import_paths
    from medlabel.services.imports.prepare import prepare_import
    from medlabel.services.projects import create_project

    ctx = open_context(Settings(home=home))
    try:
        # like `medlabel serve`, which starts its import workers (and they warm up) with
        # the server: one short sleep per worker, so every worker has started
        pool = ctx.process_pool()
        if pool is not None:
            for future in [pool.submit(time.sleep, 0.3) for _ in range(ctx.import_workers)]:
                future.result()
        project = create_project(ctx, None, "bench")
        options = ImportOptions(
            on_error=OnError.SKIP if skip_invalid else OnError.FAIL, background=background
        )
        cpu0, t0 = _own_cpu(), time.perf_counter()
        summary = import_paths(ctx, None, project.id, paths, options=options)
        wall = time.perf_counter() - t0
        cpu = _own_cpu() - cpu0  # before close(): import worker processes are still alive
        out = {"wall_s": wall, "cpu_s": cpu, "counts": summary.counts}
        if background and build:  # then build the images, as the queued job would; timed
            built = prepare_import(ctx, summary.import_id)
            out["ready_s"] = time.perf_counter() - t0
            out["ready_counts"] = built.counts
    finally:
        ctx.close()
    return out


def _medlabel_cli_run(home: Path, paths: list[Path], skip_invalid: bool) -> dict[str, Any]:
    cmd = [*CLI, "import", *map(str, paths), "--project", "bench", "--home", str(home)]
    if skip_invalid:
        cmd.append("--skip-invalid")
    env = dict(os.environ, COLUMNS="1000", PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    with TreeCpuTracker(proc.pid) as cpu:  # the CLI and its import worker processes
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"medlabel import failed:\n{err.decode()[-2000:]}")
    text = " ".join(out.decode().split())
    m = re.search(r"\((\d+) DICOM instance", text)
    counts = {"instances": int(m.group(1)) if m else -1}
    return {"wall_s": wall, "cpu_s": cpu.total(), "counts": counts}


def _own_cpu() -> float:
    """CPU seconds of this process, its live descendants (e.g. an import worker pool)
    and its reaped children."""
    return tree_cpu_seconds(os.getpid()) + _children_cpu()


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def bench_medlabel(
    mode: str, paths: list[Path], runs: int, scratch: Path, expected: int | None
) -> dict[str, Any]:
    walls, rates, cores, others, ready = [], [], [], [], []
    counts: dict[str, Any] = {}
    for i in range(runs):
        home = Path(tempfile.mkdtemp(prefix=f"home-{mode}-", dir=scratch))
        quiet = wait_for_quiet(QUIET_WAIT_S) if QUIET_WAIT_S else None
        load = MachineLoad().start()
        try:
            if mode == "cli":
                r = _medlabel_cli_run(home, paths, skip_invalid=expected is None)
            else:
                r = _medlabel_service_run(
                    home, paths, skip_invalid=expected is None, background=mode == "background"
                )
        finally:
            shutil.rmtree(home, ignore_errors=True)
        cpu = r["cpu_s"]
        other = max(0.0, load.cores() - cpu / r["wall_s"])
        counts = r["counts"]
        n = counts["instances"]
        if expected is not None and (n != expected or counts.get("rejected", 0)):
            raise RuntimeError(f"medlabel stored {n} instances, expected {expected}: {counts}")
        if "ready_s" in r:
            final = r["ready_counts"]
            if expected is not None and (final["instances"] != n or final.get("rejected", 0)):
                raise RuntimeError(f"building the images lost instances: {final}")
            ready.append(r["ready_s"])
        walls.append(r["wall_s"])
        rates.append(n / r["wall_s"])
        cores.append(cpu / r["wall_s"])
        others.append(other)
        built = f"; images built after {r['ready_s']:.2f} s" if "ready_s" in r else ""
        print(
            f"  medlabel {mode:8s} run {i + 1}: {n} instances in {r['wall_s']:.2f} s "
            f"= {n / r['wall_s']:.1f}/s, {cpu / r['wall_s']:.2f} cores"
            f" (other load {other:.2f} cores{_quiet_note(quiet)}){built}"
        )
    extra = {"images_ready_s": summarize(ready, 2)} if ready else {}
    return {
        **extra,
        "system": "medlabel",
        "mode": MODE_NAMES[mode],
        "threads": 1,
        "instances": counts["instances"],
        "counts": counts,
        "wall_s": summarize(walls, 2),
        "instances_per_s": summarize(rates, 1),
        "cpu_cores_used": summarize(cores, 2),
        "other_load_cores": summarize(others, 2),
    }


def _quiet_note(quiet: dict[str, Any] | None) -> str:
    return "" if quiet is None or quiet["quiet"] else ", machine was not quiet"


def _guarded(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run one measurement; if medlabel fails, record the error instead of stopping, so
    the other systems are still measured."""
    try:
        result: dict[str, Any] = fn(*args, **kwargs)
        return result
    except Exception as exc:  # noqa: BLE001 - reported in the results
        first = args[0] if args else None
        mode = MODE_NAMES.get(first, "warm-up") if isinstance(first, str) else "warm-up"
        # the last line names the error (a failed CLI run ends with its traceback)
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [""]
        error = lines[-1] if type(exc) is RuntimeError else f"{type(exc).__name__}: {lines[-1]}"
        print(f"  medlabel {mode} FAILED: {error}")
        return {"system": "medlabel", "mode": mode, "error": error}


def bench_orthanc(
    files: list[Path], threads: int, runs: int, scratch: Path, expected: int | None
) -> dict[str, Any]:
    walls, rates, server_cores, client_cores, others = [], [], [], [], []
    stored = 0
    failed: list[str] = []
    for i in range(runs):
        workdir = scratch / f"orthanc-{threads}-{i}"
        quiet = wait_for_quiet(QUIET_WAIT_S) if QUIET_WAIT_S else None
        with OrthancServer(workdir) as server:
            load = MachineLoad().start()
            r = ingest(server, files, threads)
            other = max(0.0, load.cores() - (r.server_cpu_s + r.client_cpu_s) / r.wall_s)
            stored = int(server.get_json("/statistics")["CountInstances"])
        shutil.rmtree(workdir, ignore_errors=True)
        failed = r.failed
        if expected is not None and (stored != expected or failed):
            raise RuntimeError(f"Orthanc stored {stored}, expected {expected}: {failed[:5]}")
        walls.append(r.wall_s)
        rates.append(stored / r.wall_s)
        server_cores.append(r.server_cpu_s / r.wall_s)
        client_cores.append(r.client_cpu_s / r.wall_s)
        others.append(other)
        print(
            f"  Orthanc  {threads} thr    run {i + 1}: {stored} instances in {r.wall_s:.2f} s "
            f"= {stored / r.wall_s:.1f}/s, server {r.server_cpu_s / r.wall_s:.2f} cores, "
            f"client {r.client_cpu_s / r.wall_s:.2f} cores (other load {other:.2f} cores"
            f"{_quiet_note(quiet)})"
        )
    return {
        "system": "Orthanc",
        "mode": f"REST POST /instances, {threads} client thread(s)",
        "threads": threads,
        "instances": stored,
        "failed": failed[:20],
        "wall_s": summarize(walls, 2),
        "instances_per_s": summarize(rates, 1),
        "cpu_cores_used": summarize(server_cores, 2),
        "client_cpu_cores": summarize(client_cores, 2),
        "other_load_cores": summarize(others, 2),
    }


def bench_head_to_head(
    paths: list[Path],
    files: list[Path],
    threads: int,
    pairs: int,
    scratch: Path,
    expected: int | None,
) -> dict[str, Any]:
    """medlabel's background import and Orthanc with ``threads`` clients, run alternately
    (``pairs`` times each): on a shared machine whose speed drifts (other guests of the
    host), each pair sees about the same conditions, so the ratio within a pair is the
    fairer comparison."""
    print(f"  -- head to head: background import, then Orthanc with {threads} threads, x{pairs}")
    rates: list[tuple[float, float]] = []
    for _ in range(pairs):
        ours = bench_medlabel("background", paths, 1, scratch, expected)
        theirs = bench_orthanc(files, threads, 1, scratch, expected)
        rates.append((ours["instances_per_s"]["median"], theirs["instances_per_s"]["median"]))
    ratios = [a / b for a, b in rates]
    faster = sum(r >= 1 for r in ratios)
    print(
        f"  -- medlabel / Orthanc: median {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}–{max(ratios):.2f}); medlabel at least as fast in {faster} of {pairs}"
    )
    return {
        "modes": [MODE_NAMES["background"], f"REST POST /instances, {threads} client thread(s)"],
        "pairs": [{"medlabel": a, "orthanc": b} for a, b in rates],
        "medlabel_per_s": summarize([a for a, _ in rates], 1),
        "orthanc_per_s": summarize([b for _, b in rates], 1),
        "ratio": summarize(ratios, 2),
        "medlabel_at_least_as_fast": faster,
    }


def profile_import(
    paths: list[Path], scratch: Path, skip_invalid: bool, background: bool = False
) -> dict[str, Any]:
    """Sample one in-process import (this process, warmed up) with py-spy and split it
    into stages (``background``: the first stage only, until the import returns)."""
    home = Path(tempfile.mkdtemp(prefix="home-profile-", dir=scratch))
    out = scratch / f"import-{time.monotonic_ns()}.pyspy"
    rate = 200
    with PidRecorder(os.getpid(), out, subprocesses=True, rate=rate):
        run = _medlabel_service_run(home, paths, skip_invalid, background=background, build=False)
    stacks = read_stacks(out)
    result = breakdown(stacks, IMPORT_RULES, IMPORT_INNER_RULES)
    result.update(
        rate_hz=rate, wall_s_under_profiler=round(run["wall_s"], 2), top_leaves=top_leaves(stacks)
    )
    shutil.rmtree(home, ignore_errors=True)
    return result


def decode_costs(files: list[Path], top: int = 10) -> dict[str, Any]:
    """Seconds to read and decode each file as the importer does (``read_dataset`` +
    ``decode_frames``, in this process): the part of an import that Orthanc never does."""
    from medlabel.core.errors import MedlabelError
    from medlabel.io import dicom as dicom_io

    rows = []
    for f in files:
        t0 = time.perf_counter()
        try:
            ds = dicom_io.read_dataset(f, name=f.name)
            frames = dicom_io.decode_frames(ds, name=f.name)
        except MedlabelError:
            continue
        dt = time.perf_counter() - t0
        meta = getattr(ds, "file_meta", None)
        syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        rows.append((dt, f.name, list(frames.shape), syntax, f.stat().st_size))
    rows.sort(reverse=True)
    return {
        "total_s": round(sum(r[0] for r in rows), 2),
        "files": len(rows),
        "top": [
            {"file": n, "seconds": round(t, 3), "shape": sh, "transfer_syntax": ts, "bytes": b}
            for t, n, sh, ts, b in rows[:top]
        ],
    }


def cli_startup_seconds(runs: int) -> dict[str, Any]:
    """Wall time of ``medlabel --help``: interpreter start plus the CLI's module imports."""
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([*CLI, "--help"], capture_output=True, check=True)
        walls.append(time.perf_counter() - t0)
    return summarize(walls, 2)


def _du(paths: list[Path]) -> tuple[int, int]:
    files = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return len(files), sum(f.stat().st_size for f in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="Runs per measurement (default 3).")
    ap.add_argument("--ct-slices", type=int, default=300, help="Slices of the CT series.")
    ap.add_argument("--data", type=Path, help="Measure this folder instead of the built data.")
    ap.add_argument(
        "--datasets", default="all,ct,mixed", help="Which built data sets (default all,ct,mixed)."
    )
    ap.add_argument("--threads", default="1,4", help="Orthanc client threads (default 1,4).")
    ap.add_argument("--no-cli", action="store_true", help="Skip the CLI (end-to-end) runs.")
    ap.add_argument("--no-orthanc", action="store_true", help="Skip Orthanc.")
    ap.add_argument("--profile", action="store_true", help="py-spy breakdown of one import.")
    ap.add_argument(
        "--pairs",
        type=int,
        default=5,
        help="Alternating background / Orthanc (most threads) runs per data set (0: none).",
    )
    ap.add_argument(
        "--max-wait", type=float, default=60.0, help="Wait for a quiet machine (0: never)."
    )
    ap.add_argument("--quick", action="store_true", help="Smoke check: 30 slices, 1 run.")
    ap.add_argument("--out", default=None, help="Result name (default import / import_quick).")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.ct_slices, args.pairs = 1, 30, min(args.pairs, 1)
        args.max_wait = min(args.max_wait, 10.0)
    global QUIET_WAIT_S
    QUIET_WAIT_S = args.max_wait
    warnings.simplefilter("ignore")  # pydicom warns about the odd test files
    logging.disable(logging.WARNING)
    if not args.no_orthanc:
        orthanc_binary()

    scratch = Path(tempfile.mkdtemp(prefix="medlabel-bench-import-"))
    try:
        if args.data:
            datasets: dict[str, tuple[list[Path], int | None]] = {"data": ([args.data], None)}
        else:
            build_import_set(scratch / "data", args.ct_slices)
            ct, mixed = scratch / "data" / "ct", scratch / "data" / "mixed"
            n_ct, n_mixed = args.ct_slices, len(MIXED_FILES)
            built = {
                "all": ([ct, mixed], n_ct + n_mixed),
                "ct": ([ct], n_ct),
                "mixed": ([mixed], n_mixed),
            }
            datasets = {name: built[name] for name in args.datasets.split(",")}
        # untimed warm-up: load decoders, SQLAlchemy, migrations code
        warm = datasets[next(iter(datasets))][0]
        warm_home = Path(tempfile.mkdtemp(prefix="home-warmup-", dir=scratch))
        _guarded(_medlabel_service_run, warm_home, warm, skip_invalid=True, background=True)

        report: dict[str, Any] = {
            "benchmark": "dicom_import",
            "machine": machine_info(),
            "orthanc": tool_version(["Orthanc", "--version"]),
            "settings": {
                "datasets": list(datasets),
                "runs": args.runs,
                "ct_slices": args.ct_slices,
                "quick": args.quick,
                "data": str(args.data) if args.data else None,
            },
            "datasets": {},
        }
        rows = []
        pair_rows: list[list[Any]] = []
        for name, (paths, expected) in datasets.items():
            n_files, n_bytes = _du(paths)
            print(f"\n== {name}: {n_files} files, {n_bytes / 1e6:.1f} MB")
            results = [
                _guarded(bench_medlabel, mode, paths, args.runs, scratch, expected)
                for mode in ("service", "background")
            ]
            if not args.no_cli:
                results.append(_guarded(bench_medlabel, "cli", paths, args.runs, scratch, expected))
            if not args.no_orthanc:
                files = sorted(
                    f for p in paths for f in (p.rglob("*") if p.is_dir() else [p]) if f.is_file()
                )
                for threads in (int(t) for t in args.threads.split(",")):
                    results.append(bench_orthanc(files, threads, args.runs, scratch, expected))
            report["datasets"][name] = {"files": n_files, "bytes": n_bytes, "results": results}
            if not args.no_orthanc and args.pairs:
                most = max(int(t) for t in args.threads.split(","))
                report["datasets"][name]["head_to_head"] = bench_head_to_head(
                    paths, files, most, args.pairs, scratch, expected
                )
                h2h = report["datasets"][name]["head_to_head"]
                pair_rows.append(
                    [
                        name,
                        most,
                        f"{h2h['medlabel_per_s']['median']} ({h2h['medlabel_per_s']['min']}–"
                        f"{h2h['medlabel_per_s']['max']})",
                        f"{h2h['orthanc_per_s']['median']} ({h2h['orthanc_per_s']['min']}–"
                        f"{h2h['orthanc_per_s']['max']})",
                        f"{h2h['ratio']['median']} ({h2h['ratio']['min']}–{h2h['ratio']['max']})",
                        f"{h2h['medlabel_at_least_as_fast']} of {args.pairs}",
                    ]
                )
            if name in ("mixed", "data"):
                files = sorted(
                    f for p in paths for f in (p.rglob("*") if p.is_dir() else [p]) if f.is_file()
                )
                costs = decode_costs(files)
                report["datasets"][name]["decode_costs"] = costs
                print(f"  read + decode in-process: {costs['total_s']} s, {costs['files']} files")
            for r in results:
                if "error" in r:
                    err = r["error"][:70]
                    rows.append([name, r["system"], r["mode"], "FAILED", err, "", "", ""])
                    continue
                ips, wall = r["instances_per_s"], r["wall_s"]
                rows.append(
                    [
                        name,
                        r["system"],
                        r["mode"],
                        r["instances"],
                        f"{wall['median']:.2f} ({wall['min']:.2f}–{wall['max']:.2f})",
                        f"{ips['median']} ({ips['min']}–{ips['max']})",
                        r["cpu_cores_used"]["median"],
                        r["other_load_cores"]["median"],
                    ]
                )
        if not args.no_cli:
            report["cli_startup_s"] = cli_startup_seconds(args.runs)
            print(f"\nmedlabel --help (CLI start-up): {report['cli_startup_s']['median']} s")
        if args.profile:
            report["profile"] = {}
            profiled = [
                (f"{name}, {how}", paths, expected, how == "background")
                for name, (paths, expected) in datasets.items()
                if name != "all"  # the sum of ct and mixed
                for how in ("one stage", "background")
            ]
            for key, paths, expected, background in profiled:
                print(f"\n== py-spy breakdown of one in-process import: {key}")
                try:
                    prof = profile_import(
                        paths, scratch, skip_invalid=expected is None, background=background
                    )
                except Exception as exc:  # noqa: BLE001 - reported in the results
                    print(f"  FAILED: {type(exc).__name__}: {exc}")
                    report["profile"][key] = {"error": f"{type(exc).__name__}: {exc}"}
                    continue
                report["profile"][key] = prof
                prof_rows = [
                    [k, v["samples"], f"{100 * v['share']:.1f}%"] for k, v in prof["stages"].items()
                ]
                print(table(prof_rows, ["stage", "samples", "share"]))
        header = [
            "data",
            "system",
            "mode",
            "instances",
            "wall s, median (min–max)",
            "instances/s, median (min–max)",
            "CPU cores (importer / Orthanc server)",
            "other load, cores",
        ]
        print("\n" + table(rows, header))
        if pair_rows:
            print(
                "\nhead to head (alternating runs):\n"
                + table(
                    pair_rows,
                    [
                        "data",
                        "Orthanc threads",
                        "medlabel background /s",
                        "Orthanc /s",
                        "ratio",
                        "medlabel ≥ Orthanc",
                    ],
                )
            )
        path = save_result(args.out or ("import_quick" if args.quick else "import"), report)
        print(f"\nsaved {path}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
