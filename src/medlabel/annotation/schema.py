"""A project's label schema: the labels annotators may use."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medlabel.annotation.enums import LabelKind

_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

#: Distinct default colours (Tableau 10 and friends), used when a label gives none.
DEFAULT_COLOURS = [
    "#e6194b",
    "#3cb44b",
    "#ffe119",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#fabebe",
    "#008080",
    "#e6beff",
    "#9a6324",
    "#800000",
]


class Code(BaseModel):
    """A coded concept, e.g. SNOMED CT ``(10200004, SCT, "Liver")`` or a RadLex RID."""

    model_config = ConfigDict(frozen=True)

    value: str = Field(min_length=1, max_length=64)
    scheme: str = Field(min_length=1, max_length=16, description="SCT, RADLEX, DCM...")
    meaning: str = Field(min_length=1, max_length=64)


class LabelSpec(BaseModel):
    """One label as a user defines it.

    ``value`` is the integer written in label masks (1..65535) and is assigned
    automatically for mask labels when omitted.
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=64)
    kind: LabelKind
    color: str | None = None
    value: int | None = Field(default=None, ge=1, le=65535)
    code: Code | None = None
    description: str = Field(default="", max_length=1000)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not v or any(ch in v for ch in "\n\r\t/\\"):
            raise ValueError("label names must be non-empty and contain no slashes or tabs")
        return v

    @field_validator("color")
    @classmethod
    def _color(cls, v: str | None) -> str | None:
        if v is not None and not _COLOUR.match(v):
            raise ValueError(f"colour must look like #rrggbb; got {v!r}")
        return v.lower() if v else v
