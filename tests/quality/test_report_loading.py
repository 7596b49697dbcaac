"""Reading mask files for evaluation: how pixel values become labels and scores, and
where the spacing comes from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlabel.core.errors import InvalidInputError
from medlabel.quality.report import Case, FilePair, PredKind, load_case, read_mask_file
from tests.quality.report_fixtures import (
    coins_masks,
    head_mask,
    save_png,
    shift_k,
    write_nifti,
)


def test_case_validates_its_arrays() -> None:
    a = np.zeros((4, 5), np.uint8)
    with pytest.raises(InvalidInputError, match=r"prediction shape \[4, 5\] differs .* \[5, 4\]"):
        Case("x", a, np.zeros((5, 4), np.uint8))
    with pytest.raises(InvalidInputError, match="integer labels; got float32"):
        Case("x", a.astype(np.float32), a)
    with pytest.raises(InvalidInputError, match="negative labels"):
        Case("x", a.astype(np.int8) - 1, a)
    with pytest.raises(InvalidInputError, match="spacing must be 2 positive numbers"):
        Case("x", a, a, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(InvalidInputError, match="region-of-interest shape"):
        Case("x", a, a, roi=np.ones((2, 2)))
    with pytest.raises(InvalidInputError, match="needs a name"):
        Case("", a, a)
    one_plane = Case("x", a[None], a[None], spacing=(5.0, 0.5, 0.25)).squeezed()
    assert one_plane.shape == (4, 5) and one_plane.spacing == (0.5, 0.25)


def test_binary_png_0_255_is_label_1(tmp_path: Path) -> None:
    ref, _, _ = coins_masks()
    f = read_mask_file(save_png(tmp_path / "m.png", ref))
    assert f.kind() == "binary" and f.volume is None
    labels = f.labels()
    assert labels.shape == (1, *ref.shape) and set(np.unique(labels)) == {0, 1}
    assert np.array_equal(labels[0], ref)


def test_small_integer_png_is_a_label_map(tmp_path: Path) -> None:
    lm = np.zeros((20, 30), np.uint8)
    lm[2:8, 2:8], lm[10:15, 10:25] = 1, 3
    f = read_mask_file(save_png(tmp_path / "lm.png", lm))
    assert f.kind() == "labels" and np.array_equal(f.labels()[0], lm)


def test_jpeg_is_binarised_at_half_scale(tmp_path: Path) -> None:
    ref, _, _ = coins_masks()
    path = tmp_path / "m.jpg"
    Image.fromarray((ref * 255).astype(np.uint8)).save(path, quality=75)
    f = read_mask_file(path)
    assert f.kind() == "jpeg" and np.unique(f.array).size > 2  # compression noise
    agreement = np.mean(f.labels()[0] == ref)
    assert agreement > 0.995


def test_rgb_mask_any_channel_above_half(tmp_path: Path) -> None:
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[0, 0] = (200, 0, 0)  # red outline
    rgb[1, 1] = (0, 0, 130)
    rgb[2, 2] = (120, 120, 120)  # below half in every channel
    path = tmp_path / "c.png"
    Image.fromarray(rgb).save(path)
    labels = read_mask_file(path).labels()[0]
    assert labels[0, 0] == labels[1, 1] == 1 and labels[2, 2] == 0 and labels.sum() == 2


def test_gif_mask(tmp_path: Path) -> None:
    ref, _, _ = coins_masks()
    path = tmp_path / "m.gif"
    Image.fromarray((ref * 255).astype(np.uint8)).save(path)
    f = read_mask_file(path)
    assert f.format == "GIF" and np.array_equal(f.labels()[0], ref)
    (tmp_path / "bad.gif").write_bytes(b"GIF89a broken")
    with pytest.raises(InvalidInputError, match=r"bad.gif: not a readable GIF"):
        read_mask_file(tmp_path / "bad.gif")


def test_graded_prediction_gives_scores_and_thresholds(tmp_path: Path) -> None:
    ref, _, prob = coins_masks()
    pair = FilePair(
        "c", save_png(tmp_path / "p.png", prob), save_png(tmp_path / "r.png", ref), None
    )
    case = load_case(pair)
    assert case.pred_scores is not None
    np.testing.assert_allclose(case.pred_scores[0], prob / 255.0, atol=1e-6)
    assert np.array_equal(case.pred_labelmap[0], prob > 127)  # 0.5 × 255 = 127.5
    high = load_case(pair, threshold=0.8)
    assert np.array_equal(high.pred_labelmap[0], prob > 204)
    as_labels = load_case(pair, pred_kind=PredKind.LABELS)
    assert as_labels.pred_scores is None and as_labels.pred_labelmap.max() == prob.max()


def test_jpeg_prediction_can_be_read_as_scores(tmp_path: Path) -> None:
    ref, _, prob = coins_masks()
    path = tmp_path / "p.jpg"
    Image.fromarray(prob).save(path, quality=95)
    pair = FilePair("c", path, save_png(tmp_path / "r.png", ref))
    assert load_case(pair).pred_scores is None  # a JPEG mask: binarised
    assert load_case(pair, pred_kind="scores").pred_scores is not None


def test_nifti_spacing_and_labels(tmp_path: Path) -> None:
    mask = head_mask()
    ref = write_nifti(tmp_path / "r" / "h.nii.gz", mask * 2, (2.0, 2.0, 3.5))
    pred = write_nifti(tmp_path / "p" / "h.nii", shift_k(mask).astype(np.float32), (2, 2, 3.5))
    case = load_case(FilePair("h", pred, ref))
    # Volume order (plane, row, column) = NIfTI (k, j, i)
    assert case.spacing == (3.5, 2.0, 2.0)
    assert case.shape == mask.shape[::-1]
    assert set(np.unique(case.ref_labelmap)) == {0, 2}  # NIfTI labels are kept
    assert np.array_equal(case.pred_labelmap, shift_k(mask).transpose(2, 1, 0))
    # --spacing is for files without geometry only
    assert load_case(FilePair("h", pred, ref), spacing=(9.0,)).spacing == (3.5, 2.0, 2.0)


def test_raster_spacing_option(tmp_path: Path) -> None:
    ref, pred, _ = coins_masks()
    pair = FilePair("c", save_png(tmp_path / "p.png", pred), save_png(tmp_path / "r.png", ref))
    assert load_case(pair).spacing == (1.0, 1.0, 1.0)
    assert load_case(pair, spacing=(0.25,)).spacing == (1.0, 0.25, 0.25)
    assert load_case(pair, spacing=(0.5, 0.25)).spacing == (1.0, 0.5, 0.25)


def test_sizes_must_agree(tmp_path: Path) -> None:
    ref, pred, _ = coins_masks()
    pair = FilePair("c", save_png(tmp_path / "p.png", pred[:-1]), save_png(tmp_path / "r.png", ref))
    with pytest.raises(
        InvalidInputError,
        match=r"c: sizes differ: prediction p.png \[1, 302, 384\], reference r.png",
    ):
        load_case(pair)


def test_nifti_grids_must_agree(tmp_path: Path) -> None:
    mask = head_mask()
    ref = write_nifti(tmp_path / "r.nii.gz", mask, (2.0, 2.0, 2.0))
    pred = write_nifti(tmp_path / "p.nii.gz", mask, (2.0, 2.0, 3.0))
    with pytest.raises(InvalidInputError, match=r"not on the same grid.*resample"):
        load_case(FilePair("h", pred, ref))


def test_unreadable_file_names_itself(tmp_path: Path) -> None:
    ref, _, _ = coins_masks()
    (tmp_path / "p.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(InvalidInputError, match=r"p.png"):
        load_case(FilePair("c", tmp_path / "p.png", save_png(tmp_path / "r.png", ref)))


def test_scores_must_not_be_negative(tmp_path: Path) -> None:
    mask = head_mask()
    ref = write_nifti(tmp_path / "r.nii.gz", mask, (2.0, 2.0, 2.0))
    logits = write_nifti(tmp_path / "p.nii.gz", (mask - 0.5).astype(np.float32), (2, 2, 2))
    with pytest.raises(InvalidInputError, match="apply a sigmoid"):
        load_case(FilePair("h", logits, ref))
