"""Images and reference masks of a labelled data set, paired by file name, and loaded
the way the server loads them.

A pair is an image and a mask with the same stem (the name without its extension, where
``.nii.gz`` counts as one extension); extensions may differ (``a.jpg`` + ``a.png``) and
mask names may carry a fixed suffix (CHASE_DB1: ``Image_01L.jpg`` +
``Image_01L_1stHO.png`` with ``mask_suffix="_1stHO"``).

Images: PNG, JPEG, TIFF (:func:`~medlabel.io.raster.read_raster`, colour stays RGB) or
NIfTI (:func:`~medlabel.io.nifti.read_nifti`). Masks: the same formats or GIF; raster
masks are binarised (``> 127`` for 8-bit JPEG, whose compression blurs the edges,
``> 0`` otherwise, any channel), NIfTI masks keep their integer labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.imaging.volume import Volume

IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
MASK_EXTENSIONS = (*IMAGE_EXTENSIONS, ".gif")


@dataclass(frozen=True)
class Pair:
    """An image and its reference mask; ``name`` is their shared stem."""

    name: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class Pairing:
    """Pairs sorted by name, and the stems left without a partner."""

    pairs: tuple[Pair, ...]
    unmatched_images: tuple[str, ...]
    unmatched_masks: tuple[str, ...]


def split_name(name: str, extensions: tuple[str, ...] = MASK_EXTENSIONS) -> tuple[str, str] | None:
    """``(stem, extension)`` of a file name if the extension is one of ``extensions``
    (case-insensitive), else ``None``.

    Examples
    --------
    >>> split_name("case_01.nii.gz")
    ('case_01', '.nii.gz')
    >>> split_name("Image_01L.JPG")
    ('Image_01L', '.jpg')
    >>> split_name("notes.txt") is None
    True
    """
    lower = name.lower()
    for ext in extensions:
        if lower.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)], ext
    return None


def _by_stem(folder: Path, extensions: tuple[str, ...], what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise NotFoundError(f"{what} folder {folder} does not exist or is not a folder")
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        parts = split_name(path.name, extensions)
        if parts is None or path.name.startswith(".") or not path.is_file():
            continue
        stem = parts[0]
        if stem in out:
            raise InvalidInputError(
                f"{what} folder {folder} has two files named {stem!r}: "
                f"{out[stem].name} and {path.name}; keep one"
            )
        out[stem] = path
    return out


def pair_files(images_dir: Path, masks_dir: Path, *, mask_suffix: str = "") -> Pairing:
    """Pair the images of ``images_dir`` with the masks of ``masks_dir`` by stem.

    Parameters
    ----------
    images_dir, masks_dir
        Folders (not searched recursively); other files are ignored.
    mask_suffix
        Removed from the end of mask stems before matching.

    Raises
    ------
    NotFoundError
        A folder does not exist.
    InvalidInputError
        Two files of a folder share a stem, or no image has a mask.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("img/a.jpg", "img/b.png", "msk/a_gt.png", "msk/c_gt.png"):
    ...     (root / name).parent.mkdir(exist_ok=True); (root / name).touch()
    >>> p = pair_files(root / "img", root / "msk", mask_suffix="_gt")
    >>> [(x.name, x.image.name, x.mask.name) for x in p.pairs], p.unmatched_images
    ([('a', 'a.jpg', 'a_gt.png')], ('b',))
    >>> import shutil; shutil.rmtree(root)
    """
    images = _by_stem(Path(images_dir), IMAGE_EXTENSIONS, "image")
    raw_masks = _by_stem(Path(masks_dir), MASK_EXTENSIONS, "mask")
    masks: dict[str, Path] = {}
    for stem, path in raw_masks.items():
        if mask_suffix:
            if not stem.endswith(mask_suffix):
                continue
            stem = stem[: -len(mask_suffix)]
        masks[stem] = path
    names = sorted(images.keys() & masks.keys())
    if not names:
        raise InvalidInputError(_no_pairs_message(images, raw_masks, images_dir, masks_dir))
    return Pairing(
        pairs=tuple(Pair(n, images[n], masks[n]) for n in names),
        unmatched_images=tuple(sorted(images.keys() - masks.keys())),
        unmatched_masks=tuple(sorted(masks.keys() - images.keys())),
    )


def _no_pairs_message(
    images: dict[str, Path], masks: dict[str, Path], images_dir: Path, masks_dir: Path
) -> str:
    if not images:
        return f"no PNG, JPEG, TIFF or NIfTI images in {images_dir}"
    if not masks:
        return f"no PNG, JPEG, GIF, TIFF or NIfTI masks in {masks_dir}"
    msg = f"no image in {images_dir} has a mask of the same name in {masks_dir}"
    for mask in sorted(masks):
        for image in sorted(images):
            if mask.startswith(image) and len(mask) > len(image):
                return f"{msg} (masks named like {mask!r}? give --mask-suffix {mask[len(image) :]})"
    return f"{msg} (e.g. image {sorted(images)[0]!r}, mask {sorted(masks)[0]!r})"


def is_nifti(path: Path) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii`` or ``.nii.gz``)."""
    return path.name.lower().endswith((".nii", ".nii.gz"))


def load_image(path: Path) -> Volume:
    """The image as the server reads it (NIfTI, or PNG/JPEG/TIFF on a nominal grid)."""
    from medlabel.io.nifti import read_nifti
    from medlabel.io.raster import read_raster

    return read_nifti(path) if is_nifti(path) else read_raster(path)


def load_labels(path: Path, shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """A reference mask as integer labels ``(planes, rows, columns)``.

    Parameters
    ----------
    path
        NIfTI (labels kept, rounded), or PNG/JPEG/GIF/TIFF (binarised to 0/1).
    shape
        The image's spatial shape, which the mask must have.

    Raises
    ------
    InvalidInputError
        Unreadable file, or a shape other than ``shape``.
    """
    from medlabel.io.nifti import read_nifti
    from medlabel.io.raster import read_raster

    if is_nifti(path):
        arr = read_nifti(path).array
        if arr.ndim == 4:
            arr = arr.max(axis=3)
        labels = np.rint(arr).astype(np.int64) if arr.dtype.kind == "f" else arr.astype(np.int64)
    elif path.name.lower().endswith(".gif"):
        labels = _read_gif(path)
    else:
        vol = read_raster(path)
        arr = vol.array.max(axis=3) if vol.array.ndim == 4 else vol.array
        jpeg8 = vol.metadata.get("format") == "JPEG" and arr.dtype == np.uint8
        labels = (arr > (127 if jpeg8 else 0)).astype(np.int64)
    if shape is not None and labels.shape != tuple(shape):
        raise InvalidInputError(
            f"{path.name}: mask shape {list(labels.shape)} differs from the image's "
            f"{list(shape)} (planes, rows, columns)"
        )
    return labels


def _read_gif(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) != 1:
                raise InvalidInputError(f"{path.name}: animated GIF masks are not supported")
            arr = np.asarray(im.convert("L"))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InvalidInputError(f"{path.name}: not a readable GIF file ({exc})") from None
    return (arr > 0).astype(np.int64)[np.newaxis]
