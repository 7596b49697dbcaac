"""Latency of LiteMedSAM prompts as the workspace sends them: a new slice, then the same.

For each image, through ``medlabel.engines.runner.run`` (validation and provenance
included, as the service calls it):

* **first prompt on a new slice**: a box on an image whose embedding is not cached
  (preprocessing, image encoder, decoder, mask back on the image grid);
* **next prompts on the same slice**: a second box and two corrective clicks (decoder and
  click corrections; the embedding comes from the cache).

Images: Kvasir-SEG colonoscopy frames (384×288 RGB, ``--data``) and the 512×512 head CT
slice ``693_UNCR.dcm`` of pydicom-data. The model is loaded and warmed up on another
image first. Targets: first prompt ≤ 1.5 s p50, next prompt ≤ 0.2 s p50.

Usage::

    python benchmarks/bench_ai_latency.py --data ../shared/data --images 20
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import statistics
import time

import numpy as np
from PIL import Image

from common import MachineLoad, machine_info, save_result, table, wait_for_quiet
from medlabel.engines import runner
from medlabel.engines.base import EngineRequest
from medlabel.engines.interactive.litemedsam import LiteMedSAMEngine
from medlabel.imaging.volume import Volume


def _kvasir(data: str, n: int) -> list[tuple[str, Volume, np.ndarray]]:
    out = []
    for path in sorted(glob.glob(os.path.join(data, "kvasir_seg", "images", "*.jpg")))[:n]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        mask = np.asarray(Image.open(path.replace("images", "masks")).convert("L")) > 127
        vol = Volume.from_spacing(rgb[None], spacing=(1, 1, 1), modality="ES")
        out.append((os.path.basename(path), vol, mask))
    return out


def _ct() -> tuple[str, Volume, np.ndarray] | None:
    try:
        import pydicom
        from pydicom.data import get_testdata_file

        path = get_testdata_file("693_UNCR.dcm")
    except (ImportError, OSError, ValueError):
        return None
    if path is None:
        return None
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    vol = Volume.from_spacing(hu.astype(np.int16)[None], spacing=(1, 0.5, 0.5), modality="CT")
    mask = np.zeros(hu.shape, bool)
    mask[180:330, 150:300] = True  # a box over the brain
    return "693_UNCR.dcm", vol, mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--images", type=int, default=20)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet = wait_for_quiet(120)
    engine = LiteMedSAMEngine()
    cases = _kvasir(args.data, args.images)
    ct = _ct()
    if ct is not None:
        cases.append(ct)
    # load the model and warm it up on an image not measured
    rng = np.random.default_rng(0)
    warm = Volume.from_spacing(rng.integers(0, 255, (1, 256, 256), dtype=np.uint8))
    runner.run(engine, warm, EngineRequest(axis=0, index=0, box=((0, 10, 10), (0, 100, 100))))
    first, nxt = [], []
    load = MachineLoad().start()
    for _name, vol, mask in cases:
        rows, cols = np.nonzero(mask)
        b = (
            (0.0, float(rows.min()), float(cols.min())),
            (0.0, float(rows.max()), float(cols.max())),
        )
        t0 = time.perf_counter()
        runner.run(engine, vol, EngineRequest(axis=0, index=0, box=b))
        first.append(time.perf_counter() - t0)
        b2 = ((0.0, b[0][1] + 3, b[0][2] + 3), (0.0, b[1][1] - 3, b[1][2] - 3))
        click = (0.0, float(rows.mean()), float(cols.mean()))
        for req in (
            EngineRequest(axis=0, index=0, box=b2),
            EngineRequest(axis=0, index=0, box=b, positive=(click,)),
            EngineRequest(
                axis=0, index=0, box=b, positive=(click,), negative=((0.0, b[0][1], b[0][2]),)
            ),
        ):
            t0 = time.perf_counter()
            runner.run(engine, vol, req)
            nxt.append(time.perf_counter() - t0)
    busy = load.cores()

    def pct(v: list[float], q: float) -> float:
        return round(float(np.percentile(v, q)), 3)

    rows_ = [
        ["first prompt, new slice", len(first), pct(first, 50), pct(first, 95), 1.5],
        ["next prompt, same slice", len(nxt), pct(nxt, 50), pct(nxt, 95), 0.2],
    ]
    print(table(rows_, ["prompt", "n", "p50 s", "p95 s", "target p50 s"]))
    print(f"busy cores during the run (this process included): {busy:.2f}; {quiet}")
    save_result(
        "ai_latency",
        {
            "benchmark": "ai_latency",
            "machine": machine_info(),
            "images": [c[0] for c in cases],
            "first_prompt_s": {"p50": pct(first, 50), "p95": pct(first, 95), "runs": first},
            "next_prompt_s": {"p50": pct(nxt, 50), "p95": pct(nxt, 95), "runs": nxt},
            "median_first_s": statistics.median(first),
            "busy_cores_all_processes": busy,
            "quiet_wait": quiet,
        },
    )


if __name__ == "__main__":
    main()
