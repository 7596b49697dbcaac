"""Simulated annotators for ``bench_load.py``: one keep-alive connection and one own
annotation each, timed requests, and the check of every acknowledged save afterwards.

See ``bench_load.py`` for the workload and what the check compares.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import random
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loadgen import PNG_MAGIC, PRESETS

OPS = ("list_images", "slice_png", "get_annotation", "save_own", "save_other")
BOX_LABEL, MASK_VALUES = "lesion", {1: "organ", 2: "tumour"}


@dataclass
class Fixture:
    project_id: int
    image_ids: list[int]
    shape: tuple[int, int, int]
    tokens: list[str]  # one per simulated user
    reviewers: int
    admin_token: str


@dataclass
class Saved:
    """A save the client saw succeed (or whose outcome a timeout left unknown)."""

    annotation_id: int
    revision_id: int | None
    number: int | None
    key: str  # boxes + message, canonical
    mask_hash: str | None  # sha256 of the mask the client sent; None: mask kept
    by_user: int


@dataclass
class Own:
    """What a user holds of its own annotation."""

    annotation_id: int
    image_id: int
    version: int
    boxes: list[dict[str, Any]]
    mask: np.ndarray


@dataclass
class UserLog:
    samples: list[tuple[str, float, int]] = field(default_factory=list)  # op, s, status
    errors: list[str] = field(default_factory=list)
    saved: list[Saved] = field(default_factory=list)
    unknown: list[Saved] = field(default_factory=list)  # saves that got no answer
    conflicts: int = 0
    stale_retries: int = 0  # GETs retried once after the server closed an idle connection


def content_key(boxes: list[dict[str, Any]], message: str) -> str:
    """What a revision's content must equal: voxel boxes (rounded) and the message."""
    norm = sorted(
        (
            b["label"],
            [round(float(x), 3) for x in b["start"]],
            [round(float(x), 3) for x in b["end"]],
        )
        for b in boxes
    )
    return json.dumps([norm, message])


def _box(rng: random.Random, shape: tuple[int, int, int]) -> dict[str, Any]:
    p = rng.randrange(shape[0] - 1)
    r, c = rng.randrange(shape[1] // 2), rng.randrange(shape[2] // 2)
    h, w = rng.randint(8, 100), rng.randint(8, 100)
    return {"label": BOX_LABEL, "start": [p, r, c], "end": [p + 1, r + h, c + w]}


def _edit_boxes(
    rng: random.Random, boxes: list[dict[str, Any]], shape: Any
) -> list[dict[str, Any]]:
    out = [dict(b) for b in boxes]
    if out and (len(out) >= 6 or rng.random() < 0.3):
        out.pop(rng.randrange(len(out)))
    out.append(_box(rng, shape))
    return out


def _paint(rng: random.Random, mask: np.ndarray) -> None:
    """Paint a block of label 1 or 2, or erase one (a brush or eraser stroke)."""
    planes, rows, cols = mask.shape
    p = rng.randrange(planes - 3)
    r, c = rng.randrange(rows - 80), rng.randrange(cols - 80)
    value = rng.choice((0, 1, 1, 2))
    mask[p : p + 3, r : r + rng.randint(10, 80), c : c + rng.randint(10, 80)] = value


def _mask_payload(mask: np.ndarray) -> tuple[dict[str, Any], str]:
    raw = mask.tobytes()
    data = base64.b64encode(zlib.compress(raw, 1)).decode()
    return {"encoding": "raw-gzip", "dtype": "uint8", "data": data}, hashlib.sha256(raw).hexdigest()


class Client:
    """One keep-alive HTTP connection with a bearer token; times every request."""

    def __init__(self, port: int, token: str, timeout: float, log: UserLog) -> None:
        self.port, self.timeout, self.log = port, timeout, log
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def call(self, op: str, method: str, path: str, body: Any = None) -> tuple[int, bytes] | None:
        """(status, body); None when the request failed (recorded as an error)."""
        data = json.dumps(body).encode() if body is not None else None
        t0 = time.perf_counter()
        try:
            try:
                self.conn.request(method, path, body=data, headers=self.headers)
                resp = self.conn.getresponse()
                payload = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if method != "GET":
                    raise
                # the server closed the idle keep-alive connection (uvicorn: after 5 s) as
                # the request went out: like browsers, retry an idempotent request once on
                # a new connection (counted apart)
                self.log.stale_retries += 1
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                self.conn.request(method, path, body=data, headers=self.headers)
                resp = self.conn.getresponse()
                payload = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.log.samples.append((op, time.perf_counter() - t0, 0))
            kind = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            self.log.errors.append(f"{op}: {kind}")
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            return None
        self.log.samples.append((op, time.perf_counter() - t0, resp.status))
        ok = 200 <= resp.status < 300 or (resp.status == 409 and op.startswith("save"))
        if not ok:
            self.log.errors.append(f"{op}: HTTP {resp.status} {payload[:300]!r}")
        if resp.status >= 500:  # uvicorn closes the connection after an unhandled error
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return resp.status, payload

    def close(self) -> None:
        self.conn.close()


@dataclass
class Plan:
    seconds: float
    think: float
    slices_per_round: int
    mask_share: float
    review_share: float
    timeout: float


class SimUser:
    def __init__(
        self, uid: int, fx: Fixture, own: Own, port: int, plan: Plan, everyone: list[Own]
    ) -> None:
        self.uid, self.fx, self.own, self.plan, self.everyone = uid, fx, own, plan, everyone
        self.rng = random.Random(1000 + uid)
        self.log = UserLog()
        self.client = Client(port, fx.tokens[uid], plan.timeout, self.log)

    def pause(self, deadline: float) -> None:
        if self.plan.think > 0:
            time.sleep(
                min(
                    self.rng.expovariate(1 / self.plan.think), max(0.0, deadline - time.monotonic())
                )
            )

    def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self.client.call(
                "list_images", "GET", f"/api/projects/{self.fx.project_id}/images?limit=100"
            )
            for _ in range(self.plan.slices_per_round):
                self.pause(deadline)
                if time.monotonic() >= deadline:
                    break
                self.slice()
            self.pause(deadline)
            if time.monotonic() < deadline:
                self.save_own()
            if self.uid < self.fx.reviewers and self.rng.random() < self.plan.review_share:
                self.pause(deadline)
                if time.monotonic() < deadline:
                    self.save_other(deadline)
            self.pause(deadline)
        self.client.close()

    def slice(self) -> None:
        shape = self.fx.shape
        q = f"view=axial&index={self.rng.randrange(shape[0])}&preset={self.rng.choice(PRESETS)}"
        res = self.client.call("slice_png", "GET", f"/api/images/{self.own.image_id}/slice.png?{q}")
        if res and res[0] == 200 and not res[1].startswith(PNG_MAGIC):
            self.log.errors.append("slice_png: body is not a PNG")

    def reload(self, op: str = "get_annotation") -> dict[str, Any] | None:
        res = self.client.call(op, "GET", f"/api/annotations/{self.own.annotation_id}")
        if res is None or res[0] != 200:
            return None
        out: dict[str, Any] = json.loads(res[1])
        return out

    def save_own(self) -> None:
        own = self.own
        message = f"u{self.uid} {uuid.uuid4().hex}"
        body: dict[str, Any] = {"base_version": own.version, "message": message}
        mask_hash = None
        boxes = own.boxes
        if self.rng.random() < self.plan.mask_share:
            mask = own.mask.copy()
            _paint(self.rng, mask)
            body["mask"], mask_hash = _mask_payload(mask)
        else:
            mask = own.mask
            boxes = _edit_boxes(self.rng, own.boxes, self.fx.shape)
        body["content"] = {"boxes": boxes}
        path = f"/api/annotations/{own.annotation_id}"
        res = self.client.call("save_own", "PUT", path, body)
        if res is None:
            key = content_key(boxes, message)
            self.log.unknown.append(Saved(own.annotation_id, None, None, key, mask_hash, self.uid))
            self.resync()
        elif res[0] == 200:
            out = json.loads(res[1])
            own.version, own.boxes, own.mask = out["version"], boxes, mask
            head = out["head"]
            key = content_key(boxes, message)
            self.log.saved.append(
                Saved(own.annotation_id, head["id"], head["number"], key, mask_hash, self.uid)
            )
        elif res[0] == 409:
            self.log.conflicts += 1
            self.resync()

    def resync(self) -> None:
        """Someone (a reviewer) saved since: take the current version and boxes. Reviewers
        only edit boxes, so the mask this user holds is still the current one."""
        out = self.reload()
        if out is not None:
            self.own.version = out["version"]
            self.own.boxes = [
                {"label": b["label"], "start": b["start"], "end": b["end"]}
                for b in out["head"]["content"]["boxes"]
            ]

    def save_other(self, deadline: float) -> None:
        """A reviewer loads another reader's annotation, looks, and corrects a box."""
        target = self.rng.choice([o for o in self.everyone if o is not self.own])
        res = self.client.call("get_annotation", "GET", f"/api/annotations/{target.annotation_id}")
        if res is None or res[0] != 200:
            return
        ann = json.loads(res[1])
        self.pause(deadline)
        boxes = [
            {"label": b["label"], "start": b["start"], "end": b["end"]}
            for b in ann["head"]["content"]["boxes"]
        ]
        boxes = _edit_boxes(self.rng, boxes, self.fx.shape)
        message = f"review u{self.uid} {uuid.uuid4().hex}"
        body = {"base_version": ann["version"], "message": message, "content": {"boxes": boxes}}
        res = self.client.call(
            "save_other", "PUT", f"/api/annotations/{target.annotation_id}", body
        )
        if res is None:
            key = content_key(boxes, message)
            self.log.unknown.append(Saved(target.annotation_id, None, None, key, None, self.uid))
        elif res[0] == 200:
            head = json.loads(res[1])["head"]
            self.log.saved.append(
                Saved(
                    target.annotation_id,
                    head["id"],
                    head["number"],
                    content_key(boxes, message),
                    None,
                    self.uid,
                )
            )
        elif res[0] == 409:
            self.log.conflicts += 1


def create_annotations(port: int, fx: Fixture, seed_log: UserLog) -> list[Own]:
    """Every user creates its annotation (first revision: one box and a painted mask)."""
    owns: list[Own] = []
    rng = random.Random(7)
    for uid, token in enumerate(fx.tokens):
        image_id = fx.image_ids[uid % len(fx.image_ids)]
        mask = np.zeros(fx.shape, np.uint8)
        _paint(rng, mask)
        payload, mask_hash = _mask_payload(mask)
        boxes = [_box(rng, fx.shape)]
        message = f"u{uid} create"
        client = Client(port, token, 60, seed_log)
        res = client.call(
            "create",
            "POST",
            f"/api/images/{image_id}/annotations",
            {"content": {"boxes": boxes}, "mask": payload, "message": message},
        )
        client.close()
        if res is None or res[0] != 201:
            raise RuntimeError(f"user {uid} could not create its annotation: {res}")
        out = json.loads(res[1])
        head = out["head"]
        seed_log.saved.append(
            Saved(
                out["id"], head["id"], head["number"], content_key(boxes, message), mask_hash, uid
            )
        )
        owns.append(Own(out["id"], image_id, out["version"], boxes, mask))
    return owns


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile in milliseconds (as loadgen.py computes it)."""
    v = sorted(values)
    return round(1000 * v[min(len(v) - 1, int(q / 100 * len(v)))], 1) if v else 0.0


def op_stats(logs: list[UserLog], duration: float) -> dict[str, Any]:
    """Per operation and overall: requests, requests/s, latency percentiles, statuses."""
    samples = [s for log in logs for s in log.samples]
    out: dict[str, Any] = {}
    for op in (*OPS, "all"):
        sel = [s for s in samples if op == "all" or s[0] == op]
        lat = [s[1] for s in sel]
        statuses: dict[str, int] = {}
        for s in sel:
            statuses[str(s[2])] = statuses.get(str(s[2]), 0) + 1
        conflicts = sum(1 for s in sel if s[2] == 409)
        failed = sum(1 for s in sel if s[2] == 0)
        bad = sum(1 for s in sel if s[2] and not (200 <= s[2] < 300) and s[2] != 409)
        out[op] = {
            "requests": len(sel),
            "requests_per_s": round(len(sel) / duration, 1),
            "latency_ms": {
                "p50": _pct(lat, 50),
                "p95": _pct(lat, 95),
                "p99": _pct(lat, 99),
                "max": _pct(lat, 100),
                "mean": round(1000 * sum(lat) / len(lat), 1) if lat else 0.0,
            },
            "conflicts_409": conflicts,
            "errors": bad + failed,
            "failed_or_timed_out": failed,
            "statuses": statuses,
        }
    return out


def verify(port: int, fx: Fixture, owns: list[Own], logs: list[UserLog]) -> dict[str, Any]:
    """Compare every acknowledged save with what the server holds (see module docstring).

    A revision no client saw acknowledged must be one of the saves that got no answer
    (timed out or failed; matched by its unique message); it is then checked like an
    acknowledged one and counted as committed after the client gave up."""
    admin_log = UserLog()
    api = Client(port, fx.admin_token, 300, admin_log)
    saved: dict[int, list[Saved]] = {}
    unknown: dict[int, dict[str, Saved]] = {}
    for log in logs:
        for item in log.saved:
            saved.setdefault(item.annotation_id, []).append(item)
        for item in log.unknown:
            unknown.setdefault(item.annotation_id, {})[item.key] = item
    problems: list[str] = []
    counts: dict[str, Any] = {
        "annotations": len(owns),
        "acknowledged_saves": sum(len(v) for v in saved.values()),
        "unanswered_saves": sum(len(v) for v in unknown.values()),
        "server_revisions": 0,
        "lost_writes": 0,
        "content_mismatches": 0,
        "mask_mismatches": 0,
        "masks_fetched": 0,
        "committed_after_no_answer": 0,
        "phantom_revisions": 0,
        "chain_breaks": 0,
    }

    def mask_hash(revision_id: int) -> str | None:
        m = api.call("verify", "GET", f"/api/revisions/{revision_id}/mask")
        counts["masks_fetched"] += 1
        if m is None or m[0] != 200:
            return None
        return hashlib.sha256(zlib.decompress(m[1], 47)).hexdigest()

    for own in owns:
        aid = own.annotation_id
        res = api.call("verify", "GET", f"/api/annotations/{aid}/revisions")
        head_res = api.call("verify", "GET", f"/api/annotations/{aid}")
        if res is None or res[0] != 200 or head_res is None or head_res[0] != 200:
            problems.append(f"annotation {aid}: could not read it back")
            continue
        revs = sorted(json.loads(res[1]), key=lambda r: r["number"])
        ann = json.loads(head_res[1])
        counts["server_revisions"] += len(revs)
        # chain: numbers 1..n, each parent the previous revision, head the last one
        for i, r in enumerate(revs):
            parent = revs[i - 1]["id"] if i else None
            if r["number"] != i + 1 or r["parent_id"] != parent:
                counts["chain_breaks"] += 1
                problems.append(
                    f"annotation {aid}: revision {r['id']} number {r['number']} parent "
                    f"{r['parent_id']}, expected number {i + 1} parent {parent}"
                )
        if revs and ann["head_revision_id"] != revs[-1]["id"]:
            counts["chain_breaks"] += 1
            problems.append(f"annotation {aid}: head {ann['head_revision_id']} is not the last")
        # which client save each revision is
        acked: dict[int | None, Saved] = {x.revision_id: x for x in saved.get(aid, [])}
        sent: dict[int, Saved] = {}
        rec: Saved | None
        for r in revs:
            key = content_key(r["content"]["boxes"], r["message"])
            rec = acked.pop(r["id"], None)
            if rec is not None:
                if key != rec.key or r["number"] != rec.number:
                    counts["content_mismatches"] += 1
                    problems.append(f"annotation {aid}: revision {r['id']} content differs")
            else:
                rec = unknown.get(aid, {}).get(key)
                if rec is None:
                    counts["phantom_revisions"] += 1
                    problems.append(f"annotation {aid}: revision {r['id']} matches no save")
                    continue
                counts["committed_after_no_answer"] += 1
            sent[r["id"]] = rec
        for missing in acked.values():  # acknowledged, but not on the server
            counts["lost_writes"] += 1
            problems.append(
                f"annotation {aid}: acknowledged revision {missing.revision_id} missing"
            )
        # masks: a sent mask must come back bit for bit; a kept one must be the parent's
        for i, r in enumerate(revs):
            rec = sent.get(r["id"])
            if rec is None:
                continue
            if rec.mask_hash is not None:
                if mask_hash(r["id"]) != rec.mask_hash:
                    counts["mask_mismatches"] += 1
                    problems.append(f"annotation {aid}: revision {r['id']} mask differs")
            elif i and r["mask_summary"] != revs[i - 1]["mask_summary"]:
                counts["mask_mismatches"] += 1
                problems.append(f"annotation {aid}: revision {r['id']} did not keep the mask")
    api.close()
    counts["ok"] = not problems
    counts["problems"] = problems[:50]
    return counts
