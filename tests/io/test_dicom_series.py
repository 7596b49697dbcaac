"""build_images: geometry of stacks, ordering, splitting and rejection, on real pixel data."""

from __future__ import annotations

import copy
import random

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from medlabel.core.errors import TooLargeError
from medlabel.io.dicom import (
    DicomImage,
    build_images,
    decode_frames,
    group_by_series,
    read_dataset,
    series_info,
)
from medlabel.io.dicom import series as series_module
from tests.io.conftest import (
    OBLIQUE_COL,
    OBLIQUE_ROW,
    SeriesFactory,
    data_path,
    read_folder,
    read_testdata,
    to_bytes,
)

LIMIT = 10**8


def source_geometry(ds: Dataset, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """IPP, row direction, column direction and PixelSpacing of one frame, read directly."""
    if "PerFrameFunctionalGroupsSequence" in ds:
        per = ds.PerFrameFunctionalGroupsSequence[frame]
        shared = ds.SharedFunctionalGroupsSequence[0]

        def pick(seq: str) -> Dataset:
            return (per.get(seq) or shared.get(seq))[0]

        ipp = pick("PlanePositionSequence").ImagePositionPatient
        iop = pick("PlaneOrientationSequence").ImageOrientationPatient
        spacing = pick("PixelMeasuresSequence").PixelSpacing
    else:
        ipp, iop, spacing = ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing
    iop = np.asarray(iop, dtype=float)
    return np.asarray(ipp, dtype=float), iop[:3], iop[3:], [float(v) for v in spacing]


def assert_geometry_matches_sources(image: DicomImage, datasets: dict[str, Dataset]) -> None:
    """voxel (k, r, c) == IPP_k + r * PixelSpacing[0] * col_dir + c * PixelSpacing[1] * row_dir."""
    rows, columns = image.volume.spatial_shape[1:]
    for k, (key, frame) in enumerate(image.planes):
        ipp, row_dir, col_dir, spacing = source_geometry(datasets[key], frame)
        for r, c in [(0, 0), (rows - 1, 0), (0, columns - 1), (rows - 1, columns - 1), (3, 5)]:
            expected = ipp + r * spacing[0] * col_dir + c * spacing[1] * row_dir
            got = image.volume.voxel_to_patient([[k, r, c]])[0]
            np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=f"plane {k} ({r},{c})")


def only_image(items: list[tuple[str, Dataset]]) -> DicomImage:
    build = build_images(items, max_voxels=LIMIT)
    assert build.rejected == []
    assert len(build.images) == 1
    assert build.images[0].part == ""
    return build.images[0]


def normal_of(row: np.ndarray, col: np.ndarray) -> np.ndarray:
    return np.cross(np.asarray(row, float), np.asarray(col, float))


# --------------------------------------------------------------------------- edge cases first
def test_missing_slice_is_rejected_with_the_gap(make_series: SeriesFactory) -> None:
    items = make_series([(0, 0, z) for z in (0.0, 2.5, 5.0, 10.0, 12.5)])
    build = build_images(items, max_voxels=LIMIT)
    assert build.images == []
    [rejection] = build.rejected
    assert sorted(rejection.keys) == [k for k, _ in items]
    assert "slice spacing varies from 2.5 to 5 mm" in rejection.reason
    assert "slice002.dcm" in rejection.reason and "slice003.dcm" in rejection.reason


def test_real_series_with_missing_slices_is_rejected() -> None:
    build = build_images(read_folder("77654033/CT2"), max_voxels=LIMIT)
    assert build.images == []
    assert "slice spacing varies" in build.rejected[0].reason


def test_positions_off_a_straight_line_are_rejected(make_series: SeriesFactory) -> None:
    positions = [(0.0, 0.0, 2.5 * i) for i in range(5)]
    positions[2] = (3.0, 0.0, 5.0)  # shifted in-plane by 3 mm
    build = build_images(make_series(positions), max_voxels=LIMIT)
    assert build.images == []
    assert "straight line" in build.rejected[0].reason


def test_duplicate_positions_that_cannot_be_told_apart_are_rejected(
    make_series: SeriesFactory,
) -> None:
    items = make_series([(0, 0, z) for z in (0.0, 2.5, 2.5, 5.0)])
    build = build_images(items, max_voxels=LIMIT)
    assert build.images == []
    [rejection] = build.rejected
    assert "share slice positions" in rejection.reason
    assert "echo" in rejection.reason


def test_too_large_is_refused_before_decoding(
    make_series: SeriesFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = make_series([(0, 0, 2.0 * i) for i in range(3)])

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded before the size check")

    monkeypatch.setattr(series_module, "decode_frames", forbidden)
    with pytest.raises(TooLargeError, match="12,288 voxels"):
        build_images(items, max_voxels=3 * 64 * 64 - 1)


def test_non_images_and_repeated_instances_are_rejected(make_series: SeriesFactory) -> None:
    items = make_series([(0, 0, 0.0), (0, 0, 3.0)])
    seg = read_testdata("liver.dcm")
    seg.SeriesInstanceUID = items[0][1].SeriesInstanceUID
    repeated = ("copy.dcm", copy.deepcopy(items[0][1]))
    build = build_images([*items, ("seg.dcm", seg), repeated], max_voxels=LIMIT)
    assert len(build.images) == 1 and build.images[0].volume.spatial_shape == (2, 64, 64)
    reasons = {r.keys[0]: r.reason for r in build.rejected}
    assert "Segmentation Storage, not an image" in reasons["seg.dcm"]
    assert "repeats the instance slice000.dcm" in reasons["copy.dcm"]


def test_items_of_several_series_are_refused(make_series: SeriesFactory) -> None:
    a = make_series([(0, 0, 0.0)])
    b = make_series([(0, 0, 0.0)])
    with pytest.raises(ValueError, match="one series"):
        build_images([*a, ("other.dcm", b[0][1])], max_voxels=LIMIT)


# --------------------------------------------------------------------------- geometry
def test_oblique_stack_geometry_matches_every_source_instance(make_series: SeriesFactory) -> None:
    normal = normal_of(OBLIQUE_ROW, OBLIQUE_COL)
    origin = np.array([-40.0, 12.5, 80.0])
    positions = [origin + 2.5 * i * normal for i in range(6)]
    items = make_series(positions, row=OBLIQUE_ROW, col=OBLIQUE_COL, spacing=(0.5, 0.8))
    image = only_image(items)
    assert image.volume.geometry_known
    np.testing.assert_allclose(image.volume.spacing, (2.5, 0.5, 0.8), atol=1e-6)
    assert_geometry_matches_sources(image, dict(items))
    # the plane axis points along the normal: increasing plane index moves along it
    np.testing.assert_allclose(image.volume.direction[:, 0], normal, atol=1e-6)


def test_stack_is_sorted_by_position_not_instance_number(make_series: SeriesFactory) -> None:
    zs = [10.0, 0.0, 7.5, 2.5, 5.0]
    items = make_series([(0, 0, z) for z in zs], instance_numbers=[1, 2, 3, 4, 5])
    image = only_image(items)
    datasets = dict(items)
    planes_z = [float(datasets[k].ImagePositionPatient[2]) for k, _ in image.planes]
    assert planes_z == sorted(zs)
    assert image.instance_keys == [k for k, _ in image.planes]
    for k, (key, _) in enumerate(image.planes):  # each plane holds its instance's pixels
        np.testing.assert_array_equal(image.volume.array[k], decode_frames(datasets[key])[0])
    assert_geometry_matches_sources(image, datasets)


def test_input_order_does_not_change_the_result(make_series: SeriesFactory) -> None:
    items = make_series([(1.0, -2.0, 3.0 * i) for i in range(7)], row=OBLIQUE_ROW, col=OBLIQUE_COL)
    reference = only_image(items)
    rng = random.Random(7)
    for _ in range(4):
        shuffled = items[:]
        rng.shuffle(shuffled)
        image = only_image(shuffled)
        assert image.planes == reference.planes
        np.testing.assert_array_equal(image.volume.affine, reference.volume.affine)
        np.testing.assert_array_equal(image.volume.array, reference.volume.array)


def test_reversed_acquisition_order_gives_the_same_volume(make_series: SeriesFactory) -> None:
    zs = [2.0 * i for i in range(5)]
    forward = make_series([(0, 0, z) for z in zs])
    backward = make_series([(0, 0, z) for z in reversed(zs)])  # instance 1 is the top slice
    a, b = only_image(forward), only_image(backward)
    np.testing.assert_allclose(a.volume.affine, b.volume.affine)
    assert [k for k, _ in b.planes] == [f"slice{i:03d}.dcm" for i in (4, 3, 2, 1, 0)]
    assert_geometry_matches_sources(b, dict(backward))


def test_real_series_acquired_head_to_feet() -> None:
    items = read_folder("98892001/CT5N")
    image = only_image(items)
    datasets = dict(items)
    assert [int(datasets[k].InstanceNumber) for k, _ in image.planes] == [10, 9, 8, 7, 6]
    np.testing.assert_allclose(image.volume.spacing, (2.5, 0.488281, 0.488281), atol=1e-6)
    assert_geometry_matches_sources(image, datasets)
    assert image.volume.metadata["number_of_instances"] == 5
    assert image.volume.modality == "CT"


def test_gantry_tilt_gives_a_sheared_affine_with_a_warning(make_series: SeriesFactory) -> None:
    # each slice moves 2.5 mm along the normal and 0.6 mm along the column direction
    positions = [(0.0, 0.6 * i, 2.5 * i) for i in range(5)]
    items = make_series(positions)
    image = only_image(items)
    assert any("sheared" in w and "gantry tilt" in w for w in image.warnings)
    assert_geometry_matches_sources(image, dict(items))


def test_single_slice_uses_spacing_between_slices() -> None:
    image = only_image([("ct.dcm", read_testdata("CT_small.dcm"))])
    assert image.volume.spatial_shape == (1, 128, 128)
    assert image.volume.geometry_known
    assert image.volume.spacing[0] == pytest.approx(5.0)
    assert image.volume.metadata["units"] == "HU"


# --------------------------------------------------------------------------- splitting
def test_duplicate_positions_are_split_by_echo(make_series: SeriesFactory) -> None:
    zs = [0.0, 3.0, 6.0, 9.0]
    extra = [{"EchoNumbers": echo} for echo in (1, 2) for _ in zs]
    items = make_series([(0, 0, z) for _ in (1, 2) for z in zs], extra=extra)
    build = build_images(items, max_voxels=LIMIT)
    assert build.rejected == []
    assert [img.part for img in build.images] == ["echo 1", "echo 2"]
    datasets = dict(items)
    for img, echo in zip(build.images, (1, 2), strict=True):
        assert img.volume.spatial_shape == (4, 64, 64)
        assert {int(datasets[k].EchoNumbers) for k in img.instance_keys} == {echo}
        assert_geometry_matches_sources(img, datasets)


def test_duplicate_positions_are_split_by_two_attributes(make_series: SeriesFactory) -> None:
    zs = [0.0, 3.0, 6.0]
    combos = [(echo, time) for echo in (1, 2) for time in (1, 2)]
    extra = [{"EchoNumbers": e, "TemporalPositionIdentifier": t} for e, t in combos for _ in zs]
    items = make_series([(0, 0, z) for _ in combos for z in zs], extra=extra)
    build = build_images(items, max_voxels=LIMIT)
    assert [img.part for img in build.images] == [
        "echo 1, time 1",
        "echo 1, time 2",
        "echo 2, time 1",
        "echo 2, time 2",
    ]


def test_mixed_orientations_are_split(make_series: SeriesFactory) -> None:
    axial = make_series([(0, 0, 4.0 * i) for i in range(3)], series_uid="1.2.3")
    sagittal = make_series(
        [(5.0 * i, 0, 0) for i in range(4)], row=(0, 1, 0), col=(0, 0, -1), series_uid="1.2.3"
    )
    sagittal = [(f"sag{i}.dcm", ds) for i, (_, ds) in enumerate(sagittal)]
    build = build_images(axial + sagittal, max_voxels=LIMIT)
    assert build.rejected == []
    assert [img.part for img in build.images] == ["orientation 1", "orientation 2"]
    shapes = sorted(img.volume.spatial_shape[0] for img in build.images)
    assert shapes == [3, 4]
    for img in build.images:
        assert_geometry_matches_sources(img, dict(axial + sagittal))


def test_real_localizer_series_is_split_by_orientation() -> None:
    groups = group_by_series(read_folder("98892003/MR2"))
    assert len(groups) == 3
    builds = [build_images(items, max_voxels=LIMIT) for items in groups.values()]
    parts = sorted(len(b.images) for b in builds)
    assert parts == [1, 3, 3]
    for items, build in zip(groups.values(), builds, strict=True):
        assert build.rejected == []
        for img in build.images:
            assert_geometry_matches_sources(img, dict(items))
        if len(build.images) == 3:
            assert [img.part for img in build.images] == [f"orientation {i}" for i in (1, 2, 3)]


def test_different_image_sizes_are_split_into_stacks(make_series: SeriesFactory) -> None:
    small = make_series([(0, 0, 0.0), (0, 0, 2.0)], series_uid="1.2.4")
    large = make_series([(0, 0, 0.0)], template="CT_small.dcm", series_uid="1.2.4")
    large = [("ct.dcm", large[0][1])]
    build = build_images(small + large, max_voxels=LIMIT)
    assert [img.part for img in build.images] == ["stack 1", "stack 2"]
    # ordered by lowest instance number (both 1), then key: "ct.dcm" < "slice000.dcm"
    assert [img.volume.spatial_shape for img in build.images] == [(1, 128, 128), (2, 64, 64)]


# --------------------------------------------------------------------------- multi-frame
def test_enhanced_ct_frames_are_stacked_by_position() -> None:
    ds = read_testdata("eCT_Supplemental.dcm")
    image = only_image([("ect.dcm", ds)])
    # IOP row direction is -x, so the normal is -z: frame 2 (z = -149) comes first
    assert image.planes == [("ect.dcm", 1), ("ect.dcm", 0)]
    assert image.instance_keys == ["ect.dcm"]
    assert image.volume.geometry_known
    np.testing.assert_allclose(image.volume.spacing, (10.0, 0.388672, 0.388672), atol=1e-6)
    assert_geometry_matches_sources(image, {"ect.dcm": ds})
    frames = decode_frames(ds)
    np.testing.assert_array_equal(image.volume.array, frames[[1, 0]])
    assert image.volume.metadata["window_center"] == 49.0


def test_enhanced_with_a_single_frame() -> None:
    ds = copy.deepcopy(pydicom.dcmread(data_path("eCT_Supplemental.dcm")))
    ds.NumberOfFrames = 1
    ds.PerFrameFunctionalGroupsSequence = ds.PerFrameFunctionalGroupsSequence[:1]
    ds.PixelData = ds.PixelData[: 512 * 512 * 2]
    one = read_dataset(to_bytes(ds), name="one.dcm")
    image = only_image([("one.dcm", one)])
    assert image.planes == [("one.dcm", 0)]
    assert image.volume.spatial_shape == (1, 512, 512)
    assert_geometry_matches_sources(image, {"one.dcm": one})


def test_multiframe_without_positions_is_a_frame_stack() -> None:
    ds = read_testdata("emri_small.dcm")
    assert "PerFrameFunctionalGroupsSequence" not in ds  # stripped: no frame positions
    image = only_image([("emri.dcm", ds)])
    assert image.volume.spatial_shape == (10, 64, 64)
    assert image.planes == [("emri.dcm", i) for i in range(10)]
    assert not image.volume.geometry_known
    assert image.volume.spacing == pytest.approx((1.2, 1.0, 1.0))  # SpacingBetweenSlices


def test_ultrasound_cine_is_a_colour_frame_stack() -> None:
    image = only_image([("cine.dcm", read_testdata("examples_ybr_color.dcm"))])
    assert image.volume.array.shape == (30, 240, 320, 3)
    assert not image.volume.geometry_known
    assert image.volume.metadata["frame_time_ms"] == pytest.approx(33.333)


# --------------------------------------------------------------------------- 2D images
def test_series_of_radiographs_gives_one_image_each() -> None:
    base = read_dataset(
        data_path("CT_small.dcm").parent / "dicomdirtests/77654033/CR1/6154", name="cr"
    )
    items = []
    for i in range(3):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID, ds.InstanceNumber = generate_uid(), 3 - i
        items.append((f"cr{i}.dcm", ds))
    build = build_images(items, max_voxels=LIMIT)
    assert [img.part for img in build.images] == ["image 1", "image 2", "image 3"]
    assert [img.instance_keys for img in build.images] == [["cr2.dcm"], ["cr1.dcm"], ["cr0.dcm"]]
    volume = build.images[0].volume
    assert volume.spatial_shape == (1, 16, 16) and not volume.geometry_known
    assert volume.spacing[1:] == pytest.approx((0.1, 0.1))  # Imager Pixel Spacing
    assert any("ImagerPixelSpacing" in w for w in build.images[0].warnings)
    # Patient Orientation L\F: columns run to the patient's left, rows to the feet
    np.testing.assert_allclose(volume.direction[:, 2], [1, 0, 0], atol=1e-9)
    np.testing.assert_allclose(volume.direction[:, 1], [0, 0, -1], atol=1e-9)


def test_2d_image_with_spacing_and_orientation_has_known_geometry() -> None:
    ds = pydicom.dcmread(data_path("SC_rgb.dcm"))
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    image = only_image([("sc.dcm", read_dataset(to_bytes(ds), name="sc.dcm"))])
    assert image.volume.geometry_known
    assert image.volume.array.shape == (1, 100, 100, 3)


def test_2d_image_without_spacing_is_on_a_nominal_grid() -> None:
    image = only_image([("us.dcm", read_testdata("US1_J2KR.dcm"))])
    assert not image.volume.geometry_known
    assert image.volume.spacing == (1.0, 1.0, 1.0)
    assert image.volume.metadata["photometric_interpretation"] == "YBR_RCT"


# --------------------------------------------------------------------------- series info
def test_series_info_and_metadata_keep_identifiers_apart() -> None:
    ds = read_testdata("CT_small.dcm")
    info = series_info(ds)
    assert info.series_uid == ds.SeriesInstanceUID and info.study_uid == ds.StudyInstanceUID
    assert info.modality == "CT" and info.patient_id == ds.PatientID
    assert info.frame_of_reference_uid == ds.FrameOfReferenceUID
    metadata = only_image([("ct.dcm", ds)]).volume.metadata
    text = repr(metadata)
    for identifier in (
        ds.PatientID,
        str(ds.PatientName),
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
    ):
        assert identifier not in text
    assert set(metadata) >= {
        "window_center",
        "window_width",
        "photometric_interpretation",
        "inverted_monochrome1",
        "units",
        "bits_stored",
        "number_of_instances",
        "slice_thickness",
    }


def test_group_by_series_keeps_first_seen_order() -> None:
    items = read_folder("98892003/MR2")
    groups = group_by_series(items)
    assert sum(len(v) for v in groups.values()) == len(items)
    first_series = items[0][1].SeriesInstanceUID
    assert next(iter(groups))[1] == first_series


def test_enhanced_frames_at_one_position_are_split_by_stack_id() -> None:
    ds = copy.deepcopy(pydicom.dcmread(data_path("eCT_Supplemental.dcm")))
    frames = ds.PerFrameFunctionalGroupsSequence
    frames[1].PlanePositionSequence[0].ImagePositionPatient = list(
        frames[0].PlanePositionSequence[0].ImagePositionPatient
    )
    frames[1].FrameContentSequence[0].StackID = "2"
    stacked = read_dataset(to_bytes(ds), name="two.dcm")
    build = build_images([("two.dcm", stacked)], max_voxels=LIMIT)
    assert build.rejected == []
    assert [img.part for img in build.images] == ["stack 1", "stack 2"]
    assert [img.planes for img in build.images] == [[("two.dcm", 0)], [("two.dcm", 1)]]


def test_undecodable_instance_is_rejected_not_raised() -> None:
    # read without read_dataset's checks: the corrupt codestream surfaces while building
    ds = pydicom.dcmread(data_path("JPEG2000-embedded-sequence-delimiter.dcm"))
    build = build_images([("bad.dcm", ds)], max_voxels=LIMIT)
    assert build.images == []
    [rejection] = build.rejected
    assert rejection.keys == ["bad.dcm"]
    assert "bad.dcm" in rejection.reason and "could not be decoded" in rejection.reason
