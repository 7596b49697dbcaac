"""Mask files → :class:`~medlabel.quality.report.case.Case`: label maps, scores, spacing.

Files are read with medlabel's own readers (:func:`~medlabel.io.nifti.read_nifti`,
:func:`~medlabel.io.raster.read_raster`; GIF through Pillow). How pixel values become
labels (``full scale`` is 255 for 8-bit and 65535 for 16-bit files, 1.0 for floats up to
1, otherwise the largest value):

- **NIfTI** integer data are label maps as stored; floats with integer values are
  rounded to labels; other floats are *graded* (below).
- **PNG, TIFF, GIF** greyscale with integer values 0…32 are label maps as stored (a 0/1
  mask is label 1, a 0/1/2 map has labels 1 and 2); two values such as 0/255 are a
  binary mask (non-zero → label 1); anything else is *graded*.
- **JPEG** greyscale is a binary mask blurred by compression: label 1 where the value is
  above half the full scale (> 127 for 8 bits).
- **Colour** (RGB) masks: label 1 where any channel is above half the full scale.
- **Graded** maps (probabilities, grey-level soft masks): a reference or a region of
  interest is binarised at half the full scale; a prediction keeps its values as scores
  (value / full scale) for the ROC curve and becomes label 1 where the score is above
  ``threshold``.

``pred_kind`` overrides the rule for predictions: ``labels`` takes the values as labels,
``scores`` treats the file as graded even when it looks like a label map (e.g. a JPEG
probability map).

Spacing: NIfTI files give theirs (prediction and reference must then lie on the same
grid); PNG/JPEG/TIFF/GIF carry no patient geometry and get ``spacing`` (default 1 mm).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from medlabel.core.errors import InvalidInputError, UnsupportedFormatError
from medlabel.imaging.volume import Volume
from medlabel.quality.pairs import is_nifti
from medlabel.quality.report.case import Case
from medlabel.quality.report.pairing import FilePair

__all__ = [
    "MAX_AUTO_LABEL",
    "MaskFile",
    "PredKind",
    "load_case",
    "read_mask_file",
]

#: largest value a greyscale raster may hold to be read as a label map automatically
MAX_AUTO_LABEL = 32


class PredKind(StrEnum):
    """How prediction files are read."""

    AUTO = "auto"
    LABELS = "labels"
    SCORES = "scores"


@dataclass(frozen=True)
class MaskFile:
    """A mask file's pixels as stored, ``(planes, rows, columns)`` or with a trailing
    colour axis, and its volume (``None`` for files without geometry)."""

    name: str
    array: np.ndarray
    format: str
    volume: Volume | None = None

    @property
    def colour(self) -> bool:
        return self.array.ndim == 4

    @property
    def full_scale(self) -> float:
        """The value that means "fully inside" for graded data."""
        a = self.array
        if a.dtype == np.uint8:
            return 255.0
        if a.dtype == np.uint16:
            return 65535.0
        top = float(a.max()) if a.size else 1.0
        if a.dtype.kind == "f" and top <= 1.0:
            return 1.0
        return top if top > 0 else 1.0

    def kind(self) -> str:
        """``labels``, ``binary``, ``graded``, ``jpeg`` or ``colour`` (see the module
        docstring)."""
        a = self.array
        if self.colour:
            return "colour"
        if a.dtype.kind == "f":
            return "labels" if bool(np.all(a == np.rint(a))) else "graded"
        if self.format == "NIfTI":
            return "labels"
        if self.format == "JPEG":
            return "jpeg"
        top = int(a.max()) if a.size else 0
        if top <= MAX_AUTO_LABEL and int(a.min() if a.size else 0) >= 0:
            return "labels"
        return "binary" if np.unique(a).size <= 2 else "graded"

    def labels(self) -> np.ndarray:
        """Integer labels by the reading rules (graded → binarised at half scale)."""
        kind = self.kind()
        if kind in ("colour", "jpeg", "graded"):
            a = self.array.max(axis=3) if self.colour else self.array
            return (a > self.full_scale / 2).astype(np.uint8)
        if kind == "binary":
            binary: np.ndarray = (self.array != 0).astype(np.uint8)
            return binary
        return self._as_labels()

    def _as_labels(self) -> np.ndarray:
        a = self.array
        if self.colour:
            raise InvalidInputError(f"{self.name}: a colour image cannot be read as labels")
        if a.size and float(a.min()) < 0:
            raise InvalidInputError(f"{self.name}: has negative values, which are not labels")
        if a.dtype.kind == "f":
            rounded: np.ndarray = np.rint(a).astype(np.int32)
            return rounded
        return a

    def scores(self) -> np.ndarray:
        """Values divided by the full scale, as float32 (for graded predictions)."""
        if self.colour:
            raise InvalidInputError(f"{self.name}: a colour image cannot be read as scores")
        if self.array.size and float(self.array.min()) < 0:
            raise InvalidInputError(
                f"{self.name}: scores must be ≥ 0 (probabilities); apply a sigmoid or "
                "softmax to logits first"
            )
        out: np.ndarray = (self.array / self.full_scale).astype(np.float32)
        return out


def read_mask_file(path: Path) -> MaskFile:
    """Read a NIfTI, PNG, JPEG, TIFF or GIF mask file as stored.

    Raises
    ------
    InvalidInputError, UnsupportedFormatError, TooLargeError
        From the readers: unreadable, truncated or unsupported files.
    """
    from medlabel.io.nifti import read_nifti
    from medlabel.io.raster import read_raster

    path = Path(path)
    if is_nifti(path):
        vol = read_nifti(path)
        return MaskFile(path.name, vol.array, "NIfTI", vol)
    if path.name.lower().endswith(".gif"):
        return MaskFile(path.name, _read_gif(path), "GIF")
    vol = read_raster(path)
    return MaskFile(path.name, vol.array, str(vol.metadata.get("format", "raster")))


def _read_gif(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path, formats=["GIF"]) as im:
            if getattr(im, "n_frames", 1) != 1:
                raise UnsupportedFormatError(f"{path.name}: animated GIF masks are not supported")
            arr = np.asarray(im.convert("L"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise InvalidInputError(f"{path.name}: not a readable GIF file ({exc})") from None
    return arr[np.newaxis]


def prediction(
    mask: MaskFile, kind: PredKind, threshold: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels and (for graded predictions) scores of a prediction file."""
    kind = PredKind(kind)
    if kind is PredKind.LABELS:
        return mask._as_labels(), None
    auto = mask.kind()
    if kind is PredKind.SCORES or auto == "graded":
        scores = mask.scores()
        return (scores > threshold).astype(np.uint8), scores
    return mask.labels(), None


def _spacing_of(
    files: Sequence[MaskFile], spacing: Sequence[float] | None, name: str
) -> tuple[float, float, float]:
    vols = [f for f in files if f.volume is not None]
    for other in vols[1:]:
        assert vols[0].volume is not None and other.volume is not None
        if not vols[0].volume.same_grid(other.volume):
            raise InvalidInputError(
                f"{name}: {vols[0].name} and {other.name} are not on the same grid "
                f"(spacing {_fmt(vols[0].volume.spacing)} vs {_fmt(other.volume.spacing)} mm, "
                "or a different origin or orientation); resample one onto the other first"
            )
    if vols:
        assert vols[0].volume is not None
        return vols[0].volume.spacing
    if spacing is None:
        return (1.0, 1.0, 1.0)
    sp = [float(s) for s in spacing]
    if len(sp) == 1:
        return (1.0, sp[0], sp[0])
    if len(sp) == 2:
        return (1.0, sp[0], sp[1])
    if len(sp) == 3:
        return (sp[0], sp[1], sp[2])
    raise InvalidInputError(f"spacing takes 1, 2 or 3 numbers (mm); got {sp}")


def _fmt(sp: Sequence[float]) -> str:
    return "×".join(f"{s:g}" for s in sp)


def load_case(
    pair: FilePair,
    *,
    spacing: Sequence[float] | None = None,
    pred_kind: PredKind | str = PredKind.AUTO,
    threshold: float = 0.5,
) -> Case:
    """Read a pair's files as a :class:`Case`.

    Parameters
    ----------
    pair
        The prediction, reference and optional ROI files.
    spacing
        Pixel size in mm for files without geometry (PNG, JPEG, TIFF, GIF): one value
        (square pixels), ``(row, column)`` or ``(plane, row, column)``. NIfTI files always
        use their own.
    pred_kind
        ``auto``, ``labels`` or ``scores`` (see the module docstring).
    threshold
        Fraction of the full scale above which a graded prediction is foreground.

    Raises
    ------
    MedlabelError
        Unreadable files, shapes that differ, or NIfTI files on different grids; the
        message names the file.
    """
    pred_file = read_mask_file(pair.pred)
    ref_file = read_mask_file(pair.ref)
    roi_file = read_mask_file(pair.roi) if pair.roi is not None else None
    files = [f for f in (pred_file, ref_file, roi_file) if f is not None]
    roles = ("prediction", "reference", "ROI")
    shapes = [
        (role, f.name, list(f.array.shape[:3])) for role, f in zip(roles, files, strict=False)
    ]
    if len({tuple(s) for *_, s in shapes}) > 1:
        listed = ", ".join(f"{role} {n} {s}" for role, n, s in shapes)
        raise InvalidInputError(f"{pair.name}: sizes differ: {listed} (planes, rows, columns)")
    pred_labels, scores = prediction(pred_file, PredKind(pred_kind), threshold)
    sources = {"pred": str(pair.pred), "ref": str(pair.ref)}
    if pair.roi is not None:
        sources["roi"] = str(pair.roi)
    return Case(
        pair.name,
        pred_labels,
        ref_file.labels(),
        spacing=_spacing_of(files, spacing, pair.name),
        roi=None if roi_file is None else roi_file.labels() != 0,
        pred_scores=scores,
        sources=sources,
    )
