"""PACS pull throughput: studies/minute from Orthanc (DICOMweb) into a project,
de-identification included.

Data (built in a temporary folder): ``--studies`` CT studies of ``--slices`` 512×512
slices each, every slice carrying the real pixels of pydicom-data's 693_UNCR.dcm with
new UIDs, its own patient (``BENCH000``...), accession number and slice positions (so no
instance is a duplicate of another). They are uploaded once to a throw-away Orthanc
with its DICOMweb plugin (not timed).

Measured, each run on a fresh medlabel home: :func:`medlabel.services.pacs.pull` of all
studies through a PACS connection — WADO-RS retrieval streamed to disk, then the upload
import pipeline (read, de-identify, store, build volumes) study by study. Separately, the
WADO-RS retrieval alone (no import), to show where the time goes.

Usage::

    python benchmarks/bench_pacs.py            # 10 studies x 50 slices, 3 runs (~2 min)
    python benchmarks/bench_pacs.py --quick    # 3 studies x 20 slices, 1 run
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import generate_uid

from common import (
    RESULTS_DIR,
    MachineLoad,
    machine_info,
    save_result,
    summarize,
    table,
    tool_version,
    tree_cpu_seconds,
    wait_for_quiet,
)
from datasets import CT_SOURCE, testdata_path
from orthanc_proc import DICOMWEB_PLUGIN, OrthancServer, ingest, orthanc_binary


def write_studies(dest: Path, studies: int, slices: int) -> list[list[Path]]:
    """``studies`` CT studies of ``slices`` slices (pixels of 693_UNCR.dcm), one patient
    each; positions differ between studies so none is a duplicate of another."""
    src = pydicom.dcmread(testdata_path(CT_SOURCE))
    step = float(src.get("SliceThickness") or 1.0)
    x, y, z0 = (float(v) for v in src.ImagePositionPatient)
    out = []
    for i in range(studies):
        folder = dest / f"study{i:03d}"
        folder.mkdir(parents=True)
        study_uid = generate_uid(entropy_srcs=["pacs-bench", str(i), "study"])
        series_uid = generate_uid(entropy_srcs=["pacs-bench", str(i), "series"])
        paths = []
        for k in range(1, slices + 1):
            ds = src.copy()
            sop = generate_uid(entropy_srcs=["pacs-bench", str(i), "sop", str(k)])
            ds.PatientID = f"BENCH{i:03d}"
            ds.PatientName = f"Bench^Patient{i:03d}"
            ds.AccessionNumber = f"ACC{i:05d}"
            ds.StudyDescription = "PACS benchmark CT"
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.SeriesNumber, ds.InstanceNumber = 1, k
            z = z0 + (i * (slices + 10) + k) * step
            ds.ImagePositionPatient = [x, y, z]
            ds.SliceLocation = z
            path = folder / f"ct_{k:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        out.append(paths)
    return out


def run_pull(url: str, uids: list[str], home: Path) -> dict[str, Any]:
    """One timed pull of every study into a new project of a fresh medlabel home."""
    from medlabel.core.settings import Settings
    from medlabel.services import pacs
    from medlabel.services.context import open_context
    from medlabel.services.projects import create_project

    ctx = open_context(Settings(home=home, preload_engines=[]))
    try:
        project = create_project(ctx, None, "bench")
        conn = pacs.create_connection(ctx, None, project.id, {"name": "orthanc", "url": url})
        ctx.prestart_process_pool()
        time.sleep(1.0)  # the import workers are up, as in a running server
        load = MachineLoad().start()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        result = pacs.pull(ctx, None, conn.id, uids)
        wall = time.perf_counter() - t0
        return {
            "wall_s": wall,
            "client_cpu_s": time.process_time() - cpu0,
            "machine_load_cores": load.cores(),
            "counts": result.counts,
            "images": len(result.image_ids),
        }
    finally:
        ctx.close()


def run_local_import(folders: list[Path], home: Path) -> float:
    """The same studies imported from local folders (no PACS), study by study, for
    comparison under the same machine load."""
    from medlabel.core.settings import Settings
    from medlabel.services.context import open_context
    from medlabel.services.imports import import_paths
    from medlabel.services.projects import create_project

    ctx = open_context(Settings(home=home, preload_engines=[]))
    try:
        project = create_project(ctx, None, "bench")
        ctx.prestart_process_pool()
        time.sleep(1.0)
        t0 = time.perf_counter()
        for folder in folders:
            import_paths(ctx, None, project.id, [folder])
        return time.perf_counter() - t0
    finally:
        ctx.close()


def run_retrieve(url: str, uids: list[str], dest: Path) -> float:
    from medlabel.io.dicomweb import DicomwebClient

    t0 = time.perf_counter()
    with DicomwebClient(url) as client:
        for n, uid in enumerate(uids):
            client.retrieve(dest / str(n), uid)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studies", type=int, default=10)
    ap.add_argument("--slices", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="3 studies x 20 slices, 1 run")
    ap.add_argument("--max-wait", type=float, default=60, help="seconds to wait for quiet")
    args = ap.parse_args()
    if args.quick:
        args.studies, args.slices, args.runs = 3, 20, 1
    logging.basicConfig(level=logging.WARNING)
    orthanc_binary()
    if not DICOMWEB_PLUGIN.exists():
        raise SystemExit(f"the Orthanc DICOMweb plugin is missing ({DICOMWEB_PLUGIN})")

    work = Path(tempfile.mkdtemp(prefix="bench-pacs-"))
    try:
        studies = write_studies(work / "data", args.studies, args.slices)
        files = [p for s in studies for p in s]
        size = sum(p.stat().st_size for p in files)
        uids = [
            str(pydicom.dcmread(s[0], stop_before_pixels=True).StudyInstanceUID) for s in studies
        ]
        with OrthancServer(work / "orthanc") as server:
            up = ingest(server, files, threads=4)
            if up.failed:
                raise SystemExit(f"upload to Orthanc failed: {up.failed[:3]}")
            url = f"{server.url}/dicom-web"
            runs: list[dict[str, Any]] = []
            retrieve_s: list[float] = []
            local_s: list[float] = []
            for r in range(args.runs):
                quiet = wait_for_quiet(args.max_wait)
                cpu0 = tree_cpu_seconds(server.pid)
                run = run_pull(url, uids, work / f"home{r}")
                run["orthanc_cpu_s"] = tree_cpu_seconds(server.pid) - cpu0
                run["quiet"] = quiet
                runs.append(run)
                shutil.rmtree(work / f"home{r}", ignore_errors=True)
                retrieve_s.append(run_retrieve(url, uids, work / f"wado{r}"))
                shutil.rmtree(work / f"wado{r}", ignore_errors=True)
                folders = [s[0].parent for s in studies]
                local_s.append(run_local_import(folders, work / f"local{r}"))
                shutil.rmtree(work / f"local{r}", ignore_errors=True)
                print(
                    f"run {r + 1}: {run['wall_s']:.1f} s for {len(uids)} studies "
                    f"({run['counts'].get('instances', 0)} instances); WADO-RS alone "
                    f"{retrieve_s[-1]:.1f} s; local import {local_s[-1]:.1f} s",
                    file=sys.stderr,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n_inst = len(files)
    walls = [r["wall_s"] for r in runs]
    payload: dict[str, Any] = {
        "benchmark": "pacs_pull",
        "machine": machine_info(),
        "orthanc": tool_version([orthanc_binary(), "--version"]),
        "settings": {"studies": args.studies, "slices": args.slices, "runs": args.runs},
        "data": {"instances": n_inst, "bytes": size, "upload_to_orthanc_s": round(up.wall_s, 2)},
        "pull": {
            "wall_s": summarize(walls, 2),
            "studies_per_minute": summarize([60 * len(uids) / w for w in walls]),
            "instances_per_s": summarize([n_inst / w for w in walls]),
            "mib_per_s": summarize([size / 2**20 / w for w in walls]),
            "client_cpu_s": summarize([r["client_cpu_s"] for r in runs], 2),
            "orthanc_cpu_s": summarize([r["orthanc_cpu_s"] for r in runs], 2),
            "machine_load_cores": summarize([r["machine_load_cores"] for r in runs], 2),
            "counts": runs[-1]["counts"],
            "images": runs[-1]["images"],
            "quiet": [r["quiet"] for r in runs],
        },
        "local_import": {
            "wall_s": summarize(local_s, 2),
            "instances_per_s": summarize([n_inst / w for w in local_s]),
        },
        "wado_rs_only": {
            "wall_s": summarize(retrieve_s, 2),
            "instances_per_s": summarize([n_inst / w for w in retrieve_s]),
        },
    }
    for r in runs:
        assert r["counts"].get("instances") == n_inst, r["counts"]  # all imported
    path = save_result("pacs", payload)
    md = markdown(payload)
    (RESULTS_DIR / "pacs.md").write_text(md)
    print(md)
    print(f"wrote {path}", file=sys.stderr)


def markdown(p: dict[str, Any]) -> str:
    pull, wado, m = p["pull"], p["wado_rs_only"], p["machine"]
    s = p["settings"]
    quiet = [q.get("quiet", False) for q in pull["quiet"]]
    quiet_note = (
        ""
        if all(quiet)
        else f" ({quiet.count(False)} of {len(quiet)} runs started while other processes "
        "kept the machine busy: the figures are lower than on a quiet machine)"
    )
    rows = [
        [
            "pull (WADO-RS + de-identifying import)",
            pull["wall_s"]["median"],
            pull["studies_per_minute"]["median"],
            pull["instances_per_s"]["median"],
            pull["mib_per_s"]["median"],
        ],
        [
            "import of the same files from local folders (no PACS)",
            p["local_import"]["wall_s"]["median"],
            round(60 * s["studies"] / p["local_import"]["wall_s"]["median"], 1),
            p["local_import"]["instances_per_s"]["median"],
            round(p["data"]["bytes"] / 2**20 / p["local_import"]["wall_s"]["median"], 1),
        ],
        [
            "WADO-RS retrieval alone (to disk)",
            wado["wall_s"]["median"],
            round(60 * s["studies"] / wado["wall_s"]["median"], 1),
            wado["instances_per_s"]["median"],
            round(p["data"]["bytes"] / 2**20 / wado["wall_s"]["median"], 1),
        ],
    ]
    return (
        "## PACS pull (DICOMweb)\n\n"
        f"{s['studies']} CT studies of {s['slices']} slices (512×512, 16-bit; "
        f"{p['data']['instances']} instances, {p['data']['bytes'] / 2**20:.0f} MiB) in a local "
        f"Orthanc ({p['orthanc']}) with its DICOMweb plugin, pulled into a fresh project "
        "with `medlabel.services.pacs.pull` (the `pacs_pull` job's code): WADO-RS "
        "retrieval streamed to disk, then the upload import pipeline (PS3.15 "
        "de-identification, duplicate check, blob store, volumes and thumbnails), study by "
        f"study. Median of {s['runs']} run(s), each on a new medlabel home; Orthanc on the "
        f"same machine ({m['nproc']} cores, {m['cpu_model']}).\n\n"
        + table(rows, ["what", "wall s", "studies/min", "instances/s", "MiB/s"])
        + "\n\n"
        f"CPU during the pull: medlabel process {pull['client_cpu_s']['median']} s "
        f"(plus its import workers), Orthanc {pull['orthanc_cpu_s']['median']} s; the whole "
        f"machine was busy {pull['machine_load_cores']['median']} cores on average"
        f"{quiet_note}. The WADO-RS retrieval is a small share of a pull: a pull runs at "
        "the speed of the de-identifying import, as the row for the same files imported "
        "from local folders (measured in the same runs, under the same load) shows. Slice "
        "pixels are repeated from pydicom-data's 693_UNCR.dcm with new UIDs and positions; "
        "figures are single-machine and vary with other work on the CPUs (compare "
        "`bench_import.py` for the import on a quiet machine).\n"
    )


if __name__ == "__main__":
    main()
