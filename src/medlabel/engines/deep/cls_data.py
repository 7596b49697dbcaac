"""Labelled images for classification and detection: label tables (CSV/JSON) matched to a
folder of images, and the fixed-size network input of an image.

A classification table has one row per image: an image column (``image``, ``file``,
``filename``, ``name``, ``path``, ``id``; case-insensitive) and a class column (``label``,
``class``, ``category``, ``target``, ``tag``). A row names its image by file name
(``a.png``) or by stem (``a``). Class names are kept as written; integer-looking
classes sort numerically, others alphabetically, and become indices 0..K−1.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.engines.deep.model_dir import InputSpec, TaskKind
from medlabel.engines.deep.tasks import Example, FolderSource, Reporter, TrainingSet
from medlabel.imaging.volume import Volume

#: accepted header names (lower case) of the image and class columns
IMAGE_COLUMNS = ("image", "file", "filename", "file_name", "name", "path", "id", "image_id")
CLASS_COLUMNS = ("label", "class", "category", "target", "tag", "class_name")
#: how many unknown names an error message lists
_SHOWN = 5


def image_index(folder: Path) -> dict[str, Path]:
    """Images of ``folder`` by file name and by stem (both lower-case keys)."""
    from medlabel.engines.deep.datasets import list_images
    from medlabel.quality.pairs import IMAGE_EXTENSIONS, split_name

    out: dict[str, Path] = {}
    for path in list_images(folder):
        out[path.name.lower()] = path
        parts = split_name(path.name, IMAGE_EXTENSIONS)
        if parts:
            out.setdefault(parts[0].lower(), path)
    return out


def resolve(index: dict[str, Path], name: str) -> Path | None:
    """The image a table row names (file name, stem, or a path ending in either)."""
    key = Path(name.strip()).name.lower()
    return index.get(key)


def _column(header: list[str], accepted: Sequence[str], what: str, path: Path) -> int:
    low = [h.strip().lower() for h in header]
    for name in accepted:
        if name in low:
            return low.index(name)
    raise InvalidInputError(
        f"{path.name}: no {what} column in the header {header}; name it one of "
        f"{', '.join(accepted)}"
    )


def read_class_table(path: Path) -> list[tuple[str, str]]:
    """``(image name, class)`` rows of a CSV (comma, semicolon or tab separated).

    Raises
    ------
    NotFoundError
        No such file.
    InvalidInputError
        No recognisable header, empty cells, an image listed twice, or no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"label file {path} does not exist")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0] if text else ",", delimiters=",;\t")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    rows = [
        r for r in csv.reader(text.splitlines(), delimiter=delimiter) if any(c.strip() for c in r)
    ]
    if len(rows) < 2:
        raise InvalidInputError(f"{path.name}: expected a header and at least one row")
    header = rows[0]
    i_img = _column(header, IMAGE_COLUMNS, "image", path)
    i_cls = _column(header, CLASS_COLUMNS, "class", path)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for line, row in enumerate(rows[1:], start=2):
        if len(row) <= max(i_img, i_cls) or not row[i_img].strip() or not row[i_cls].strip():
            raise InvalidInputError(f"{path.name}, line {line}: image or class is empty")
        name = row[i_img].strip()
        if name.lower() in seen:
            raise InvalidInputError(f"{path.name}, line {line}: {name!r} is listed twice")
        seen.add(name.lower())
        out.append((name, row[i_cls].strip()))
    return out


def class_order(values: Sequence[str]) -> list[str]:
    """Distinct class names: numerically when all are integers, else alphabetically.

    Examples
    --------
    >>> class_order(["10", "2", "2"]), class_order(["b", "a"])
    (['2', '10'], ['a', 'b'])
    """
    distinct = set(values)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def classification_set(source: FolderSource, reporter: Reporter | None = None) -> TrainingSet:
    """A classification training set from a folder of images and a label CSV.

    Images of the folder that the table does not name are skipped (and counted in a log
    line); table rows naming no image of the folder are an error.

    Raises
    ------
    InvalidInputError
        No ``labels`` file, rows naming unknown images, fewer than two classes,
        unreadable or 3D images.
    """
    from medlabel.engines.deep.datasets import read_image

    if source.labels is None:
        raise InvalidInputError("classification needs a label table (--labels FILE.csv)")
    rows = read_class_table(source.labels)
    index = image_index(source.images)
    unknown = [name for name, _ in rows if resolve(index, name) is None]
    if unknown:
        more = f" and {len(unknown) - _SHOWN} more" if len(unknown) > _SHOWN else ""
        raise InvalidInputError(
            f"{len(unknown)} row(s) of {source.labels.name} name no image in "
            f"{source.images}: {', '.join(map(repr, unknown[:_SHOWN]))}{more}"
        )
    classes = class_order([c for _, c in rows])
    if len(classes) < 2:
        raise InvalidInputError(f"classification needs at least two classes, got {classes}")
    code = {c: i for i, c in enumerate(classes)}
    examples: list[Example] = []
    for i, (name, cls) in enumerate(rows):
        path = resolve(index, name)
        assert path is not None
        image = read_image(path, modality=source.modality)
        check_2d(image, path.name)
        stem = path.name.rsplit(".", 2 if path.name.lower().endswith(".nii.gz") else 1)[0]
        examples.append(Example(stem, image, code[cls]))
        if reporter is not None:
            reporter.progress(i + 1, len(rows), "reading images")
            reporter.check_cancelled()
    used = {resolve(index, n) for n, _ in rows}
    skipped = len(set(index.values()) - used)
    if skipped and reporter is not None:
        reporter.log(f"{skipped} image(s) of the folder have no label and were skipped")
    return TrainingSet(TaskKind.CLS, examples, dict(enumerate(classes)), source=str(source.images))


def check_2d(image: Volume, name: str) -> None:
    """Refuse 3D volumes (classification and detection take 2D images)."""
    if not image.is_2d:
        raise InvalidInputError(
            f"{name}: a 3D image ({image.spatial_shape}); classification and detection take "
            "2D images"
        )


def plane_of(image: Volume | np.ndarray) -> np.ndarray:
    """The ``(rows, columns[, 3])`` pixels of a 2D image (Volume or bare array)."""
    if isinstance(image, Volume):
        check_2d(image, "image")
        arr = np.asarray(image.array[0])
    else:
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[0] == 1 and arr.shape[2] not in (3, 4):
            arr = arr[0]
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise InvalidInputError(f"a 2D image must be (rows, columns[, 3]), got {arr.shape}")
    return arr


def raw_input(plane: np.ndarray, channels: int, size: Sequence[int]) -> np.ndarray:
    """``(channels, rows, columns)`` float32 of ``plane`` resized to ``size`` (bilinear,
    anti-aliased), before normalisation; colour becomes grey for 1 channel and grey is
    repeated for 3."""
    from skimage.transform import resize

    x = np.asarray(plane, dtype=np.float32)
    if x.ndim == 3 and channels == 1:
        x = x.mean(axis=2)
    if tuple(x.shape[:2]) != tuple(size):
        x = resize(x, tuple(size), order=1, anti_aliasing=True, preserve_range=True)
    x = x.astype(np.float32)
    x = x[np.newaxis] if x.ndim == 2 else np.moveaxis(x, 2, 0)
    if x.shape[0] != channels:
        x = np.repeat(x[:1], channels, axis=0)
    return np.ascontiguousarray(x)


def network_input(image: Volume | np.ndarray, spec: InputSpec) -> np.ndarray:
    """The normalised ``(channels, rows, columns)`` input of a whole-image model."""
    raw = raw_input(plane_of(image), spec.channels, spec.patch_size)
    return spec.normalisation.apply(raw, channel_axis=0)
