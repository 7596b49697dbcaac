"""DICOM SEG export/import, checked with pydicom and highdicom as independent readers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medlabel.annotation.enums import LabelKind
from medlabel.core.errors import InvalidInputError, UnsupportedFormatError
from medlabel.imaging.volume import Volume
from medlabel.io.exportitem import ExportItem, LabelInfo
from medlabel.io.seg import read_dicom_seg, seg_to_labelmap, write_dicom_seg
from tests.io.export_fixtures import LABELS, ct_item, enhanced_ct_item, us_item

BY_NAME = {lab.name: lab for lab in LABELS}


def _frame_source(frame: pydicom.Dataset, shared: pydicom.Dataset) -> tuple[str, int]:
    holder = frame if "DerivationImageSequence" in frame else shared
    src = holder.DerivationImageSequence[0].SourceImageSequence[0]
    return str(src.ReferencedSOPInstanceUID), int(src.get("ReferencedFrameNumber", 1)) - 1


def _segment_number(frame: pydicom.Dataset, shared: pydicom.Dataset) -> int:
    holder = frame if "SegmentIdentificationSequence" in frame else shared
    return int(holder.SegmentIdentificationSequence[0].ReferencedSegmentNumber)


def _check_frames_with_pydicom(path: Path, item: ExportItem) -> pydicom.Dataset:
    """Every stored frame holds exactly mask == value on the plane its source maps to."""
    ds = pydicom.dcmread(path)
    shared = ds.SharedFunctionalGroupsSequence[0]
    labels = {int(s.SegmentNumber): str(s.SegmentLabel) for s in ds.SegmentSequence}
    sources = item.source_datasets or []
    plane_of = {
        (str(sources[i].SOPInstanceUID), f): p for p, (i, f) in enumerate(item.planes or [])
    }
    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    seen = set()
    assert item.mask is not None
    for frame, px in zip(ds.PerFrameFunctionalGroupsSequence, pixels, strict=True):
        plane = plane_of[_frame_source(frame, shared)]
        value = BY_NAME[labels[_segment_number(frame, shared)]].value
        np.testing.assert_array_equal(px.astype(bool), item.mask[plane] == value)
        seen.add((plane, value))
    expected = {
        (p, int(v)) for p in range(item.mask.shape[0]) for v in np.unique(item.mask[p]) if v
    }
    assert seen == expected  # one frame per non-empty (plane, segment), no empty frames
    return ds


# edge cases -------------------------------------------------------------------------------
def test_refuses_an_image_without_dicom_source() -> None:
    item = dataclasses.replace(ct_item(), source_datasets=None, planes=None)
    with pytest.raises(InvalidInputError, match="not imported from DICOM"):
        write_dicom_seg(item, LABELS, Path("never.dcm"))


def test_refuses_empty_or_missing_mask(tmp_path: Path) -> None:
    item = ct_item()
    with pytest.raises(InvalidInputError, match="mask is empty"):
        write_dicom_seg(
            dataclasses.replace(item, mask=np.zeros_like(item.mask)), LABELS, tmp_path / "a.dcm"
        )
    with pytest.raises(InvalidInputError, match="has no mask"):
        write_dicom_seg(dataclasses.replace(item, mask=None), LABELS, tmp_path / "a.dcm")
    assert not (tmp_path / "a.dcm").exists()


def test_refuses_mask_values_without_a_label(tmp_path: Path) -> None:
    item = ct_item()
    assert item.mask is not None
    mask = item.mask.copy()
    mask[2, 0, 0] = 42
    with pytest.raises(InvalidInputError, match=r"\[42\] belong to no mask label"):
        write_dicom_seg(dataclasses.replace(item, mask=mask), LABELS, tmp_path / "a.dcm")


def test_refuses_plane_mappings_that_do_not_fit(tmp_path: Path) -> None:
    item = ct_item()
    with pytest.raises(InvalidInputError, match="same source frame"):
        write_dicom_seg(
            dataclasses.replace(item, planes=[(0, 0), (0, 0), (1, 0)]), LABELS, tmp_path / "a"
        )
    with pytest.raises(InvalidInputError, match="frame 1 of an instance with 1 frame"):
        write_dicom_seg(
            dataclasses.replace(item, planes=[(0, 0), (1, 1), (2, 0)]), LABELS, tmp_path / "a"
        )
    small = Volume(item.volume.array[:, :64, :64], item.volume.affine, modality="CT")
    shrunk = dataclasses.replace(item, volume=small, mask=item.mask[:, :64, :64])  # type: ignore[index]
    with pytest.raises(InvalidInputError, match="128x128 pixels but the mask is 64x64"):
        write_dicom_seg(shrunk, LABELS, tmp_path / "a.dcm")


def test_read_refuses_non_seg_and_garbage() -> None:
    with pytest.raises(UnsupportedFormatError, match="not a DICOM Segmentation"):
        read_dicom_seg(Path(get_testdata_file("CT_small.dcm") or ""))
    with pytest.raises(InvalidInputError, match="not a readable DICOM"):
        read_dicom_seg(b"this is not DICOM at all", name="upload.dcm")


def test_labelmap_refuses_unknown_segments_and_foreign_frames(tmp_path: Path) -> None:
    item = ct_item()
    seg = read_dicom_seg(write_dicom_seg(item, LABELS, tmp_path / "seg.dcm"))
    planes = [(str(d.SOPInstanceUID), 0) for d in item.source_datasets or []]
    with pytest.raises(InvalidInputError, match="'tumour'"):
        seg_to_labelmap(seg, planes, item.volume.spatial_shape, {"liver": 1})
    with pytest.raises(InvalidInputError, match="not part of this image"):
        seg_to_labelmap(
            seg, [("1.2.3", 0)] * 3, item.volume.spatial_shape, {"liver": 1, "tumour": 7}
        )
    with pytest.raises(InvalidInputError, match="128x128"):
        seg_to_labelmap(seg, planes, (3, 64, 64), {"liver": 1, "tumour": 7})


# single-frame series ----------------------------------------------------------------------
def test_ct_series_round_trip_checked_with_pydicom(tmp_path: Path) -> None:
    item = ct_item()
    sources = item.source_datasets or []
    path = write_dicom_seg(item, LABELS, tmp_path / "seg.dcm")
    ds = _check_frames_with_pydicom(path, item)
    assert ds.SOPClassUID == pydicom.uid.SegmentationStorage and ds.Modality == "SEG"
    assert ds.SegmentationType == "BINARY"
    assert ds.StudyInstanceUID == sources[0].StudyInstanceUID
    assert ds.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert ds.SeriesInstanceUID != sources[0].SeriesInstanceUID
    (ref,) = ds.ReferencedSeriesSequence
    assert ref.SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in ref.ReferencedInstanceSequence} == {
        d.SOPInstanceUID for d in sources
    }
    # only labels present in the mask, numbered in ascending mask value, codes from schema
    liver, tumour = ds.SegmentSequence
    assert (liver.SegmentNumber, liver.SegmentLabel, tumour.SegmentLabel) == (1, "liver", "tumour")
    assert liver.SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert liver.SegmentedPropertyCategoryCodeSequence[0].CodeMeaning == "Anatomical Structure"
    assert tumour.SegmentedPropertyTypeCodeSequence[0].CodeValue == "85756007"  # generic Tissue
    assert liver.SegmentAlgorithmType == "MANUAL"
    rgb = hd.color.CIELabColor.from_dicom_value(liver.RecommendedDisplayCIELabValue).to_rgb()
    assert "#{:02x}{:02x}{:02x}".format(*rgb) == "#a05030"
    # each frame sits at its source slice's position
    shared = ds.SharedFunctionalGroupsSequence[0]
    for frame in ds.PerFrameFunctionalGroupsSequence:
        uid, _ = _frame_source(frame, shared)
        src = next(d for d in sources if d.SOPInstanceUID == uid)
        got = frame.PlanePositionSequence[0].ImagePositionPatient
        np.testing.assert_allclose(
            [float(v) for v in got], [float(v) for v in src.ImagePositionPatient]
        )
    assert "annotation 5 revision 9" in ds.ContentDescription


def test_ct_series_round_trip_checked_with_highdicom(tmp_path: Path) -> None:
    item = ct_item()
    path = write_dicom_seg(item, LABELS, tmp_path / "seg.dcm")
    seg = hd.seg.segread(path)
    uids = [str(d.SOPInstanceUID) for d in item.source_datasets or []]
    combined = seg.get_pixels_by_source_instance(uids, combine_segments=True)
    assert item.mask is not None
    expected = np.select([item.mask == 1, item.mask == 7], [1, 2], 0)
    np.testing.assert_array_equal(combined, expected)


def test_ct_series_reimport_onto_the_image(tmp_path: Path) -> None:
    item = ct_item()
    assert item.mask is not None
    seg = read_dicom_seg((write_dicom_seg(item, LABELS, tmp_path / "seg.dcm")).read_bytes())
    assert [s.label for s in seg.segments] == ["liver", "tumour"]
    assert seg.segments[0].property_type == ("10200004", "SCT", "Liver")
    assert seg.segments[1].color == "#ffff00"
    sources = item.source_datasets or []
    assert seg.referenced_series_uids == (sources[0].SeriesInstanceUID,)
    assert len(seg.frames) == 2  # the third slice is empty
    # the same series stored in the opposite plane order
    planes = [(str(d.SOPInstanceUID), 0) for d in sources][::-1]
    values = {"liver": 1, "tumour": 7}
    out = seg_to_labelmap(seg, planes, item.volume.spatial_shape, values)
    np.testing.assert_array_equal(out, item.mask[::-1])
    assert out.dtype == np.uint16


def test_unicode_labels_and_engine_source(tmp_path: Path) -> None:
    item = dataclasses.replace(ct_item(), source="engine:sam-med@2.1", author="José^Ñ")
    labels = [dataclasses.replace(BY_NAME["liver"], name="Leber (ü)"), BY_NAME["tumour"]]
    ds = pydicom.dcmread(write_dicom_seg(item, labels, tmp_path / "seg.dcm"))
    seg = ds.SegmentSequence[0]
    assert seg.SegmentLabel == "Leber (ü)"
    assert seg.SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert seg.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "sam-med"
    assert seg.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == "2.1"
    assert read_dicom_seg(tmp_path / "seg.dcm").segments[0].label == "Leber (ü)"


# multi-frame and 2D sources ----------------------------------------------------------------
def test_enhanced_multiframe_source_references_frames(tmp_path: Path) -> None:
    item = enhanced_ct_item()  # plane 0 = frame 1 (0-based), plane 1 = frame 0
    assert item.mask is not None
    path = write_dicom_seg(item, LABELS, tmp_path / "seg.dcm")
    ds = _check_frames_with_pydicom(path, item)
    assert {s.SegmentLabel for s in ds.SegmentSequence} == {"liver", "vessel"}
    assert ds.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    seg = hd.seg.segread(path)
    uid = str((item.source_datasets or [])[0].SOPInstanceUID)
    by_frame = seg.get_pixels_by_source_frame(uid, [1, 2], combine_segments=True)
    np.testing.assert_array_equal(by_frame[0] > 0, item.mask[1] > 0)  # source frame 1 = plane 1
    np.testing.assert_array_equal(by_frame[1] > 0, item.mask[0] > 0)
    imported = read_dicom_seg(path)
    assert set(imported.frames) == {(uid, 0), (uid, 1)}
    out = seg_to_labelmap(
        imported, [(uid, 1), (uid, 0)], item.volume.spatial_shape, {"liver": 1, "vessel": 3}
    )
    np.testing.assert_array_equal(out, item.mask)


def test_2d_rgb_ultrasound_without_frame_of_reference(tmp_path: Path) -> None:
    item = us_item()
    assert item.mask is not None
    path = write_dicom_seg(item, LABELS, tmp_path / "seg.dcm")
    _check_frames_with_pydicom(path, item)
    imported = read_dicom_seg(path)
    uid = str((item.source_datasets or [])[0].SOPInstanceUID)
    out = seg_to_labelmap(
        imported, [(uid, 0)], item.volume.spatial_shape, {"liver": 1, "tumour": 7}
    )
    np.testing.assert_array_equal(out, item.mask)


def test_volume_not_from_dicom_files_named_in_message() -> None:
    vol = Volume.from_spacing(np.zeros((1, 8, 8), np.uint8))
    item = ExportItem(1, "photo.png", vol, mask=np.ones((1, 8, 8), np.uint8))
    labels = [LabelInfo("x", LabelKind.MASK, 1)]
    with pytest.raises(InvalidInputError, match=r"'photo.png' was not imported from DICOM"):
        write_dicom_seg(item, labels, Path("never.dcm"))


# a real SEG from another tool ---------------------------------------------------------------
def test_reads_the_real_liver_seg_from_pydicom_data() -> None:
    path = Path(get_testdata_file("liver.dcm") or "")
    seg = read_dicom_seg(path)
    ds = pydicom.dcmread(path)
    assert seg.segmentation_type == "BINARY"
    (segment,) = seg.segments
    assert (segment.number, segment.label) == (1, "Liver")
    assert segment.property_type == ("T-62000", "SRT", "Liver")
    assert segment.algorithm_type == "SEMIAUTOMATIC"
    assert seg.referenced_series_uids == (ds.ReferencedSeriesSequence[0].SeriesInstanceUID,)
    assert len(seg.referenced_instance_uids) == 3
    # independent decoding: pydicom's frames placed by each frame's source instance
    shared = ds.SharedFunctionalGroupsSequence[0]
    for frame, px in zip(ds.PerFrameFunctionalGroupsSequence, ds.pixel_array, strict=True):
        key = _frame_source(frame, shared)
        np.testing.assert_array_equal(seg.frames[key], px.astype(np.uint16))
    planes = [(uid, 0) for uid in seg.referenced_instance_uids]
    out = seg_to_labelmap(seg, planes, (3, 512, 512), {"Liver": 5})
    assert set(np.unique(out)) == {0, 5}
    assert int((out == 5).sum()) == int(ds.pixel_array.sum())


@pytest.mark.parametrize("seg_type", ["BINARY", "FRACTIONAL", "LABELMAP"])
def test_reads_segs_written_by_highdicom_directly(tmp_path: Path, seg_type: str) -> None:
    """Our reader on SEGs of every type that highdicom itself writes (no medlabel writer)."""
    item = ct_item()
    assert item.mask is not None
    numbers = np.select([item.mask == 1, item.mask == 7], [1, 2], 0).astype(np.uint8)
    pixels: np.ndarray = numbers
    if seg_type == "FRACTIONAL":  # one probability channel per segment
        pixels = np.stack([(numbers == 1) * 0.9, (numbers == 2) * 0.8], axis=-1).astype(np.float32)
        pixels[0, 0, 0, 1] = 0.3  # below 0.5: not part of the segment
    tissue = hd.sr.CodedConcept("85756007", "SCT", "Tissue")
    descriptions = [
        hd.seg.SegmentDescription(n, name, tissue, tissue, "MANUAL")
        for n, name in ((1, "liver"), (2, "tumour"))
    ]
    seg = hd.seg.Segmentation(
        list(item.source_datasets or []),
        pixels,
        seg_type,
        descriptions,
        hd.UID(),
        1,
        hd.UID(),
        1,
        "test",
        "test",
        "1",
        "1",
    )
    seg.save_as(tmp_path / "seg.dcm")
    imported = read_dicom_seg(tmp_path / "seg.dcm")
    assert imported.segmentation_type == seg_type
    planes = [(str(d.SOPInstanceUID), 0) for d in item.source_datasets or []]
    out = seg_to_labelmap(imported, planes, item.volume.spatial_shape, {"liver": 1, "tumour": 7})
    np.testing.assert_array_equal(out, item.mask)


def test_refuses_sources_without_plane_mapping(tmp_path: Path) -> None:
    item = dataclasses.replace(ct_item(), planes=None)
    with pytest.raises(InvalidInputError, match="no plane mapping"):
        write_dicom_seg(item, LABELS, tmp_path / "a.dcm")
