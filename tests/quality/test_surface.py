"""Surface distances: edge cases first, then a brute-force check of the fast search, then
cross-checks against MONAI and SimpleITK on real masks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from medlabel.quality.surface import (
    SurfaceDistances,
    _stencil,
    assd,
    hausdorff,
    hd95,
    mask_surface,
    surface_dice,
    surface_distances,
    surface_metrics,
)
from tests.quality.real_masks import MNI_SPACING, coins_pair, mni_wm_pair

# --- input validation ------------------------------------------------------------------------


def test_shape_mismatch_names_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(4, 5\) and \(5, 4\)"):
        hausdorff(np.zeros((4, 5)), np.zeros((5, 4)))


@pytest.mark.parametrize("shape", [(5,), (2, 2, 2, 2)])
def test_only_2d_and_3d(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="2D or 3D"):
        surface_distances(np.zeros(shape), np.zeros(shape))


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, math.nan, 1.0), -1.0])
def test_bad_spacing(spacing: object) -> None:
    with pytest.raises(ValueError, match="spacing"):
        surface_distances(np.ones((2, 2, 2)), np.ones((2, 2, 2)), spacing)  # type: ignore[arg-type]


def test_bad_percentile_tolerance_and_roi() -> None:
    a = np.ones((3, 3))
    with pytest.raises(ValueError, match="percentile"):
        hausdorff(a, a, percentile=101)
    with pytest.raises(ValueError, match="tolerance"):
        surface_dice(a, a, tolerance_mm=-1)
    with pytest.raises(ValueError, match=r"roi \(2, 2\) and masks \(3, 3\)"):
        assd(a, a, roi=np.ones((2, 2)))


# --- empty masks -----------------------------------------------------------------------------


def test_both_empty_agree() -> None:
    z = np.zeros((4, 5, 6), bool)
    m = surface_metrics(z, z, (2.0, 1.0, 1.0))
    assert (m.hd, m.hd95, m.assd, m.nsd) == (0.0, 0.0, 0.0, 1.0)
    assert surface_distances(z, z).both_empty


def test_one_empty_is_infinitely_far() -> None:
    z = np.zeros((4, 5, 6), bool)
    a = z.copy()
    a[1:3, 1:3, 1:3] = True
    for x, y in ((a, z), (z, a)):
        m = surface_metrics(x, y)
        assert (m.hd, m.hd95, m.assd, m.nsd) == (math.inf, math.inf, math.inf, 0.0)
    d = surface_distances(a, z)
    assert d.a_to_b.size == 8 and np.all(np.isinf(d.a_to_b)) and d.b_to_a.size == 0


# --- small cases worked by hand --------------------------------------------------------------


def test_one_voxel_each_anisotropic() -> None:
    a = np.zeros((4, 4, 5), bool)
    b = np.zeros_like(a)
    a[0, 0, 0] = True
    b[2, 1, 3] = True
    spacing = (2.5, 0.7, 1.1)
    expected = math.sqrt((2 * 2.5) ** 2 + 0.7**2 + (3 * 1.1) ** 2)
    m = surface_metrics(a, b, spacing, tolerance_mm=expected + 1e-9)
    assert m.hd == m.hd95 == pytest.approx(expected, abs=1e-12)
    assert m.assd == pytest.approx(expected, abs=1e-12)
    assert m.nsd == 1.0
    assert surface_dice(a, b, expected - 1e-9, spacing) == 0.0


def test_identical_masks_are_zero_apart() -> None:
    pred, _ = coins_pair()
    m = surface_metrics(pred, pred, (0.5, 0.3), tolerance_mm=0.0)
    assert (m.hd, m.hd95, m.assd, m.nsd) == (0.0, 0.0, 0.0, 1.0)


def test_shifted_box_anisotropic_by_hand() -> None:
    # a 4x4x4 cube (planes 2-5) and the same cube shifted by one plane (3-6), planes
    # 3 mm apart. Each surface has 64 - 8 = 56 voxels. From a to b: a's bottom cap
    # (plane 2, 16 voxels) is 3 mm below b's bottom cap; the 4 centre voxels of a's top
    # cap (plane 5) lie inside b, 1 mm from b's side walls; every other voxel of a's
    # surface is on b's side walls (0 mm). b to a is the mirror image.
    a = np.zeros((8, 8, 8), bool)
    a[2:6, 2:6, 2:6] = True
    b = np.roll(a, 1, axis=0)
    sp = (3.0, 1.0, 1.0)
    d = surface_distances(a, b, spacing=sp)
    for directed in (d.a_to_b, d.b_to_a):
        assert directed.size == 56
        assert np.count_nonzero(directed == 3.0) == 16
        assert np.count_nonzero(directed == 1.0) == 4
        assert np.count_nonzero(directed == 0.0) == 36
    assert hausdorff(a, b, sp) == 3.0
    assert hd95(a, b, sp) == 3.0
    assert assd(a, b, sp) == pytest.approx((16 * 3 + 4) / 56)
    assert surface_dice(a, b, 1.0, sp) == 40 / 56


def test_hd95_is_the_larger_directed_percentile() -> None:
    a = np.zeros((40, 40), bool)
    a[5:35, 5:35] = True
    b = a.copy()
    b[0, 0] = True  # one stray voxel, far away
    d = surface_distances(a, b)
    assert hausdorff(a, b) == pytest.approx(math.hypot(5, 5))
    assert hd95(a, b) == max(np.percentile(d.a_to_b, 95), np.percentile(d.b_to_a, 95)) == 0.0
    assert hausdorff(a, b, percentile=100.0) == d.hausdorff()


def test_surface_is_the_face_connected_border() -> None:
    rng = np.random.default_rng(1)
    masks = [rng.random((9, 10, 11)) > 0.4, rng.random((12, 13)) > 0.5, np.ones((3, 4, 5))]
    for m in masks:
        m = m.astype(bool)
        expected = m & ~ndimage.binary_erosion(m)  # SciPy's cross structure, border outside
        assert np.array_equal(mask_surface(m), expected)


# --- the fast nearest-surface search against brute force -------------------------------------


def _brute_force(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> SurfaceDistances:
    pa = np.argwhere(mask_surface(a)) * np.asarray(spacing)
    pb = np.argwhere(mask_surface(b)) * np.asarray(spacing)
    if len(pa) == 0 or len(pb) == 0:
        return SurfaceDistances(np.full(len(pa), np.inf), np.full(len(pb), np.inf))
    d = cdist(pa, pb)
    return SurfaceDistances(d.min(axis=1), d.min(axis=0))


@pytest.mark.parametrize(
    ("shape", "spacing"),
    [
        ((20, 24, 22), (1.0, 1.0, 1.0)),
        ((12, 30, 30), (5.0, 0.5, 0.5)),  # thick slices
        ((30, 25, 20), (0.7, 1.3, 2.2)),
        ((60, 70), (0.3, 1.7)),
    ],
)
def test_distances_equal_brute_force(shape: tuple[int, ...], spacing: tuple[float, ...]) -> None:
    rng = np.random.default_rng(len(shape) * 100 + shape[0])
    smooth_a = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    smooth_b = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    a = smooth_a > 0.05
    b = (smooth_a + 0.6 * smooth_b) > 0.1
    corner = tuple(slice(0, n // 2) for n in shape)
    a[corner] = False
    b[corner] = False
    b[(0,) * len(shape)] = True  # a stray voxel in an emptied corner: far from a
    got = surface_distances(a, b, spacing)
    want = _brute_force(a, b, spacing)
    # some distances go past the offset search, to the k-d tree
    assert max(got.a_to_b.max(), got.b_to_a.max()) > _stencil(spacing)[2]
    np.testing.assert_allclose(got.a_to_b, want.a_to_b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.b_to_a, want.b_to_a, rtol=0, atol=1e-12)


def test_far_apart_objects_use_the_exact_fallback() -> None:
    a = np.zeros((10, 200, 200), bool)
    b = np.zeros_like(a)
    a[2:5, 10:20, 10:20] = True
    b[6:8, 150:190, 120:130] = True
    got = surface_distances(a, b, (2.0, 0.5, 0.5))
    want = _brute_force(a, b, (2.0, 0.5, 0.5))
    np.testing.assert_allclose(got.a_to_b, want.a_to_b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.b_to_a, want.b_to_a, rtol=0, atol=1e-12)


def test_objects_touching_the_array_border() -> None:
    a = np.ones((6, 7, 8), bool)
    b = np.zeros_like(a)
    b[:, :4] = True
    got = surface_distances(a, b, (1.5, 1.0, 0.5))
    want = _brute_force(a, b, (1.5, 1.0, 0.5))
    np.testing.assert_allclose(got.a_to_b, want.a_to_b, atol=1e-12)
    np.testing.assert_allclose(got.b_to_a, want.b_to_a, atol=1e-12)


def test_roi_keeps_surface_voxels_inside_it() -> None:
    pred, ref = coins_pair()
    roi = np.zeros_like(ref)
    roi[:, :200] = True
    got = surface_distances(pred, ref, (0.5, 0.3), roi=roi)
    pa = np.argwhere(mask_surface(pred) & roi) * [0.5, 0.3]
    pb = np.argwhere(mask_surface(ref) & roi) * [0.5, 0.3]
    d = cdist(pa, pb)
    np.testing.assert_allclose(got.a_to_b, d.min(axis=1), atol=1e-12)
    np.testing.assert_allclose(got.b_to_a, d.min(axis=0), atol=1e-12)


def test_functions_agree_with_one_pass() -> None:
    pred, ref = coins_pair()
    sp = (0.5, 0.3)
    m = surface_metrics(pred, ref, sp, tolerance_mm=1.5)
    assert m.hd == hausdorff(pred, ref, sp)
    assert m.hd95 == hd95(pred, ref, sp)
    assert m.assd == assd(pred, ref, sp)
    assert m.nsd == surface_dice(pred, ref, 1.5, sp)
    assert hausdorff(pred, ref, sp) == hausdorff(ref, pred, sp)  # symmetric


def test_isotropic_number_spacing() -> None:
    pred, ref = coins_pair()
    assert hausdorff(pred, ref, 0.5) == hausdorff(pred, ref, (0.5, 0.5))
    assert hausdorff(pred, ref) == hausdorff(pred, ref, (1.0, 1.0))


# --- cross-checks on real masks --------------------------------------------------------------

CASES = {
    "mni-wm-3d": (mni_wm_pair, MNI_SPACING),
    "coins-2d": (coins_pair, (0.5, 0.3)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_against_monai(case: str) -> None:
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    pair, spacing = CASES[case]
    pred, ref = pair()
    p, r = torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None]
    d = surface_distances(pred, ref, spacing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's deprecation warnings
        hd = compute_hausdorff_distance(p, r, spacing=spacing).item()
        hd95_ = compute_hausdorff_distance(p, r, percentile=95, spacing=spacing).item()
        assd_ = compute_average_surface_distance(p, r, symmetric=True, spacing=spacing).item()
        nsd = [compute_surface_dice(p, r, [t], spacing=spacing).item() for t in (1.0, 2.5)]
    # MONAI returns float32: equal to float32 precision
    assert d.hausdorff() == pytest.approx(hd, rel=1e-6)
    assert d.hausdorff(95) == pytest.approx(hd95_, rel=1e-6)
    assert d.assd() == pytest.approx(assd_, rel=1e-6)
    assert d.surface_dice(1.0) == pytest.approx(nsd[0], rel=1e-6)
    assert d.surface_dice(2.5) == pytest.approx(nsd[1], rel=1e-6)
    assert 0.0 < nsd[0] < nsd[1] < 1.0  # the case is not trivial


def test_against_monai_one_empty_mask() -> None:
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    _, ref = mni_wm_pair()
    p = torch.zeros((1, 1, *ref.shape))
    r = torch.from_numpy(ref)[None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert compute_hausdorff_distance(p, r, spacing=MNI_SPACING).item() == math.inf
        assert compute_surface_dice(p, r, [1.0], spacing=MNI_SPACING).item() == 0.0
    assert hausdorff(p[0, 0].numpy(), ref, MNI_SPACING) == math.inf
    assert surface_dice(p[0, 0].numpy(), ref, 1.0, MNI_SPACING) == 0.0


def test_against_simpleitk_hausdorff() -> None:
    """SimpleITK measures between all voxels of the masks, not their surfaces: the
    definitions agree when the farthest voxel lies on a surface, as on this pair."""
    import SimpleITK as sitk  # noqa: N813 - the name SimpleITK documents

    pred, ref = mni_wm_pair()
    images = []
    for m in (pred, ref):
        img = sitk.GetImageFromArray(m.astype(np.uint8))
        img.SetSpacing(tuple(reversed(MNI_SPACING)))  # SimpleITK orders axes x, y, z
        images.append(img)
    f = sitk.HausdorffDistanceImageFilter()
    f.Execute(*images)
    assert hausdorff(pred, ref, MNI_SPACING) == pytest.approx(f.GetHausdorffDistance(), abs=1e-9)
