"""Browser tests: a live medlabel server on 127.0.0.1 with real images, and the system
Chromium driven by Playwright. Locally a missing Chromium or Playwright skips these
tests; under CI=true it fails them."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from medlabel.core.settings import Settings
from medlabel.server.app import create_app
from medlabel.server.web import STATIC
from medlabel.services.context import Context, open_context

CHROMIUM = os.environ.get("MEDLABEL_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("MEDLABEL_ARTIFACTS", "artifacts")) / "screenshots"
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


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests need {reason} (CI must install it)")
    pytest.skip(f"browser tests need {reason}")


@dataclass
class LiveServer:
    url: str
    ctx: Context
    settings: Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """medlabel serving a fresh home on a free port (in a thread of this process)."""
    import uvicorn

    if not (STATIC / "index.html").exists():
        _missing("the built web UI (run `npm ci && node build.mjs` in web/, or scripts/setup.sh)")
    # on a MEDLABEL_TEST_DB=postgresql run its database is the test's (tests/conftest.py)
    settings = Settings(home=tmp_path / "home")
    ctx = open_context(settings)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, ctx=ctx), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", ctx, settings)
    server.should_exit = True
    thread.join(timeout=120)  # shutdown waits for a model still loading
    ctx.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        _missing(f"Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page (1280x800); console errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: _console(msg, errors))
    yield pg
    context.close()
    assert not errors, f"browser errors: {errors}"


def _console(msg: Any, errors: list[str]) -> None:
    # HTTP errors the app expects and handles (401 before login, 409 on a conflict...)
    # are logged by Chromium as "Failed to load resource"; JavaScript errors are not.
    if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
        errors.append(msg.text)


def shot(page: Any, name: str) -> Path:
    """Save a screenshot as a CI artifact (artifacts/screenshots/<name>.png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
