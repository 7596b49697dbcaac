"""Plain folders of images and masks for training, and predicted masks written back.

Pairing follows :func:`medlabel.quality.pairs.pair_files` (the benchmarks' rule): an
image and a mask pair when their names without extension are equal, after removing
``mask_suffix`` from mask names (CHASE_DB1: ``Image_01L.jpg`` ↔ ``Image_01L_1stHO.png``).
Raster masks are binarised (``> 127`` for 8-bit JPEG, ``> 0`` otherwise); NIfTI masks
keep their integer labels.

A predicted mask keeps its image's name and geometry: NIfTI inputs get a NIfTI mask with
the input's header (affine, qform/sform codes, voxel sizes) and file name; PNG and TIFF
inputs a mask of the same name and size; JPEG and GIF inputs a PNG (lossless) of the same
stem. Raster masks hold 0/255 when there is one foreground label (viewable, and
``> 127`` reads them back), else the label values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.engines.deep.model_dir import TaskKind
from medlabel.engines.deep.tasks import Example, FolderSource, Reporter, TrainingSet
from medlabel.imaging.volume import Volume
from medlabel.quality.pairs import (
    IMAGE_EXTENSIONS,
    is_nifti,
    load_image,
    load_labels,
    pair_files,
    split_name,
)

#: how many unmatched names an error message lists
_SHOWN = 5


def segmentation_set(
    source: FolderSource, reporter: Reporter | None = None, *, strict: bool = True
) -> TrainingSet:
    """Read a folder of images and a folder of masks as a segmentation training set.

    Parameters
    ----------
    source
        ``images`` and ``masks`` folders (not searched recursively), ``mask_suffix``.
    reporter
        Receives progress while the files are read.
    strict
        Refuse images without a mask (and masks without an image); otherwise they are
        skipped and named in a log line.

    Raises
    ------
    NotFoundError
        A folder does not exist.
    InvalidInputError
        No pairs, unmatched files (``strict``), unreadable files, a mask whose shape
        differs from its image's, images mixing 2D and 3D, or masks without any label.
    """
    if source.masks is None:
        raise InvalidInputError("segmentation needs a folder of masks (--masks DIR)")
    pairing = pair_files(source.images, source.masks, mask_suffix=source.mask_suffix)
    unmatched = [("image", n) for n in pairing.unmatched_images] + [
        ("mask", n) for n in pairing.unmatched_masks
    ]
    if unmatched:
        listed = ", ".join(f"{kind} {name!r}" for kind, name in unmatched[:_SHOWN])
        more = f" and {len(unmatched) - _SHOWN} more" if len(unmatched) > _SHOWN else ""
        msg = f"{len(unmatched)} file(s) without a partner: {listed}{more}"
        if strict:
            hint = " (mask names end with a suffix? give --mask-suffix)"
            raise InvalidInputError(msg + (hint if not source.mask_suffix else ""))
        if reporter is not None:
            reporter.log(f"skipped {msg}")
    examples: list[Example] = []
    total = len(pairing.pairs)
    for i, pair in enumerate(pairing.pairs):
        image = read_image(pair.image, modality=source.modality)
        labels = load_labels(pair.mask, image.spatial_shape)
        if labels.min() < 0 or labels.max() > 255:
            raise InvalidInputError(
                f"{pair.mask.name}: labels must be integers 0–255, got "
                f"{int(labels.min())}..{int(labels.max())}"
            )
        examples.append(Example(pair.name, image, labels.astype(np.uint8)))
        if reporter is not None:
            reporter.progress(i + 1, total, "reading images")
            reporter.check_cancelled()
    dims = {2 if e.image.is_2d else 3 for e in examples}
    if len(dims) > 1:
        flat = [e.name for e in examples if e.image.is_2d][:_SHOWN]
        raise InvalidInputError(f"images mix 2D and 3D (2D: {flat}); train them separately")
    values = sorted(set().union(*(np.unique(e.target).tolist() for e in examples)) - {0})
    if not values:
        raise InvalidInputError("the masks contain no labelled voxel (all 0)")
    labels_named = {0: "background", **{int(v): f"label {v}" for v in values}}
    return TrainingSet(TaskKind.SEG, examples, labels_named, source=str(source.images))


def read_image(path: Path, *, modality: str | None = None) -> Volume:
    """An image as training and prediction see it: NIfTI with its geometry, PNG/JPEG/TIFF
    on a nominal 1 mm grid (colour stays RGB); ``modality`` overrides the recorded one."""
    volume = load_image(Path(path))
    if volume.array.ndim == 4 and volume.channels == 4:
        volume = volume.with_array(volume.array[..., :3])
    if modality:
        volume = volume.with_array(volume.array, modality=modality.upper())
    return volume


def list_images(folder: Path) -> list[Path]:
    """The images of ``folder`` (not recursive) in name order.

    Raises
    ------
    NotFoundError
        Not a folder.
    InvalidInputError
        No image in it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFoundError(f"image folder {folder} does not exist or is not a folder")
    out = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".") and split_name(p.name, IMAGE_EXTENSIONS)
    ]
    if not out:
        raise InvalidInputError(f"no PNG, JPEG, TIFF or NIfTI images in {folder}")
    return out


def mask_name(image: Path) -> str:
    """The file name of an image's predicted mask (see the module docstring).

    Examples
    --------
    >>> mask_name(Path("a/case.nii.gz")), mask_name(Path("x.JPG")), mask_name(Path("y.tif"))
    ('case.nii.gz', 'x.png', 'y.tif')
    """
    parts = split_name(image.name, IMAGE_EXTENSIONS)
    ext = parts[1] if parts else ""
    if ext in (".jpg", ".jpeg", ".gif"):
        stem = parts[0] if parts else image.name
        return stem + ".png"
    return image.name


def write_mask(image_path: Path, labels: np.ndarray, out_dir: Path) -> Path:
    """Write ``labels`` ``(planes, rows, columns)`` as the mask of ``image_path`` in
    ``out_dir``, with the image's name and geometry (see the module docstring).

    Raises
    ------
    ValueError
        ``labels`` is not of the image's spatial shape (NIfTI) or not 2D/one plane
        (rasters).
    """
    out = Path(out_dir) / mask_name(image_path)
    labels = np.asarray(labels)
    if labels.max(initial=0) > 255 or labels.min(initial=0) < 0:
        raise ValueError("labels must be 0–255")
    if is_nifti(image_path):
        _write_nifti_like(image_path, labels.astype(np.uint8), out)
        return out
    if labels.ndim == 3:
        if labels.shape[0] != 1:
            raise ValueError(f"a raster mask must have one plane, got {labels.shape}")
        labels = labels[0]
    values = np.unique(labels)
    plane = labels.astype(np.uint8)
    if values.max(initial=0) <= 1:
        plane = plane * np.uint8(255)
    if out.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(out, plane, compression="zlib")
    else:
        from medlabel.io.png import write_png

        out.write_bytes(write_png(plane))
    return out


def _write_nifti_like(image_path: Path, labels: np.ndarray, out: Path) -> None:
    """A NIfTI mask with the image's header: same affine, codes, voxel sizes and shape."""
    import nibabel as nib

    ref: Any = nib.load(str(image_path))
    shape = tuple(int(s) for s in ref.header.get_data_shape())
    data = np.moveaxis(labels, (0, 1, 2), (2, 1, 0))  # (plane, row, column) -> (i, j, k)
    if int(np.prod(shape)) != data.size:
        raise ValueError(f"mask has {data.shape} voxels, the image {shape}")
    data = data.reshape(shape, order="C") if data.shape != shape else data
    header = ref.header.copy()
    header.set_data_dtype(np.uint8)
    klass = type(ref) if isinstance(ref, nib.Nifti1Image | nib.Nifti2Image) else nib.Nifti1Image
    img = klass(np.ascontiguousarray(data), ref.affine, header)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = 0, float(labels.max(initial=0))
    nib.save(img, str(out))
