"""Threshold range: the pixels between two intensities, with Otsu's threshold as a guide.

Works on one slice, or with ``index=None`` on the whole volume (clicks then select 3D
connected components). Intensities are in the image's units (HU for CT); colour images
are thresholded on their luminance.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import numpy as np

from medlabel.engines.base import EngineRequest, ParamKind, ParamSpec, PromptKind, Proposal
from medlabel.engines.classical.common import (
    Window,
    describe_window,
    inside,
    keep_seeded,
    params_of,
    plane_box,
    plane_seeds,
    slice_gray,
    summary,
    volume_box,
    volume_gray,
    volume_seeds,
)
from medlabel.imaging.volume import Volume

#: Otsu's threshold is computed on at most this many values (a regular subsample)
OTSU_SAMPLES = 1 << 20


class ThresholdMethod(StrEnum):
    """How the range is chosen.

    ``range``: ``low <= value <= high`` (a missing bound: see :func:`threshold_bounds`);
    ``otsu-above`` / ``otsu-below``: above Otsu's threshold / at or below it;
    ``otsu``: the side of Otsu's threshold the (first) positive click lies on, above
    without a click.
    """

    RANGE = "range"
    OTSU = "otsu"
    OTSU_ABOVE = "otsu-above"
    OTSU_BELOW = "otsu-below"


def _validate_inputs(image: np.ndarray) -> None:
    if image.ndim not in (2, 3):
        raise ValueError(
            f"expected a greyscale image (rows, columns) or volume (planes, rows, columns), "
            f"got shape {image.shape}"
        )
    if image.size == 0:
        raise ValueError(f"the image is empty: shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
        raise ValueError(f"expected numeric pixel values, got dtype {image.dtype}")


def otsu_suggestion(image: np.ndarray) -> float:
    """Otsu's threshold of ``image``: the intensity that best splits it into two classes.

    Parameters
    ----------
    image
        Greyscale ``(rows, columns)`` or ``(planes, rows, columns)``, any numeric type,
        in the image's units. Non-finite values are ignored; large volumes are
        subsampled regularly to :data:`OTSU_SAMPLES` values.

    Returns
    -------
    float
        The threshold (256-bin histogram); for a constant image, its value.

    Raises
    ------
    ValueError
        If ``image`` is not 2D or 3D, is empty or has no finite value.

    Examples
    --------
    >>> img = np.array([[0, 0, 2, 100], [98, 100, 1, 99]], np.int16)
    >>> 2 <= otsu_suggestion(img) < 98
    True
    >>> otsu_suggestion(np.full((3, 3), 7.0))
    7.0
    """
    _validate_inputs(image)
    values = np.asarray(image).reshape(-1)
    step = max(1, math.ceil(values.size / OTSU_SAMPLES))
    values = values[::step].astype(np.float32)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("the image has no finite value to threshold")
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return lo
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(values, nbins=256))


def threshold_bounds(
    method: ThresholdMethod | str,
    low: float | None,
    high: float | None,
    *,
    otsu: float,
    lowest: float,
    highest: float,
    above: bool = True,
) -> tuple[float, float, bool]:
    """The interval a method selects: ``(low, high, low_open)``.

    Parameters
    ----------
    method
        A :class:`ThresholdMethod`.
    low, high
        The user's bounds (None or NaN when not given), used by ``range`` only. A
        missing ``low`` is Otsu's threshold, or ``lowest`` when the given ``high`` lies
        below Otsu's threshold; a missing ``high`` is ``highest``.
    otsu, lowest, highest
        Otsu's threshold and the image's extreme values.
    above
        For ``otsu``: whether the structure lies above the threshold.

    Returns
    -------
    tuple
        ``low``, ``high`` and ``low_open``: the selection is ``low < value <= high`` if
        ``low_open`` (the Otsu methods: the two sides of a threshold partition the
        image), else ``low <= value <= high``.

    Raises
    ------
    ValueError
        If the given ``low`` exceeds the given ``high``.

    Examples
    --------
    >>> threshold_bounds("range", None, None, otsu=5.0, lowest=0.0, highest=9.0)
    (5.0, 9.0, False)
    >>> threshold_bounds("range", None, 3.0, otsu=5.0, lowest=0.0, highest=9.0)
    (0.0, 3.0, False)
    >>> threshold_bounds("otsu", 1.0, 2.0, otsu=5.0, lowest=0.0, highest=9.0, above=False)
    (0.0, 5.0, False)
    """
    method = ThresholdMethod(method)
    if method is ThresholdMethod.OTSU:
        method = ThresholdMethod.OTSU_ABOVE if above else ThresholdMethod.OTSU_BELOW
    if method is ThresholdMethod.OTSU_ABOVE:
        return otsu, highest, True
    if method is ThresholdMethod.OTSU_BELOW:
        return lowest, otsu, False
    given_low, given_high = _finite_or_none(low), _finite_or_none(high)
    if given_low is not None and given_high is not None and given_low > given_high:
        raise ValueError(f"low ({given_low:g}) must not exceed high ({given_high:g})")
    hi = highest if given_high is None else given_high
    if given_low is None:
        given_low = otsu if otsu <= hi else lowest
    return given_low, hi, False


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def threshold_mask(
    image: np.ndarray, low: float, high: float, *, low_open: bool = False
) -> np.ndarray:
    """``low <= image <= high`` (``low < image`` if ``low_open``) as a boolean mask.

    Examples
    --------
    >>> threshold_mask(np.array([1, 2, 3, 4]), 2, 3).tolist()
    [False, True, True, False]
    >>> threshold_mask(np.array([1, 2, 3, 4]), 2, 3, low_open=True).tolist()
    [False, False, True, False]
    """
    above = image > low if low_open else image >= low
    return np.asarray(above & (image <= high), bool)


class ThresholdEngine:
    """Threshold range (optionally kept to clicked components and to a box).

    Otsu's threshold is computed inside the box if one is given, else on the slice
    (volume); ``info`` reports it as ``otsu`` with the ``low`` and ``high`` used, so a
    form can say "Otsu suggests …". Positive clicks keep only the connected components
    (faces touching) that contain them. A previous mask is accepted and ignored: the
    proposal is the thresholded region alone (the service merges it).
    """

    name: str = "threshold"
    version: str = "1"
    title: str = "Threshold range"
    description: str = (
        "Pixels whose intensity lies in a range (HU for CT); without a range, Otsu's "
        "threshold. Click a structure to keep only the regions you click."
    )
    prompts: frozenset[PromptKind] = frozenset(
        {PromptKind.NONE, PromptKind.POSITIVE, PromptKind.BOX, PromptKind.PREVIOUS}
    )
    required: frozenset[PromptKind] = frozenset()
    params: tuple[ParamSpec, ...] = (
        ParamSpec("low", ParamKind.FLOAT, None, "lowest intensity kept (default: Otsu)"),
        ParamSpec("high", ParamKind.FLOAT, None, "highest intensity kept (default: maximum)"),
        ParamSpec(
            "method",
            ParamKind.CHOICE,
            ThresholdMethod.RANGE.value,
            "range: low..high; otsu-above/-below: one side of Otsu's threshold; "
            "otsu: the side of the clicked pixel",
            choices=tuple(m.value for m in ThresholdMethod),
        ),
    )
    volumetric: bool = True

    def run(self, volume: Volume, request: EngineRequest) -> Proposal:
        """Threshold the slice, or the whole volume when ``request.index`` is None."""
        p = params_of(self.params, request)
        if request.index is None and not volume.is_2d:
            image = volume_gray(volume)
            window = volume_box(request, image.shape)
            seeds: list[tuple[int, ...]] = list(volume_seeds(request.positive, image.shape))
            mask, info = _threshold(image, window, seeds, p)
            return Proposal(mask=mask, info=info)
        view, image2d = slice_gray(volume, request)
        window = plane_box(view, request)
        seeds = list(plane_seeds(view, request.positive))
        mask, info = _threshold(image2d, window, seeds, p)
        return Proposal.from_plane(mask, axis=view.axis, index=view.index, info=info)


def _threshold(
    image: np.ndarray, window: Window | None, seeds: list[tuple[int, ...]], p: dict[str, Any]
) -> tuple[np.ndarray, dict[str, Any]]:
    region = image[window] if window is not None else image
    otsu = otsu_suggestion(region)
    lowest, highest = float(region.min()), float(region.max())
    above = not seeds or float(image[seeds[0]]) > otsu
    low, high, low_open = threshold_bounds(
        p["method"], p["low"], p["high"], otsu=otsu, lowest=lowest, highest=highest, above=above
    )
    mask = threshold_mask(image, low, high, low_open=low_open)
    if window is not None:
        mask &= inside(image.shape, window)
    info: dict[str, Any] = {
        "otsu": otsu,
        "low": low,
        "high": high,
        "rule": f"{low:g} {'<' if low_open else '<='} value <= {high:g}",
        "method": str(p["method"]),
        "box": describe_window(window),
    }
    if seeds:
        selected = keep_seeded(mask, seeds)
        if mask.any() and not selected.any():
            info["warning"] = "no click lies inside the thresholded range: nothing selected"
        mask = selected
    info["pixels"] = int(np.count_nonzero(mask))
    return mask, summary(info)
