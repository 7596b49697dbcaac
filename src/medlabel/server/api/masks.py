"""The mask payload of requests, shared by the routers that take masks."""

from __future__ import annotations

import base64
import binascii

import numpy as np
from pydantic import BaseModel, Field

from medlabel.core.errors import InvalidInputError
from medlabel.services.masks import MaskEncoding, decode_mask
from medlabel.storage.db.models import Image


class MaskIn(BaseModel):
    encoding: MaskEncoding = MaskEncoding.RAW_GZIP
    dtype: str = Field(default="uint8", description="uint8 or uint16 (raw-gzip only).")
    data: str = Field(description="Base64 of the encoded mask.")


def decode_mask_in(mask: MaskIn, image: Image) -> np.ndarray:
    """The mask as a ``(planes, rows, columns)`` array on the image's grid."""
    try:
        data = base64.b64decode(mask.data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("mask.data is not valid base64") from None
    return decode_mask(
        mask.encoding, data, shape=image.shape, affine=np.asarray(image.affine), dtype=mask.dtype
    )
