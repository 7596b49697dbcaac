"""Orientation of views, windowing and grid alignment."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.imaging.orientation import axis_codes, display_slice, native_view, view_axis
from medlabel.imaging.reorient import align_to_grid
from medlabel.imaging.volume import Volume
from medlabel.imaging.windowing import CT_PRESETS, Window, apply_window, auto_window


def _axial_stack() -> Volume:
    # plane -> +z (superior), row -> +y (posterior), column -> +x (patient left)
    arr = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    return Volume.from_spacing(arr, spacing=(2.0, 0.5, 0.5))


def test_axis_codes_and_native_view() -> None:
    v = _axial_stack()
    assert axis_codes(v.affine) == ("S", "P", "L")
    assert native_view(v.affine) == "axial"
    assert view_axis(v.affine, "coronal") == 1 and view_axis(v.affine, "sagittal") == 2


def test_axial_display_is_radiological() -> None:
    v = _axial_stack()
    img, labels = display_slice(v.array, v.affine, "axial", 1)
    assert np.array_equal(img, v.array[1])  # already posterior-down, left-right
    assert labels == {"top": "A", "bottom": "P", "left": "R", "right": "L"}


def test_coronal_and_sagittal_put_superior_up() -> None:
    v = _axial_stack()
    cor, labels = display_slice(v.array, v.affine, "coronal", 0)
    assert labels["top"] == "S" and cor.shape == (2, 4)
    assert np.array_equal(cor[0], v.array[1, 0])  # the superior plane is on top
    sag, labels = display_slice(v.array, v.affine, "sagittal", 3)
    assert labels == {"top": "S", "bottom": "I", "left": "A", "right": "P"}
    assert np.array_equal(sag, v.array[::-1, :, 3])


def test_flipped_axes_are_shown_the_same_way() -> None:
    v = _axial_stack()
    flip = v.affine.copy()
    flip[:3, 2] *= -1  # columns now run to the patient's right
    flip[:3, 3] = v.voxel_to_patient([[0, 0, 3]])[0]
    img, _ = display_slice(v.array[:, :, ::-1], flip, "axial", 0)
    ref, _ = display_slice(v.array, v.affine, "axial", 0)
    assert np.array_equal(img, ref)


def test_slice_out_of_range() -> None:
    v = _axial_stack()
    with pytest.raises(IndexError, match=r"outside 0\.\.1"):
        display_slice(v.array, v.affine, "axial", 2)


def test_windowing() -> None:
    hu = np.array([-1000, -600, 0, 40, 80, 3000])
    out = apply_window(hu, CT_PRESETS["brain"])
    assert (
        out.dtype == np.uint8 and out[0] == 0 and out[-1] == 255 and out[3] == 129
    )  # DICOM linear: ((40 - 39.5) / 79 + 0.5) * 255
    with pytest.raises(ValueError):
        Window(0, 0)
    w = auto_window(np.r_[np.zeros(1000), np.linspace(0, 100, 1000)], low=0, high=100)
    assert w.center == 50 and w.width == 100


def test_align_to_grid_round_trip_and_refusals() -> None:
    v = _axial_stack()
    rng = np.random.default_rng(1)
    mask = rng.integers(0, 3, v.spatial_shape).astype(np.uint8)
    # the same mask stored with axes permuted and flipped (another tool's orientation)
    perm = np.transpose(mask, (2, 1, 0))[::-1]
    aff = np.eye(4)
    aff[:3, 0] = -v.affine[:3, 2]
    aff[:3, 1] = v.affine[:3, 1]
    aff[:3, 2] = v.affine[:3, 0]
    aff[:3, 3] = v.voxel_to_patient([[0, 0, 3]])[0]
    assert np.array_equal(align_to_grid(perm, aff, v.spatial_shape, v.affine), mask)
    shifted = aff.copy()
    shifted[0, 3] += 1.0
    with pytest.raises(ValueError, match="shifted"):
        align_to_grid(perm, shifted, v.spatial_shape, v.affine)
    with pytest.raises(ValueError, match="resample"):
        align_to_grid(mask, np.diag([3.0, 3.0, 3.0, 1.0]), v.spatial_shape, v.affine)


def test_volume_validation() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        Volume(np.zeros((3, 3)), np.eye(4))
    with pytest.raises(ValueError, match="singular"):
        Volume(np.zeros((1, 3, 3)), np.diag([1.0, 0.0, 1.0, 1.0]))
    v = _axial_stack()
    p = v.voxel_to_patient([[1, 2, 3]])
    assert np.allclose(v.patient_to_voxel(p), [[1, 2, 3]])
