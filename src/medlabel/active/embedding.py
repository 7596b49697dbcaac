"""A short feature vector per image for the diversity strategies (core-set sampling).

Two kinds exist (:class:`EmbeddingKind`): the model's own features of the image
(:func:`medlabel.engines.deep.features.model_features`, preferred) and the pixel
thumbnail of :func:`embedding` (the fallback: any image, no model needed). Vectors of
different kinds, or of different models, are not comparable.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from medlabel.imaging.volume import Volume


class EmbeddingKind(StrEnum):
    """Where an image's embedding came from."""

    THUMBNAIL = "thumbnail"
    MODEL_FEATURES = "model-features"


#: side of the thumbnail embedding used for diversity sampling (EMBED_SIDE² numbers)
EMBED_SIDE = 8


def embedding(volume: Volume, side: int = EMBED_SIDE) -> list[float]:
    """A short feature vector of an image: its middle plane (grey), block-averaged to
    ``side × side`` and standardised (zero mean, unit norm).

    Examples
    --------
    >>> v = Volume.from_spacing(np.arange(64.0).reshape(1, 8, 8), spacing=[1, 1, 1])
    >>> len(embedding(v, 4))
    16
    """
    arr = np.asarray(volume.array, np.float32)
    plane = arr[arr.shape[0] // 2]
    if plane.ndim == 3:
        plane = plane.mean(axis=2)
    rows = np.array_split(np.arange(plane.shape[0]), min(side, plane.shape[0]))
    cols = np.array_split(np.arange(plane.shape[1]), min(side, plane.shape[1]))
    small = np.zeros((side, side), np.float32)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            small[i, j] = plane[np.ix_(r, c)].mean()
    v = small.ravel() - small.mean()
    norm = float(np.linalg.norm(v))
    return [round(float(x), 5) for x in (v / norm if norm > 0 else v)]
