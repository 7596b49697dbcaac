"""The browser UI: static files built from ``web/`` into ``server/static``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

_NO_UI = """<!doctype html><html><head><meta charset="utf-8"><title>medlabel</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto">
<h1>medlabel</h1><p>The server is running. The browser workspace is not built in this
installation; the REST API is documented at <a href="/docs">/docs</a>.</p></body></html>"""


def mount_web(app: FastAPI) -> None:
    """Serve the built UI at ``/`` when present, else a page pointing to the API docs."""
    index = STATIC / "index.html"
    if index.exists():
        app.mount("/", StaticFiles(directory=STATIC, html=True), name="web")
        return

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def _root() -> str:
        return _NO_UI
