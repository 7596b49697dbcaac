"""Waiting for a job through the API."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

FINAL_STATES = ("succeeded", "failed", "cancelled")


def wait_job(client: TestClient, job_id: int, timeout: float = 120) -> dict[str, Any]:
    """Poll ``/api/jobs/{id}`` until the job has ended; its last view."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in FINAL_STATES:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job['state']}"
        time.sleep(0.1)
