"""NIfTI-1/2 ↔ :class:`~medlabel.imaging.Volume`, converting RAS ↔ LPS at the boundary.

A NIfTI array is indexed ``(i, j, k)`` with an affine to RAS; a Volume is indexed
``(plane, row, column) = (k, j, i)`` with an affine to LPS. Writing then reading gives
back the same array and affine.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from medlabel.core.errors import InvalidInputError, TooLargeError, UnsupportedFormatError
from medlabel.imaging.volume import Volume

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
# (plane, row, column) -> (i, j, k): i = column, j = row, k = plane
_PRC_TO_IJK = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)

_RGB = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])


def nifti_affine_to_lps(affine_ras: np.ndarray) -> np.ndarray:
    """Convert a NIfTI (i, j, k) → RAS affine into a (plane, row, column) → LPS affine."""
    out: np.ndarray = _RAS_TO_LPS @ np.asarray(affine_ras, dtype=np.float64) @ _PRC_TO_IJK
    return out


def lps_affine_to_nifti(affine_lps: np.ndarray) -> np.ndarray:
    """Inverse of :func:`nifti_affine_to_lps`."""
    out: np.ndarray = _RAS_TO_LPS @ np.asarray(affine_lps, dtype=np.float64) @ _PRC_TO_IJK.T
    return out


def _gunzip(data: bytes, limit: int, name: str) -> bytes:
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise InvalidInputError(f"{name}: corrupt gzip data ({exc})") from None
    if len(out) > limit:
        raise TooLargeError(f"{name}: decompresses to more than {limit} bytes")
    return out


def _load(source: Path | bytes, name: str, max_bytes: int) -> nib.Nifti1Image | nib.Nifti2Image:
    img: nib.Nifti1Image | nib.Nifti2Image
    try:
        if isinstance(source, bytes):
            data = _gunzip(source, max_bytes, name) if source[:2] == b"\x1f\x8b" else source
            fh = nib.FileHolder(fileobj=io.BytesIO(data))
            klass = nib.Nifti2Image if data[:4] == b"\x1c\x02\x00\x00" else nib.Nifti1Image
            img = klass.from_file_map({"header": fh, "image": fh})
            return img
        loaded = nib.load(str(source))
    except (nib.filebasedimages.ImageFileError, EOFError, OSError, ValueError) as exc:
        raise InvalidInputError(f"{name}: not a readable NIfTI file ({exc})") from None
    if not isinstance(loaded, nib.Nifti1Image | nib.Nifti2Image):
        raise UnsupportedFormatError(f"{name}: {type(loaded).__name__} files are not supported")
    return loaded


def read_nifti(
    source: Path | bytes,
    *,
    name: str | None = None,
    modality: str = "OT",
    max_voxels: int = 1_000_000_000,
) -> Volume:
    """Read a ``.nii`` or ``.nii.gz`` file (or its bytes) as a Volume.

    The header is checked before any pixel data is read: a header that claims more than
    ``max_voxels`` voxels, a 4D series or a truncated file is rejected with a message.

    Raises
    ------
    InvalidInputError
        Unreadable or truncated file.
    TooLargeError
        More than ``max_voxels`` voxels.
    UnsupportedFormatError
        4D/5D images (other than a single volume) and unsupported data types.
    """
    label = name or (source.name if isinstance(source, Path) else "NIfTI data")
    # bytes (e.g. an uploaded mask) are decompressed with a cap: no gzip bomb
    img = _load(source, label, max_bytes=max_voxels * 8 + 1024 * 1024)
    shape = tuple(int(s) for s in img.header.get_data_shape())
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise InvalidInputError(f"{label}: NIfTI header has an invalid shape {shape}")
    n_voxels = int(np.prod(shape, dtype=np.float64))
    if n_voxels > max_voxels:
        raise TooLargeError(
            f"{label}: NIfTI header claims {shape} = {n_voxels:.3g} voxels, above the limit "
            f"of {max_voxels:.3g} (MEDLABEL_MAX_VOXELS)"
        )
    extra = shape[3:]
    if any(s > 1 for s in extra):
        raise UnsupportedFormatError(
            f"{label}: {len(shape)}D NIfTI {shape} is not supported; split it into 3D volumes"
        )
    shape3 = (*shape, 1, 1)[:3]
    if isinstance(source, Path) and not str(source).endswith(".gz"):
        expected = int(img.header["vox_offset"]) + n_voxels * img.header.get_data_dtype().itemsize
        if source.stat().st_size < expected:
            raise InvalidInputError(
                f"{label}: file is truncated ({source.stat().st_size} bytes, header needs "
                f"{expected})"
            )
    try:
        if img.header.get_data_dtype() == _RGB:
            raw = np.asarray(img.dataobj).reshape(shape3)
            data = np.stack([raw["R"], raw["G"], raw["B"]], axis=-1)
        else:
            data = np.asanyarray(img.dataobj).reshape(shape3)
    except (EOFError, OSError, ValueError, gzip.BadGzipFile) as exc:
        raise InvalidInputError(f"{label}: pixel data could not be read ({exc})") from None
    if data.dtype.kind not in "uifb":
        raise UnsupportedFormatError(f"{label}: NIfTI data type {data.dtype} is not supported")
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        data = np.nan_to_num(data, copy=False)
    array = np.ascontiguousarray(np.moveaxis(data, (0, 1, 2), (2, 1, 0)))
    affine = nifti_affine_to_lps(img.affine)
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InvalidInputError(f"{label}: NIfTI affine is singular")
    return Volume(array, affine, modality=modality)


def write_nifti(volume: Volume, path: Path | None = None) -> bytes | None:
    """Write ``volume`` as NIfTI-1 (gzip when ``path`` ends with ``.gz``).

    Returns the gzipped file's bytes when ``path`` is None.
    """
    arr = volume.array
    if arr.ndim == 4:
        if volume.channels != 3 or arr.dtype != np.uint8:
            raise ValueError("only 8-bit RGB multi-channel volumes can be written to NIfTI")
        rgb = np.empty(arr.shape[:3], dtype=_RGB)
        rgb["R"], rgb["G"], rgb["B"] = arr[..., 0], arr[..., 1], arr[..., 2]
        arr = rgb
    data = np.moveaxis(arr, (0, 1, 2), (2, 1, 0))
    affine = lps_affine_to_nifti(volume.affine)
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if arr.dtype.kind in "ui":
        img.header.set_slope_inter(1.0, 0.0)
    if path is not None:
        nib.save(img, str(path))
        return None
    buf = io.BytesIO()
    fh = nib.FileHolder(fileobj=buf)
    img.to_file_map({"header": fh, "image": fh})
    out: bytes = gzip.compress(buf.getvalue(), compresslevel=1)
    return out


def nifti_header_bytes(shape: tuple[int, ...], dtype: np.dtype, affine_lps: np.ndarray) -> bytes:
    """Header (with the 4 extension bytes) of an uncompressed ``.nii`` whose data block is
    the C-order bytes of a ``(planes, rows, columns[, 3])`` array.

    NIfTI stores ``i`` (our column) fastest, so a C-ordered Volume array needs no
    reordering: the file can be streamed as header + the array's raw bytes. RGB arrays
    (4 dims, 3 uint8 channels) become NIfTI RGB24.
    """
    if len(shape) == 4:
        if shape[3] != 3 or np.dtype(dtype) != np.uint8:
            raise ValueError("only 8-bit RGB multi-channel arrays can be written to NIfTI")
        data_dtype: np.dtype = _RGB
    else:
        data_dtype = np.dtype(dtype)
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(data_dtype)
    hdr.set_data_shape((shape[2], shape[1], shape[0]))
    affine = lps_affine_to_nifti(affine_lps)
    hdr.set_qform(affine, code=1)
    hdr.set_sform(affine, code=1)
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_slope_inter(1.0, 0.0)
    hdr["vox_offset"] = 352
    block: bytes = hdr.binaryblock
    return block + b"\x00\x00\x00\x00"
