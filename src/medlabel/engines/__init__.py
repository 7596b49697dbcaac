"""Annotation engines: algorithms and models that propose masks from prompts.

An engine takes an image or volume (:class:`~medlabel.imaging.volume.Volume`) and an
:class:`EngineRequest` (box, clicks, scribbles, previous mask, parameters) and returns a
:class:`Proposal`. Proposals are suggestions: the services layer stores them as
machine-sourced records that a person accepts, edits or rejects.
"""

from medlabel.engines.base import (
    AnnotationEngine,
    EngineRequest,
    ParamKind,
    ParamSpec,
    PromptKind,
    Proposal,
)

__all__ = [
    "AnnotationEngine",
    "EngineRequest",
    "ParamKind",
    "ParamSpec",
    "PromptKind",
    "Proposal",
]
