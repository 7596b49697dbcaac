"""PACS connections against a real Orthanc: pull studies through de-identification,
recognise duplicates, run as a job, push DICOM SEG and SR back and re-read them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code as Code_
from sqlalchemy import select

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import Code, LabelSpec
from medlabel.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RemoteServiceError,
)
from medlabel.io.dicomweb import DicomwebClient, StudyQuery
from medlabel.jobs.state import JobState
from medlabel.security.roles import ProjectRole, Role
from medlabel.services import annotations as ann_svc
from medlabel.services import jobs as jobs_svc
from medlabel.services import pacs
from medlabel.services.access import Principal
from medlabel.services.context import Context
from medlabel.services.projects import add_labels, create_project, set_member
from medlabel.services.users import create_user, principal_of
from medlabel.storage.db.models import Image, Instance, Series, Study
from tests.support.orthanc import AUTH_PASSWORD, AUTH_USER, Orthanc
from tests.support.pacs_data import StudyFiles, ct_study, load
from tests.support.require import free_port

pytestmark = pytest.mark.services

LABELS = [
    LabelSpec(
        name="liver",
        kind=LabelKind.MASK,
        code=Code(value="10200004", scheme="SCT", meaning="Liver"),
    ),
    LabelSpec(name="tumour", kind=LabelKind.MASK),
    LabelSpec(name="nodule", kind=LabelKind.BOX),
    LabelSpec(name="apex", kind=LabelKind.POINT),
    LabelSpec(name="cirrhosis", kind=LabelKind.CLASSIFICATION),
]


@dataclass
class World:
    ctx: Context
    admin: Principal
    project_id: int
    connection_id: int
    studies: dict[str, StudyFiles]
    ct: StudyFiles


@pytest.fixture(scope="module")
def loaded(orthanc: Orthanc) -> dict[str, StudyFiles]:
    return load(orthanc)


@pytest.fixture
def world(ctx: Context, orthanc: Orthanc, loaded: dict[str, StudyFiles]) -> Iterator[World]:
    admin = principal_of(create_user(ctx, "root", "correct horse battery", Role.ADMIN))
    project = create_project(ctx, admin, "PACS")
    add_labels(ctx, admin, project.id, LABELS)
    conn = pacs.create_connection(
        ctx, admin, project.id, {"name": "orthanc", "url": orthanc.dicomweb_url}
    )
    yield World(ctx, admin, project.id, conn.id, loaded, ct_study(loaded))


def _all_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


# connections --------------------------------------------------------------------------------
def test_connections_crud_and_secret_never_shown(ctx: Context, world: World) -> None:
    spec = {
        "name": "secure",
        "url": "https://pacs.example/dicom-web/",
        "auth_kind": "basic",
        "username": "u",
        "secret": "hunter2",
    }
    view = pacs.create_connection(ctx, world.admin, world.project_id, spec)
    assert view.url == "https://pacs.example/dicom-web" and view.has_secret
    assert "hunter2" not in repr(view) and not hasattr(view, "secret")
    names = [c.name for c in pacs.list_connections(ctx, world.admin, world.project_id)]
    assert names == ["orthanc", "secure"]
    with pytest.raises(ConflictError):
        pacs.create_connection(ctx, world.admin, world.project_id, spec)
    for bad in (
        {"name": "x", "url": "pacs.example"},
        {"name": "x", "url": "http://p/dw", "auth_kind": "basic"},
        {"name": "x", "url": "http://p/dw", "auth_kind": "bearer"},
        {"name": "x", "url": "http://p/dw", "auth_kind": "none", "secret": "s"},
        {"name": "", "url": "http://p/dw"},
    ):
        with pytest.raises(InvalidInputError):
            pacs.create_connection(ctx, world.admin, world.project_id, bad)
    pacs.delete_connection(ctx, world.admin, view.id)
    with pytest.raises(NotFoundError):
        pacs.get_connection(ctx, world.admin, view.id)


def test_only_reviewers_manage_and_use_connections(ctx: Context, world: World) -> None:
    ann = principal_of(create_user(ctx, "ann", "correct horse battery", Role.ANNOTATOR))
    outsider = principal_of(create_user(ctx, "out", "correct horse battery", Role.REVIEWER))
    set_member(ctx, world.admin, world.project_id, ann.id, ProjectRole.ANNOTATOR)
    spec = {"name": "x", "url": "http://p/dw"}
    with pytest.raises(PermissionDeniedError):
        pacs.create_connection(ctx, ann, world.project_id, spec)
    with pytest.raises(PermissionDeniedError):
        pacs.search(ctx, ann, world.connection_id, StudyQuery())
    with pytest.raises(NotFoundError):  # not a member: the connection is invisible
        pacs.get_connection(ctx, outsider, world.connection_id)
    with pytest.raises(NotFoundError):
        pacs.pull(ctx, outsider, world.connection_id, [world.ct.study_uid])


# search and pull ----------------------------------------------------------------------------
def test_search_through_the_connection(ctx: Context, world: World) -> None:
    found = pacs.search(ctx, world.admin, world.connection_id, StudyQuery(accession="428"))
    assert {m.study_uid for m in found} & set(world.studies) == {
        uid for uid, s in world.studies.items() if s.accession == "428"
    }


def test_pull_imports_deidentified_series_and_recognises_duplicates(
    ctx: Context, world: World
) -> None:
    ct = world.ct
    result = pacs.pull(ctx, world.admin, world.connection_id, [ct.study_uid])
    assert result.studies == 1 and len(result.import_ids) == 1
    assert result.counts["instances"] == 7 and result.counts["duplicates"] == 0
    with ctx.db.read() as s:
        studies = list(s.scalars(select(Study).where(Study.project_id == world.project_id)))
        series = list(s.scalars(select(Series).where(Series.project_id == world.project_id)))
        images = list(s.scalars(select(Image).where(Image.project_id == world.project_id)))
        sops = set(s.scalars(select(Instance.sop_uid)))
    # one study, its two series: CT5N one 5-slice image, CT2N two single slices of
    # different orientations (split by the import, as for uploads)
    assert len(studies) == 1 and len(series) == 2 and len(images) == 3
    assert sorted(i.shape[0] for i in images) == [1, 1, 5]
    assert {se.study_id for se in series} == {studies[0].id}
    # de-identified: new UIDs, no original identifiers anywhere in the home folder
    assert studies[0].study_uid != ct.study_uid
    assert not sops & {str(pydicom.dcmread(p).SOPInstanceUID) for p in ct.files}
    stored = _all_bytes(ctx.settings.home)
    for original in (ct.patient_name.encode(), ct.patient_id.encode(), ct.study_uid.encode()):
        assert original not in stored
    assert not list((ctx.settings.home / "tmp").glob("pacs-pull-*"))  # downloads removed
    # again: every instance is a duplicate, nothing new is stored
    again = pacs.pull(ctx, world.admin, world.connection_id, [ct.study_uid])
    assert again.counts["duplicates"] == 7 and again.image_ids == []
    with ctx.db.read() as s:
        assert len(list(s.scalars(select(Image.id)))) == 3


def test_pull_job_reports_progress_and_result(ctx: Context, world: World) -> None:
    mr = [
        uid
        for uid, s in world.studies.items()
        if s.patient_id == "98890234" and "MR" in s.modalities
    ]
    view = jobs_svc.run_in_foreground(
        ctx,
        world.admin,
        "pacs_pull",
        {"connection_id": world.connection_id, "study_uids": mr},
        project_id=world.project_id,
    )
    job = view.job
    assert job.state == JobState.SUCCEEDED.value, job.error
    assert job.result["studies"] == 3 and job.result["counts"]["instances"] == 17
    assert job.progress_done == job.progress_total == 3


def test_cancelling_a_pull_mid_study_leaves_nothing_behind(ctx: Context, world: World) -> None:
    from medlabel.jobs.reporter import JobCancelled
    from tests.services.helpers import stored

    before = stored(ctx)
    stages: list[str] = []

    def progress(stage: str, done: int, total: int) -> None:
        stages.append(stage)
        if "importing" in stage:
            raise JobCancelled()

    with pytest.raises(JobCancelled):
        pacs.pull(ctx, world.admin, world.connection_id, [world.ct.study_uid], progress=progress)
    assert stored(ctx) == before  # no rows, no blobs
    assert not list((ctx.settings.home / "tmp").glob("pacs-pull-*"))
    assert stages and "importing" in stages[-1]


def test_pull_refuses_unknown_studies_before_queueing(ctx: Context, world: World) -> None:
    params = {"connection_id": world.connection_id, "study_uids": ["1.2.826.0.1.3680043.9.1"]}
    with pytest.raises(NotFoundError, match="has no study"):
        jobs_svc.submit_job(ctx, world.admin, "pacs_pull", params, project_id=world.project_id)
    with pytest.raises(InvalidInputError):
        jobs_svc.submit_job(
            ctx, world.admin, "pacs_pull", {"connection_id": world.connection_id,
            "study_uids": ["not a uid"]}, project_id=world.project_id,
        )  # fmt: skip
    with pytest.raises(NotFoundError, match="no such object"):
        pacs.pull(ctx, world.admin, world.connection_id, ["1.2.826.0.1.3680043.9.1"])


def test_unreachable_and_wrong_credentials(
    ctx: Context, world: World, orthanc_auth: Orthanc
) -> None:
    dead = pacs.create_connection(
        ctx,
        world.admin,
        world.project_id,
        {"name": "dead", "url": f"http://127.0.0.1:{free_port()}/dicom-web"},
    )
    with pytest.raises(RemoteServiceError, match="cannot reach"):
        pacs.check_connection(ctx, world.admin, dead.id)
    wrong = pacs.create_connection(
        ctx,
        world.admin,
        world.project_id,
        {"name": "wrong", "url": orthanc_auth.dicomweb_url, "auth_kind": "basic",
         "username": AUTH_USER, "secret": "nope"},
    )  # fmt: skip
    with pytest.raises(RemoteServiceError, match="refused the credentials"):
        pacs.search(ctx, world.admin, wrong.id, StudyQuery())
    right = pacs.create_connection(
        ctx,
        world.admin,
        world.project_id,
        {"name": "right", "url": orthanc_auth.dicomweb_url, "auth_kind": "basic",
         "username": AUTH_USER, "secret": AUTH_PASSWORD},
    )  # fmt: skip
    pacs.check_connection(ctx, world.admin, right.id)


# push ---------------------------------------------------------------------------------------
def _annotated(ctx: Context, world: World) -> tuple[int, Image, np.ndarray]:
    pacs.pull(ctx, world.admin, world.connection_id, [world.ct.study_uid])
    with ctx.db.read() as s:
        image = s.scalars(
            select(Image).where(Image.project_id == world.project_id).order_by(Image.id)
        ).all()
        image = next(i for i in image if i.shape[0] == 5)
    mask = np.zeros(image.shape, np.uint8)
    mask[1:4, 4:10, 3:12] = 1
    mask[2, 12:14, 12:15] = 2
    content = AnnotationContent.model_validate(
        {
            "boxes": [
                {"label": "nodule", "start": [1.5, 2.5, 3.5], "end": [2.5, 8.5, 11.5]},
                {"label": "nodule", "start": [0.5, 2.5, 3.5], "end": [3.5, 8.5, 11.5]},
            ],
            "points": [{"label": "apex", "position": [4, 5, 6]}],
            "classes": ["cirrhosis"],
        }
    )
    ann = ann_svc.save_annotation(ctx, world.admin, image.id, content=content, mask=mask)
    return ann.annotation.id, image, mask


def _fetch(orthanc: Orthanc, study_uid: str, sop_uid: str, tmp: Path) -> pydicom.Dataset:
    client = DicomwebClient(orthanc.dicomweb_url)
    found = client.search_instances(study_uid)
    assert sop_uid in {str(ds["00080018"]["Value"][0]) for ds in found}  # QIDO finds it
    files = client.retrieve(tmp, study_uid)
    by_uid = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in files}
    return pydicom.dcmread(by_uid[sop_uid])


def _source_uids(ctx: Context, image: Image) -> list[str]:
    with ctx.db.read() as s:
        return list(
            s.scalars(
                select(Instance.sop_uid)
                .where(Instance.image_id == image.id)
                .order_by(Instance.first_plane)
            )
        )


def test_push_seg(ctx: Context, world: World, orthanc: Orthanc, tmp_path: Path) -> None:
    ann_id, image, mask = _annotated(ctx, world)
    result = pacs.push(ctx, world.admin, ann_id, world.connection_id, "seg")
    ds = _fetch(orthanc, result.study_uid, result.sop_instance_uid, tmp_path)
    seg = hd.seg.Segmentation.from_dataset(ds)
    assert ds.Modality == "SEG"
    assert {d.SegmentLabel for d in ds.SegmentSequence} == {"liver", "tumour"}
    sources = _source_uids(ctx, image)
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    assert referenced and referenced <= set(sources)  # the de-identified instances
    with ctx.db.read() as s:
        study_uid = s.scalar(
            select(Study.study_uid).join(Series).where(Series.id == image.series_id)
        )
    assert result.study_uid == study_uid != world.ct.study_uid
    liver = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=sources[1:4], segment_numbers=[1], combine_segments=True
    )
    assert np.array_equal(liver[...,] > 0, mask[1:4] == 1)


def _measured(group: Any, code: Code_) -> list[Any]:
    """The group's measurements named ``code`` (compared by value and scheme)."""
    return [
        m
        for m in group.get_measurements()
        if (m.name.value, m.name.scheme_designator) == (code.value, code.scheme_designator)
    ]


def test_push_sr(ctx: Context, world: World, orthanc: Orthanc, tmp_path: Path) -> None:
    ann_id, image, mask = _annotated(ctx, world)
    result = pacs.push(ctx, world.admin, ann_id, world.connection_id, "sr")
    ds = _fetch(orthanc, result.study_uid, result.sop_instance_uid, tmp_path)
    assert ds.Modality == "SR"
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    spacing = np.linalg.norm(np.asarray(image.affine)[:3, :3], axis=0)
    voxel = float(np.prod(spacing))
    sources = set(_source_uids(ctx, image))
    # masks: one group per label with its volume
    groups = sr.content.get_image_measurement_groups()
    volumes = {}
    for g in groups:
        if g.finding_type is None or not g.get_measurements():
            continue  # the classification group
        (vol,) = _measured(g, codes.SCT.Volume)
        volumes[g.finding_type.meaning] = vol.value
        assert {r.referenced_sop_instance_uid for r in g.source_images} <= sources
    assert volumes == pytest.approx(
        {"Liver": (mask == 1).sum() * voxel, "tumour": (mask == 2).sum() * voxel}
    )
    # the classification
    evaluations = [e for g in groups for e in g.get_qualitative_evaluations()]
    assert [(e.name.meaning, e.value.meaning) for e in evaluations] == [
        ("Image classification", "cirrhosis")
    ]
    # boxes: a one-plane rectangle with its area, a three-plane box with its volume; a point
    planar = sr.content.get_planar_roi_measurement_groups()
    volumetric = sr.content.get_volumetric_roi_measurement_groups()
    area = [g for g in planar if _measured(g, codes.SCT.Area)]
    assert len(area) == 1
    assert _measured(area[0], codes.SCT.Area)[0].value == pytest.approx(
        6 * spacing[1] * 8 * spacing[2]
    )
    region = area[0].roi
    assert region.value_type.value == "SCOORD" and region.graphic_type.value == "POLYLINE"
    assert np.allclose(region.value, [[4, 3], [12, 3], [12, 9], [4, 9], [4, 3]])
    (box3d,) = volumetric
    assert len(box3d.roi) == 3  # one rectangle on each of planes 1..3
    points = [g for g in planar if g.roi is not None and g.roi.graphic_type.value == "POINT"]
    assert len(points) == 1 and np.allclose(points[0].roi.value, [[6.5, 5.5]])
    on = points[0].roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    assert on == _source_uids(ctx, image)[4]  # the point's plane
    # evidence: the de-identified study
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == result.study_uid


def test_push_refusals(ctx: Context, world: World, nifti_file: Path) -> None:
    from medlabel.services.imports import ImportOptions, import_paths

    (nifti_id,) = import_paths(
        ctx, world.admin, world.project_id, [nifti_file], options=ImportOptions(modality="MR")
    ).image_ids
    mask = np.zeros(_shape(ctx, nifti_id), np.uint8)
    mask[10, 10, 10] = 1
    ann = ann_svc.save_annotation(
        ctx, world.admin, nifti_id, content=AnnotationContent(), mask=mask
    )
    with pytest.raises(InvalidInputError, match="not imported from DICOM"):
        pacs.push(ctx, world.admin, ann.annotation.id, world.connection_id, "sr")
    with pytest.raises(NotFoundError):
        pacs.push(ctx, world.admin, ann.annotation.id, world.connection_id, "seg", "approved")
    with pytest.raises(NotFoundError):
        pacs.push(ctx, world.admin, 999_999, world.connection_id)


def _shape(ctx: Context, image_id: int) -> tuple[int, ...]:
    with ctx.db.read() as s:
        image = s.get(Image, image_id)
        assert image is not None
        return tuple(image.shape)
