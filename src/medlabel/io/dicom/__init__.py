"""DICOM reading and series → volume building.

Typical use by an importer::

    items = [(path, read_dataset(path, name=path)) for path in files]
    for (study_uid, series_uid), series in group_by_series(items).items():
        images = [(k, ds) for k, ds in series if is_image(ds)]
        build = build_images(images, max_voxels=limit)
        # build.images: DicomImage(volume, planes, instance_keys, part, warnings)
        # build.rejected: Rejection(keys, reason)
"""

from medlabel.io.dicom.frames import FramePlane, frame_planes
from medlabel.io.dicom.kinds import SopKind, describe_sop_class, has_pixels, is_image, sop_kind
from medlabel.io.dicom.metadata import image_metadata
from medlabel.io.dicom.pixels import apply_rescale, decode_frames, rescale_parameters
from medlabel.io.dicom.reading import check_dataset, number_of_frames, read_dataset
from medlabel.io.dicom.results import DicomImage, Rejection, SeriesBuild, SeriesInfo
from medlabel.io.dicom.series import build_images, group_by_series, series_info

__all__ = [
    "DicomImage",
    "FramePlane",
    "Rejection",
    "SeriesBuild",
    "SeriesInfo",
    "SopKind",
    "apply_rescale",
    "build_images",
    "check_dataset",
    "decode_frames",
    "describe_sop_class",
    "frame_planes",
    "group_by_series",
    "has_pixels",
    "image_metadata",
    "is_image",
    "number_of_frames",
    "read_dataset",
    "rescale_parameters",
    "series_info",
    "sop_kind",
]
