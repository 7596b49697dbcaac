"""What a proposal request brings besides the engine's parameters: point and box prompts,
scribbles painted as masks, and the previous mask an engine starts from."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from sqlalchemy import select
from sqlalchemy.orm import Session

from medlabel.core.errors import InvalidInputError, MedlabelError
from medlabel.engines.base import Point
from medlabel.io.arrays import decode_array
from medlabel.services.access import Principal
from medlabel.services.context import Context
from medlabel.services.masks import MaskEncoding, decode_mask
from medlabel.storage.db.models import Annotation, Image, Label, Proposal, Revision

#: limits on one request's prompts (beyond the server's body size limit)
MAX_POINTS = 10_000
MAX_SCRIBBLE_RADIUS = 32.0


@dataclass(frozen=True)
class FromProposal:
    """Start from an earlier proposal of the same user on the same image."""

    id: int


@dataclass(frozen=True)
class FromAnnotation:
    """Start from the user's current mask of the label (their annotation's head)."""


@dataclass(frozen=True)
class FromPlane:
    """Start from a mask of the slice being worked on: ``raw-gzip`` bytes of a 2D array of
    the slice's shape (the two axes other than ``axis``, in order), non-zero inside."""

    data: bytes
    dtype: str = "uint8"


Previous = FromProposal | FromAnnotation | FromPlane


def parse_points(points: Sequence[Sequence[float]], what: str) -> tuple[Point, ...]:
    if len(points) > MAX_POINTS:
        raise InvalidInputError(f"at most {MAX_POINTS} {what} points, got {len(points)}")
    out = []
    for p in points:
        try:
            a, b, c = (float(v) for v in p)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"a {what} point must be 3 voxel coordinates (plane, row, column), got {p!r}"
            ) from None
        if not all(math.isfinite(v) for v in (a, b, c)):
            raise InvalidInputError(f"a {what} point must be finite, got {[a, b, c]}")
        out.append((a, b, c))
    return tuple(out)


def parse_box(box: Sequence[Sequence[float]] | None) -> tuple[Point, Point] | None:
    if box is None:
        return None
    if len(box) != 2:
        raise InvalidInputError(f"a box is two corners [[p, r, c], [p, r, c]], got {box!r}")
    a, b = parse_points(box, "box")
    return a, b


def scribble_mask(
    points: Sequence[Sequence[float]],
    shape: tuple[int, int, int],
    axis: int,
    index: int | None,
    radius: float,
    what: str,
) -> np.ndarray | None:
    """Scribble points painted as a boolean mask of the image's ``shape``.

    Each point marks the voxel it falls in; every voxel whose centre lies within
    ``radius`` voxels of a marked one is set: a disc in the slice ``index`` along ``axis``
    (points must lie on that slice), or a ball when ``index`` is None.
    """
    pts = parse_points(points, what)
    if not pts:
        return None
    if not 0 <= radius <= MAX_SCRIBBLE_RADIUS or not math.isfinite(radius):
        raise InvalidInputError(
            f"scribble_radius must be within 0..{MAX_SCRIBBLE_RADIUS} voxels, got {radius}"
        )
    for p in pts:
        if not all(-0.5 <= v <= n - 0.5 for v, n in zip(p, shape, strict=True)):
            raise InvalidInputError(
                f"{what} point {list(p)} lies outside the image of shape {list(shape)}"
            )
        if index is not None and abs(p[axis] - index) > 0.5:
            raise InvalidInputError(
                f"{what} point {list(p)} is not on slice {index} along axis {axis}"
            )
    seeds = np.clip(np.floor(np.asarray(pts) + 0.5).astype(np.int64), 0, np.asarray(shape) - 1)
    if index is not None:
        seeds[:, axis] = index
    reach = math.floor(radius)
    lo = np.maximum(seeds.min(0) - reach, 0)
    hi = np.minimum(seeds.max(0) + reach + 1, shape)
    if index is not None:
        lo[axis], hi[axis] = index, index + 1
    block = np.ones(tuple(int(h - lo_) for lo_, h in zip(lo, hi, strict=True)), bool)
    block[tuple((seeds - lo)[:, d] for d in range(3))] = False  # seeds: distance 0
    squeezed = block.squeeze(axis) if index is not None else block
    near = ndimage.distance_transform_edt(squeezed) <= radius
    out = np.zeros(shape, bool)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    out[sl] = np.expand_dims(near, axis) if index is not None else near
    return out


def previous_source(previous: Previous) -> dict[str, Any] | str:
    if isinstance(previous, FromProposal):
        return {"proposal": previous.id}
    return "annotation" if isinstance(previous, FromAnnotation) else "plane"


def previous_digest(
    s: Session, actor: Principal, image: Image, previous: Previous | None
) -> tuple[str, list[int], list[int]] | str | None:
    """What the previous mask is read from: (digest, origin, shape) of an earlier proposal,
    the digest of the actor's head mask, or None."""
    if isinstance(previous, FromProposal):
        row = s.get(Proposal, previous.id)
        if row is None or row.image_id != image.id or row.user_id != actor.id:
            raise InvalidInputError(
                f"previous proposal {previous.id} is not one of your proposals on image {image.id}"
            )
        return row.mask_digest, list(row.origin), list(row.shape)
    if isinstance(previous, FromAnnotation):
        return s.scalar(
            select(Revision.mask_digest)
            .join(Annotation, Annotation.head_revision_id == Revision.id)
            .where(Annotation.image_id == image.id, Annotation.owner_id == actor.id)
        )
    return None


def previous_mask(
    ctx: Context,
    previous: Previous | None,
    source: tuple[str, list[int], list[int]] | str | None,
    label: Label,
    shape: tuple[int, int, int],
    axis: int,
    index: int | None,
) -> np.ndarray | None:
    """The previous mask as a boolean array of the image's shape (None: nothing)."""
    out = np.zeros(shape, bool)
    if isinstance(previous, FromProposal) and isinstance(source, tuple):
        digest, origin, crop = source
        out[crop_slices(origin, crop, shape)] = decode_array(ctx.blobs.read_bytes(digest))
    elif isinstance(previous, FromAnnotation):
        if not isinstance(source, str):
            return None  # no annotation or no mask yet
        out = decode_array(ctx.blobs.read_bytes(source)) == label.value
    elif isinstance(previous, FromPlane):
        if index is None and shape[0] != 1:
            raise InvalidInputError("a previous plane needs the slice: give axis and index")
        at = 0 if index is None else index
        plane_axis = 0 if index is None else axis
        plane_shape = tuple(n for d, n in enumerate(shape) if d != plane_axis)
        plane = decode_mask(
            MaskEncoding.RAW_GZIP,
            previous.data,
            shape=plane_shape,
            affine=np.eye(4),
            dtype=previous.dtype,
        )
        where: list[slice | int] = [slice(None)] * 3
        where[plane_axis] = at
        out[tuple(where)] = plane != 0
    else:
        return None
    return out if out.any() else None


def crop_slices(
    origin: Sequence[int], crop: Sequence[int], shape: Sequence[int]
) -> tuple[slice, ...]:
    if (
        len(origin) != 3
        or len(crop) != 3
        or any(o < 0 or n < 1 or o + n > m for o, n, m in zip(origin, crop, shape, strict=True))
    ):
        raise MedlabelError(
            f"stored proposal box at {list(origin)} of shape {list(crop)} does not fit the "
            f"image of shape {list(shape)}"
        )
    return tuple(slice(int(o), int(o) + int(n)) for o, n in zip(origin, crop, strict=True))
