"""Prediction, reference and optional region-of-interest files paired by name.

A file's *stem* is its name without the extension (``.nii.gz`` counts as one extension;
see :func:`medlabel.quality.pairs.split_name`). Files pair when their stems are equal
after an optional fixed suffix is removed from each side, so extensions may differ
(``case1.png`` + ``case1.nii.gz``) and observer tags can be dropped (CHASE_DB1:
``Image_01L_2ndHO.png`` with ``pred_suffix="_2ndHO"`` pairs with ``Image_01L_1stHO.png``
with ``ref_suffix="_1stHO"``). Nothing else is guessed: ``case_1`` never pairs with
``case_01``. A CSV listing the pairs explicitly is the way out for other naming schemes
(:func:`pairs_from_csv`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.quality.pairs import MASK_EXTENSIONS, split_name

__all__ = ["FilePair", "Pairing", "pair_files", "pairs_from_csv"]


@dataclass(frozen=True)
class FilePair:
    """The files of one case: prediction, reference and (optionally) its region of interest."""

    name: str
    pred: Path
    ref: Path
    roi: Path | None = None


@dataclass(frozen=True)
class Pairing:
    """Pairs sorted by name, and the files left without a partner (by file name).

    ``missing_roi`` names the cases (paired prediction and reference) that have no file
    in the ROI folder; they are not in ``pairs``.
    """

    pairs: tuple[FilePair, ...]
    unmatched_pred: tuple[str, ...] = ()
    unmatched_ref: tuple[str, ...] = ()
    unmatched_roi: tuple[str, ...] = ()
    missing_roi: tuple[str, ...] = ()


def _by_stem(folder: Path, suffix: str, what: str) -> tuple[dict[str, Path], list[str]]:
    """``{stem without suffix: path}`` of the mask files of ``folder``, and the names of
    mask files whose stem lacks ``suffix``."""
    if not folder.is_dir():
        raise NotFoundError(f"{what} folder {folder} does not exist or is not a folder")
    found: dict[str, Path] = {}
    lacking: list[str] = []
    for path in sorted(folder.iterdir()):
        parts = split_name(path.name, MASK_EXTENSIONS)
        if parts is None or path.name.startswith(".") or not path.is_file():
            continue
        stem = parts[0]
        if suffix:
            if not stem.endswith(suffix) or stem == suffix:
                lacking.append(path.name)
                continue
            stem = stem[: -len(suffix)]
        if stem in found:
            raise InvalidInputError(
                f"{what} folder {folder} has two files for case {stem!r}: "
                f"{found[stem].name} and {path.name}; keep one"
            )
        found[stem] = path
    return found, lacking


def pair_files(
    pred_dir: Path,
    ref_dir: Path,
    roi_dir: Path | None = None,
    *,
    pred_suffix: str = "",
    ref_suffix: str = "",
    roi_suffix: str = "",
) -> Pairing:
    """Pair the mask files of ``pred_dir`` and ``ref_dir`` (and ``roi_dir``) by stem.

    Parameters
    ----------
    pred_dir, ref_dir
        Folders of predictions and references (not searched recursively). Files other
        than PNG, JPEG, GIF, TIFF and NIfTI, and hidden files, are ignored.
    roi_dir
        Optional folder of region-of-interest masks (e.g. a field of view).
    pred_suffix, ref_suffix, roi_suffix
        Removed from the end of each side's stems before matching; a file whose stem
        does not end with its side's suffix is reported as unmatched.

    Returns
    -------
    Pairing
        The pairs by name, and the unmatched file names of each side.

    Raises
    ------
    NotFoundError
        A folder does not exist.
    InvalidInputError
        Two files of a folder name the same case, or nothing pairs.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("o2/a_2nd.png", "o2/b_2nd.png", "o1/a_1st.png", "o1/c_1st.gif"):
    ...     (root / name).parent.mkdir(exist_ok=True); (root / name).touch()
    >>> p = pair_files(root / "o2", root / "o1", pred_suffix="_2nd", ref_suffix="_1st")
    >>> [(x.name, x.pred.name, x.ref.name) for x in p.pairs]
    [('a', 'a_2nd.png', 'a_1st.png')]
    >>> p.unmatched_pred, p.unmatched_ref
    (('b_2nd.png',), ('c_1st.gif',))
    >>> import shutil; shutil.rmtree(root)
    """
    preds, pred_lacking = _by_stem(Path(pred_dir), pred_suffix, "prediction")
    refs, ref_lacking = _by_stem(Path(ref_dir), ref_suffix, "reference")
    names = sorted(preds.keys() & refs.keys())
    if not names:
        raise InvalidInputError(
            _no_pairs_message(preds, refs, pred_lacking, ref_lacking, pred_dir, ref_dir)
        )
    rois: dict[str, Path] = {}
    roi_lacking: list[str] = []
    if roi_dir is not None:
        rois, roi_lacking = _by_stem(Path(roi_dir), roi_suffix, "ROI")
    pairs = []
    missing_roi = []
    for n in names:
        roi = rois.get(n)
        if roi_dir is not None and roi is None:
            missing_roi.append(n)
            continue
        pairs.append(FilePair(n, preds[n], refs[n], roi))
    if not pairs:
        raise InvalidInputError(
            f"no case has a region-of-interest mask in {roi_dir} (cases like {names[0]!r}; "
            "name ROI files like the cases, or give --roi-suffix)"
        )
    return Pairing(
        pairs=tuple(pairs),
        unmatched_pred=tuple(
            sorted([preds[s].name for s in preds.keys() - refs.keys()]) + pred_lacking
        ),
        unmatched_ref=tuple(
            sorted([refs[s].name for s in refs.keys() - preds.keys()]) + ref_lacking
        ),
        unmatched_roi=tuple(sorted([rois[s].name for s in rois.keys() - set(names)]) + roi_lacking),
        missing_roi=tuple(missing_roi),
    )


def _no_pairs_message(
    preds: dict[str, Path],
    refs: dict[str, Path],
    pred_lacking: list[str],
    ref_lacking: list[str],
    pred_dir: Path,
    ref_dir: Path,
) -> str:
    kinds = "PNG, JPEG, GIF, TIFF or NIfTI"
    if not preds:
        extra = f" ending with the suffix ({len(pred_lacking)} others)" if pred_lacking else ""
        return f"no {kinds} masks{extra} in the prediction folder {pred_dir}"
    if not refs:
        extra = f" ending with the suffix ({len(ref_lacking)} others)" if ref_lacking else ""
        return f"no {kinds} masks{extra} in the reference folder {ref_dir}"
    msg = f"no prediction in {pred_dir} has a reference of the same name in {ref_dir}"
    p, r = sorted(preds)[0], sorted(refs)[0]
    common = 0
    while common < min(len(p), len(r)) and p[common] == r[common]:
        common += 1
    while common and not (_suffix_starts(p, common) and _suffix_starts(r, common)):
        common -= 1  # suffixes start at a separator: "_2ndHO", not "2ndHO"
    if common:
        hints = [f"{o} {s[common:]!r}" for o, s in (("--pred-suffix", p), ("--ref-suffix", r))]
        hint = " and ".join(h for h, s in zip(hints, (p, r), strict=True) if s[common:])
        return f"{msg} (e.g. {p!r} and {r!r}: give {hint}, or list the pairs with --pairs)"
    return f"{msg} (e.g. prediction {p!r}, reference {r!r}; list the pairs with --pairs)"


def _suffix_starts(stem: str, i: int) -> bool:
    return i == len(stem) or stem[i] in "_-. "


def pairs_from_csv(path: Path) -> Pairing:
    """Pairs listed in a CSV file with a header row and the columns ``pred`` and ``ref``
    (and optionally ``roi`` and ``name``).

    Relative paths are resolved against the CSV's folder; ``name`` defaults to the stem
    of the reference file.

    Raises
    ------
    NotFoundError
        The CSV or a file it lists does not exist.
    InvalidInputError
        Missing columns, empty cells, or two rows with the same name.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("p.png", "r.nii.gz"):
    ...     (root / name).touch()
    >>> _ = (root / "pairs.csv").write_text("pred,ref\\np.png,r.nii.gz\\n")
    >>> [(x.name, x.pred.name) for x in pairs_from_csv(root / "pairs.csv").pairs]
    [('r', 'p.png')]
    >>> import shutil; shutil.rmtree(root)
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise NotFoundError(f"pairs file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read the pairs file {path} ({exc})") from None
    reader = csv.DictReader(text.splitlines())
    columns = {c.strip().lower() for c in reader.fieldnames or []}
    if not {"pred", "ref"} <= columns:
        raise InvalidInputError(
            f"{path.name}: needs a header row with the columns pred and ref "
            f"(and optionally roi, name); found {sorted(columns)}"
        )
    pairs: dict[str, FilePair] = {}
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not row["pred"] or not row["ref"]:
            raise InvalidInputError(f"{path.name} line {line}: pred and ref must not be empty")
        files = {}
        for key in ("pred", "ref", "roi"):
            if row.get(key):
                f = Path(row[key])
                f = f if f.is_absolute() else path.parent / f
                if not f.is_file():
                    raise NotFoundError(f"{path.name} line {line}: {key} file {f} does not exist")
                files[key] = f
        stem = split_name(files["ref"].name)
        name = row.get("name") or (stem[0] if stem else files["ref"].stem)
        if name in pairs:
            raise InvalidInputError(f"{path.name} line {line}: case {name!r} is listed twice")
        pairs[name] = FilePair(name, files["pred"], files["ref"], files.get("roi"))
    if not pairs:
        raise InvalidInputError(f"{path.name}: lists no pairs")
    return Pairing(pairs=tuple(pairs[n] for n in sorted(pairs)))
