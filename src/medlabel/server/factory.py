"""An app factory reading settings from the environment (for multi-worker uvicorn)."""

from __future__ import annotations

from fastapi import FastAPI

from medlabel.core.settings import Settings
from medlabel.server.app import create_app


def app_from_env() -> FastAPI:
    """``uvicorn --factory medlabel.server.factory:app_from_env``."""
    return create_app(Settings())
