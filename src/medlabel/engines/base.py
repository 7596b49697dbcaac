"""The engine seam: typed requests, proposals and the protocol engines implement.

Coordinates are voxel indices of the stored array, ``(plane, row, column)``, with voxel
centres at integers (the convention of :class:`~medlabel.imaging.volume.Volume` and of
boxes and points in annotation content). A request for a single slice names the array
``axis`` it cuts and the slice ``index`` along it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np

from medlabel.imaging.volume import Volume

Point = tuple[float, float, float]


class PromptKind(StrEnum):
    """What an engine can take from the user."""

    BOX = "box"
    POSITIVE = "positive"
    NEGATIVE = "negative"
    FOREGROUND = "foreground"  # scribble on the structure
    BACKGROUND = "background"  # scribble outside it
    PREVIOUS = "previous"  # the current mask, to refine or to start from
    NONE = "none"  # runs on parameters alone (e.g. a threshold range)


class ParamKind(StrEnum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    CHOICE = "choice"


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter of an engine, described for forms in the UI and the API."""

    name: str
    kind: ParamKind
    default: Any
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def parse(self, value: Any) -> Any:
        """Coerce and check a user-given ``value``; raises ``ValueError`` naming the problem.

        A parameter whose default is ``None`` is optional: ``None`` stays ``None``.
        """
        if value is None and self.default is None:
            return None
        try:
            if self.kind is ParamKind.BOOL:
                if isinstance(value, str):
                    if value.lower() not in {"true", "false", "1", "0"}:
                        raise ValueError
                    return value.lower() in {"true", "1"}
                return bool(value)
            if self.kind is ParamKind.CHOICE:
                if str(value) not in self.choices:
                    raise ValueError
                return str(value)
            out = int(value) if self.kind is ParamKind.INT else float(value)
        except (TypeError, ValueError):
            allowed = f" (one of {', '.join(self.choices)})" if self.choices else ""
            raise ValueError(
                f"parameter {self.name!r} must be a {self.kind.value}{allowed}, got {value!r}"
            ) from None
        if not np.isfinite(out):
            raise ValueError(f"parameter {self.name!r} must be finite, got {value!r}")
        if self.minimum is not None and out < self.minimum:
            raise ValueError(f"parameter {self.name!r} must be >= {self.minimum}, got {out}")
        if self.maximum is not None and out > self.maximum:
            raise ValueError(f"parameter {self.name!r} must be <= {self.maximum}, got {out}")
        return out


@dataclass(frozen=True)
class EngineRequest:
    """What the user asked for.

    Parameters
    ----------
    axis, index
        The slice to work on: array axis (0 plane, 1 row, 2 column) and index along it.
        ``index=None`` asks for the whole image or volume (3D engines).
    box
        Two opposite corners ``((p, r, c), (p, r, c))`` in voxel coordinates.
    positive, negative
        Clicks on the structure and outside it, voxel coordinates.
    foreground, background
        Scribble masks, boolean, of the image's spatial shape ``(planes, rows, columns)``.
    previous
        The current mask of the structure (boolean, spatial shape), to refine.
    params
        Engine parameters by name (see :attr:`AnnotationEngine.params`).
    """

    axis: int = 0
    index: int | None = None
    box: tuple[Point, Point] | None = None
    positive: tuple[Point, ...] = ()
    negative: tuple[Point, ...] = ()
    foreground: np.ndarray | None = None
    background: np.ndarray | None = None
    previous: np.ndarray | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, got {self.axis}")

    def describe(self) -> dict[str, Any]:
        """The prompt as JSON (for the revision's provenance): masks summarised by size."""
        out: dict[str, Any] = {"axis": self.axis, "index": self.index}
        if self.box is not None:
            out["box"] = [list(map(float, c)) for c in self.box]
        if self.positive:
            out["positive"] = [list(map(float, p)) for p in self.positive]
        if self.negative:
            out["negative"] = [list(map(float, p)) for p in self.negative]
        for name in ("foreground", "background", "previous"):
            arr = getattr(self, name)
            if arr is not None:
                out[name] = {"voxels": int(np.count_nonzero(arr))}
        if self.params:
            out["params"] = dict(self.params)
        return out


@dataclass
class Proposal:
    """An engine's answer: a boolean mask over a box of the image, where it sits, and facts.

    ``mask`` has shape ``(planes, rows, columns)`` of the cropped region starting at voxel
    ``origin``; :meth:`full` pastes it into the whole image's grid.
    """

    mask: np.ndarray
    origin: tuple[int, int, int] = (0, 0, 0)
    probability: np.ndarray | None = None
    engine: str = ""
    version: str = ""
    prompt: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mask.ndim != 3:
            raise ValueError(
                f"a proposal mask must be 3D (planes, rows, columns), got {self.mask.shape}"
            )
        self.mask = self.mask.astype(bool, copy=False)
        if self.probability is not None and self.probability.shape != self.mask.shape:
            raise ValueError(
                f"probability shape {self.probability.shape} differs from mask {self.mask.shape}"
            )

    @classmethod
    def from_plane(cls, mask2d: np.ndarray, *, axis: int, index: int, **kwargs: Any) -> Proposal:
        """A proposal on one slice: ``mask2d`` holds the two remaining axes in order."""
        mask3d = np.expand_dims(np.asarray(mask2d, bool), axis)
        prob = kwargs.pop("probability", None)
        if prob is not None:
            prob = np.expand_dims(np.asarray(prob, np.float32), axis)
        origin = [0, 0, 0]
        origin[axis] = int(index)
        return cls(
            mask=mask3d, origin=(origin[0], origin[1], origin[2]), probability=prob, **kwargs
        )

    def full(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The mask pasted into a zero array of the image's spatial ``shape``."""
        out = np.zeros(shape, bool)
        sl = tuple(slice(o, o + n) for o, n in zip(self.origin, self.mask.shape, strict=True))
        out[sl] = self.mask
        return out

    def cropped(self) -> Proposal:
        """The same proposal with the mask cut to its bounding box (empty stays 1 voxel)."""
        idx = np.argwhere(self.mask)
        if len(idx) == 0:
            lo = np.zeros(3, int)
            hi = np.ones(3, int)
        else:
            lo, hi = idx.min(0), idx.max(0) + 1
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        prob = None if self.probability is None else self.probability[sl]
        origin = tuple(int(o + a) for o, a in zip(self.origin, lo, strict=True))
        return Proposal(
            mask=self.mask[sl],
            origin=(origin[0], origin[1], origin[2]),
            probability=prob,
            engine=self.engine,
            version=self.version,
            prompt=self.prompt,
            seconds=self.seconds,
            info=self.info,
        )


@runtime_checkable
class AnnotationEngine(Protocol):
    """An algorithm or model that proposes a mask.

    Attributes
    ----------
    name, version
        Recorded with every proposal and revision it produces.
    title, description
        For people choosing a tool.
    prompts
        The :class:`PromptKind` values it uses; at least one of ``required`` must be given.
    required
        Prompt kinds of which the request must carry at least one (empty: none needed).
    params
        Tunable parameters.
    volumetric
        ``True`` if it works on the whole volume (``index`` may be ``None``); otherwise
        it works on one slice and a request must name it (2D images: axis 0, index 0).
    """

    name: str
    version: str
    title: str
    description: str
    prompts: frozenset[PromptKind]
    required: frozenset[PromptKind]
    params: tuple[ParamSpec, ...]
    volumetric: bool

    def run(self, volume: Volume, request: EngineRequest) -> Proposal:
        """Propose a mask; raise ``ValueError`` naming what is wrong with the request."""
        ...
