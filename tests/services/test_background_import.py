"""Background imports: DICOM files stored and indexed now, images built by the
``prepare_import`` job — the same images as a one-stage import, problems found while
decoding reported and cleaned up."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from medlabel.services.context import Context
from medlabel.services.imports import ImportOptions, OnError, import_paths
from medlabel.services.imports.prepare import mark_failed, prepare_import
from medlabel.services.jobs import get_job, run_in_foreground
from medlabel.services.projects import create_project
from medlabel.storage.db.models import Image, ImportRecord, Instance, Job, Project
from tests.conftest import sample_file
from tests.support.jobs import wait_job

BACKGROUND = ImportOptions(background=True)


def _project(ctx: Context, name: str, secret: str | None = None) -> int:
    pid = create_project(ctx, None, name).id
    if secret is not None:  # two projects that de-identify alike
        with ctx.db.write() as s:
            s.execute(update(Project).where(Project.id == pid).values(deid_secret=secret))
    return pid


def _record(ctx: Context, import_id: int) -> ImportRecord:
    with ctx.db.read() as s:
        record = s.get(ImportRecord, import_id)
        assert record is not None
        return record


def _images(ctx: Context, project: int) -> list[Image]:
    with ctx.db.read() as s:
        return list(s.scalars(select(Image).where(Image.project_id == project).order_by(Image.id)))


def _instances(ctx: Context, project: int) -> list[Instance]:
    with ctx.db.read() as s:
        return list(
            s.scalars(
                select(Instance).where(Instance.project_id == project).order_by(Instance.sop_uid)
            )
        )


def _describe(ctx: Context, project: int) -> tuple[list[Any], list[Any]]:
    images = [
        (i.name, i.pixel_digest, i.thumbnail_digest, i.shape, i.dtype, i.affine,
         i.window_center, i.window_width, i.meta, i.plane_sources)
        for i in _images(ctx, project)
    ]  # fmt: skip
    instances = [
        (i.sop_uid, i.sop_class_uid, i.instance_number, i.first_plane, i.frames,
         i.dicom_digest, i.pixel_sha)
        for i in _instances(ctx, project)
    ]  # fmt: skip
    return images, instances


def test_stored_now_built_later_gives_the_images_of_a_one_stage_import(
    ctx: Context, ct_series: Path
) -> None:
    one, two = _project(ctx, "one", "s" * 32), _project(ctx, "two", "s" * 32)
    full = import_paths(ctx, None, one, [ct_series])

    summary = import_paths(ctx, None, two, [ct_series], options=BACKGROUND)
    # stored, de-identified and indexed; no image yet; the job that builds them queued
    assert summary.image_ids == [] and summary.counts["instances"] == 5
    assert _record(ctx, summary.import_id).status == "preparing"
    pending = _instances(ctx, two)
    assert len(pending) == 5 and all(i.image_id is None for i in pending)
    assert all(i.import_id == summary.import_id for i in pending)
    ds = pydicom.dcmread(io.BytesIO(ctx.blobs.read_bytes(pending[0].dicom_digest)))
    assert ds.PatientIdentityRemoved == "YES"
    with ctx.db.read() as s:
        job = s.get(Job, summary.job_id)
        assert job is not None and job.kind == "prepare_import" and job.state == "queued"
        assert job.params == {"import_id": summary.import_id}

    built = prepare_import(ctx, summary.import_id)
    assert len(built.image_ids) == 1
    record = _record(ctx, summary.import_id)
    assert record.status == "done"
    assert record.counts == dict(full.counts)  # files, instances, images...
    assert _describe(ctx, two) == _describe(ctx, one)  # byte-identical files and pixels
    # running it again finds nothing left to build
    assert prepare_import(ctx, summary.import_id).image_ids == []
    assert len(_images(ctx, two)) == 1


def test_mixed_real_files_build_the_same_images(ctx: Context, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    names = ["CT_small.dcm", "MR_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "US1_J2KR.dcm",
             "emri_small_RLE.dcm", "JPEG2000.dcm", "OBXXXX1A.dcm"]  # fmt: skip
    for name in names:
        shutil.copy(sample_file(name), folder / name)
    one, two = _project(ctx, "one", "m" * 32), _project(ctx, "two", "m" * 32)
    import_paths(ctx, None, one, [folder])
    summary = import_paths(ctx, None, two, [folder], options=BACKGROUND)
    prepare_import(ctx, summary.import_id)
    images_one, instances_one = _describe(ctx, one)
    images_two, instances_two = _describe(ctx, two)
    assert instances_two == instances_one
    assert sorted(images_two, key=repr) == sorted(images_one, key=repr)


def test_pixels_that_fail_to_decode_are_reported_and_removed(ctx: Context, ct_series: Path) -> None:
    project = _project(ctx, "P")
    shutil.copy(sample_file("JPEG-lossy.dcm"), ct_series / "JPEG-lossy.dcm")
    # a one-stage import refuses the whole upload...
    with pytest.raises(Exception, match="could not be decoded"):
        import_paths(ctx, None, project, [ct_series])
    # ...a background import stores everything, then drops what does not decode
    summary = import_paths(ctx, None, project, [ct_series], options=BACKGROUND)
    assert summary.counts["instances"] == 6
    stored = {i.sop_uid: i.dicom_digest for i in _instances(ctx, project)}
    built = prepare_import(ctx, summary.import_id)
    assert len(built.image_ids) == 1
    record = _record(ctx, summary.import_id)
    assert record.status == "done"
    assert record.counts["instances"] == 5 and record.counts["rejected"] == 1
    [problem] = [p for p in record.report["problems"] if p["status"] >= 400]
    assert "could not be decoded" in problem["reason"]
    left = {i.sop_uid for i in _instances(ctx, project)}
    [gone] = set(stored) - left
    assert gone in problem["file"]
    assert not ctx.blobs.exists(stored[gone])  # its file went with it
    assert all(i.image_id is not None for i in _instances(ctx, project))


def test_duplicates_are_recognised_in_both_stages(ctx: Context, ct_series: Path) -> None:
    project = _project(ctx, "P")
    first = import_paths(ctx, None, project, [ct_series], options=BACKGROUND)
    # the same files again: known SOP Instance UIDs, recognised before anything is stored
    again = import_paths(ctx, None, project, [ct_series], options=BACKGROUND)
    assert again.counts["duplicates"] == 5 and again.job_id is None
    assert _record(ctx, again.import_id).status == "done"
    prepare_import(ctx, first.import_id)
    # the same pixels under new UIDs: known only once decoded
    copy = ct_series.parent / "renamed"
    copy.mkdir()
    for path in sorted(ct_series.iterdir()):
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(copy / path.name)
    third = import_paths(ctx, None, project, [copy], options=BACKGROUND)
    assert third.counts["instances"] == 5
    assert prepare_import(ctx, third.import_id).image_ids == []
    record = _record(ctx, third.import_id)
    assert record.counts["duplicates"] == 5 and record.counts["instances"] == 0
    assert len(_instances(ctx, project)) == 5 and len(_images(ctx, project)) == 1


def test_non_dicom_files_of_a_background_import_are_stored_at_once(
    ctx: Context, ct_series: Path, nifti_file: Path
) -> None:
    project = _project(ctx, "P")
    summary = import_paths(ctx, None, project, [ct_series, nifti_file], options=BACKGROUND)
    assert len(summary.image_ids) == 1  # the NIfTI volume
    assert _record(ctx, summary.import_id).status == "preparing"
    prepare_import(ctx, summary.import_id)
    record = _record(ctx, summary.import_id)
    assert record.counts["images"] == 2 and record.status == "done"


def test_what_is_found_before_storing_still_rejects_the_import(
    ctx: Context, ct_series: Path
) -> None:
    project = _project(ctx, "P")
    shutil.copy(sample_file("MR_truncated.dcm"), ct_series / "MR_truncated.dcm")
    with pytest.raises(Exception, match="truncated"):
        import_paths(ctx, None, project, [ct_series], options=BACKGROUND)
    assert _instances(ctx, project) == []
    with ctx.db.read() as s:
        assert s.scalar(select(ImportRecord.id)) is None
    options = ImportOptions(background=True, on_error=OnError.SKIP)
    skipped = import_paths(ctx, None, project, [ct_series], options=options)
    assert skipped.counts["rejected"] == 1 and skipped.counts["instances"] == 5


def test_the_job_builds_the_images_and_a_failure_is_recorded(ctx: Context, ct_series: Path) -> None:
    project = _project(ctx, "P")
    summary = import_paths(ctx, None, project, [ct_series], options=BACKGROUND)
    view = run_in_foreground(
        ctx, None, "prepare_import", {"import_id": summary.import_id}, project_id=project
    )
    assert view.job.state == "succeeded", view.job.error
    assert view.job.result["image_ids"] and _record(ctx, summary.import_id).status == "done"
    # a job for an import of another project is refused before it is queued
    other = _project(ctx, "Q")
    with pytest.raises(Exception, match="not an import of this project"):
        run_in_foreground(ctx, None, "prepare_import", {"import_id": summary.import_id},
                          project_id=other)  # fmt: skip
    # a failed build leaves the stored instances for a retry and says so
    again = import_paths(ctx, None, other, [ct_series], options=BACKGROUND)
    mark_failed(ctx, again.import_id)
    assert _record(ctx, again.import_id).status == "failed"
    assert len(_instances(ctx, other)) == 5


def test_upload_in_the_background_through_the_api(
    admin: TestClient, ctx: Context, ct_series: Path
) -> None:
    pid = admin.post("/api/projects", json={"name": "bg"}).json()["id"]
    files = [("files", (p.name, p.read_bytes())) for p in sorted(ct_series.iterdir())]
    bad = admin.post(f"/api/projects/{pid}/imports", files=files, data={"background": "soon"})
    assert bad.status_code == 422 and "background" in bad.json()["message"]
    r = admin.post(f"/api/projects/{pid}/imports", files=files, data={"background": "true"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "preparing" and body["image_ids"] == [] and body["job_id"]
    job = wait_job(admin, body["job_id"])
    assert job["state"] == "succeeded", job
    record = admin.get(f"/api/imports/{body['id']}").json()
    assert record["status"] == "done" and record["counts"]["images"] == 1
    images = admin.get(f"/api/projects/{pid}/images").json()
    image = images[0] if isinstance(images, list) else images["items"][0]
    volume = ctx.volumes.get(_images(ctx, pid)[0].pixel_digest)
    assert image["shape"] == [5, 16, 16] and np.asarray(volume).shape == (5, 16, 16)
    assert get_job(ctx, None, body["job_id"]).job.kind == "prepare_import"
