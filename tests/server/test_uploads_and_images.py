"""Uploading through the API, browsing images, rendered slices, downloads and exports."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from medlabel.security.roles import Role
from tests.conftest import sample_file


@pytest.fixture
def project(admin: TestClient) -> dict[str, Any]:
    p = admin.post("/api/projects", json={"name": "Uploads"}).json()
    admin.post(f"/api/projects/{p['id']}/labels", json=[{"name": "lesion", "kind": "mask"}])
    return p


def _upload(client: TestClient, pid: int, files: list[tuple[str, bytes]], **fields: str) -> Any:
    return client.post(
        f"/api/projects/{pid}/imports",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        data=fields,
    )


def _count(client: TestClient, pid: int) -> int:
    return int(client.get(f"/api/projects/{pid}/images").json()["total"])


def test_upload_folder_with_relative_paths(
    admin: TestClient, project: dict[str, Any], ct_series: Path
) -> None:
    files = [(f"study/ct/{p.name}", p.read_bytes()) for p in sorted(ct_series.iterdir())]
    r = _upload(admin, project["id"], files)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["counts"]["instances"] == 5 and len(body["image_ids"]) == 1
    image = admin.get(f"/api/images/{body['image_ids'][0]}").json()
    assert image["shape"] == [5, 16, 16] and image["context"]["series"]["modality"] == "CT"
    history = admin.get(f"/api/projects/{project['id']}/imports").json()
    assert history[0]["report"]["deidentification"]["instances"] == 5


def test_upload_zip_and_nifti_and_png(
    admin: TestClient, project: dict[str, Any], ct_series: Path, nifti_file: Path
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(ct_series.iterdir()):
            zf.write(p, p.name)
    png = io.BytesIO()
    PILImage.fromarray(np.arange(64 * 80, dtype=np.uint16).reshape(64, 80)).save(png, "PNG")
    r = _upload(
        admin,
        project["id"],
        [
            ("ct.zip", buf.getvalue()),
            ("anatomical.nii", nifti_file.read_bytes()),
            ("gradient.png", png.getvalue()),
        ],
        modality="mr",
    )
    assert r.status_code == 201, r.text
    items = admin.get(f"/api/projects/{project['id']}/images?sort=name").json()["items"]
    formats = sorted((i["source_format"], i["modality"]) for i in items)
    assert formats == [("dicom", "CT"), ("nifti", "MR"), ("png", "MR")]


def _nifti_header_only(shape: tuple[int, ...]) -> bytes:
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.uint8)
    hdr.set_data_shape((1, 1, 1))
    raw = bytearray(hdr.binaryblock)
    struct.pack_into("<8h", raw, 40, len(shape), *shape, *([1] * (7 - len(shape))))
    return gzip.compress(bytes(raw) + b"\0" * 8)


def _zip(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "status", "fragment"),
    [
        (
            "MR_truncated.dcm",
            lambda: sample_file("MR_truncated.dcm").read_bytes(),
            422,
            "MR_truncated",
        ),
        ("notes.dcm", lambda: b"this is not DICOM", 422, "notes.dcm"),
        ("huge.nii.gz", lambda: _nifti_header_only((10000, 10000, 10000)), 413, "voxels"),
        ("slip.zip", lambda: _zip("../../x.dcm", b"x"), 422, ".."),
        ("bomb.zip", lambda: _zip("zeros.dcm", b"\0" * 32 * 1024 * 1024), 413, "zeros.dcm"),
    ],
)
def test_bad_uploads_are_4xx_and_store_nothing(
    admin: TestClient, project: dict[str, Any], name: str, make: Any, status: int, fragment: str
) -> None:
    good = ("CT_small.dcm", sample_file("CT_small.dcm").read_bytes())
    r = _upload(admin, project["id"], [good, (name, make())])
    assert r.status_code == status, r.text
    assert fragment in r.json()["message"]
    assert _count(admin, project["id"]) == 0
    assert admin.get(f"/api/projects/{project['id']}/imports").json() == []


def test_upload_without_files_or_permission(
    admin: TestClient, make_client: Any, project: dict[str, Any]
) -> None:
    r = admin.post(f"/api/projects/{project['id']}/imports", data={"x": "1"})
    assert r.status_code == 422 and "files" in r.json()["message"]
    alice = make_client("alice", Role.ANNOTATOR)
    admin.put(
        f"/api/projects/{project['id']}/members/{alice.get('/api/auth/me').json()['id']}", json={}
    )
    r = _upload(alice, project["id"], [("CT_small.dcm", sample_file("CT_small.dcm").read_bytes())])
    assert r.status_code == 403


def test_slices_thumbnails_volume_and_header(
    admin: TestClient, project: dict[str, Any], nifti_file: Path
) -> None:
    files = [
        ("CT_small.dcm", sample_file("CT_small.dcm").read_bytes()),
        ("anatomical.nii", nifti_file.read_bytes()),
    ]
    ids = _upload(admin, project["id"], files).json()["image_ids"]
    ct, mr = (admin.get(f"/api/images/{i}").json() for i in ids)
    assert ct["modality"] == "CT" and mr["source_format"] == "nifti"
    # windowed PNGs differ between presets; out-of-range slices are a clear 422
    lung = admin.get(f"/api/images/{ct['id']}/slice.png?preset=lung")
    bone = admin.get(f"/api/images/{ct['id']}/slice.png?preset=bone")
    assert lung.headers["content-type"] == "image/png" and lung.content != bone.content
    arr = np.asarray(PILImage.open(io.BytesIO(lung.content)))
    assert arr.shape == (128, 128) and arr.dtype == np.uint8
    for view, n in mr["context"]["views"].items():
        r = admin.get(f"/api/images/{mr['id']}/slice.png?view={view}&index={n - 1}")
        assert r.status_code == 200
        assert (
            admin.get(f"/api/images/{mr['id']}/slice.png?view={view}&index={n}").status_code == 422
        )
    assert admin.get(f"/api/images/{ct['id']}/slice.png?preset=nope").status_code == 422
    assert admin.get(f"/api/images/{ct['id']}/slice.png?center=40").status_code == 422
    assert admin.get(f"/api/images/{ct['id']}/slice.png?view=oblique").status_code == 422
    thumb = PILImage.open(io.BytesIO(admin.get(f"/api/images/{ct['id']}/thumbnail.png").content))
    assert max(thumb.size) == 128
    # the raw volume is a NIfTI on the image's grid
    vol = admin.get(f"/api/images/{mr['id']}/volume.nii")
    img = nib.Nifti1Image.from_bytes(vol.content)
    assert np.array_equal(np.asarray(img.dataobj), np.asarray(nib.load(nifti_file).dataobj))
    assert np.allclose(img.affine, nib.load(nifti_file).affine)
    header = admin.get(f"/api/images/{ct['id']}/dicom-header").json()
    by_kw = {row["keyword"]: row for row in header}
    assert by_kw["PatientIdentityRemoved"]["value"] == "YES"
    assert "CompressedSamples" not in str(header)  # the original patient name


def test_listing_filters_and_next_image(admin: TestClient, project: dict[str, Any]) -> None:
    files = [(n, sample_file(n).read_bytes()) for n in ("CT_small.dcm", "MR_small.dcm")]
    ids = _upload(admin, project["id"], files).json()["image_ids"]
    url = f"/api/projects/{project['id']}/images"
    assert admin.get(f"{url}?modality=mr").json()["total"] == 1
    assert admin.get(f"{url}?status=approved").json()["total"] == 0
    assert admin.get(f"{url}?status=bogus").status_code == 422
    assert admin.get(f"{url}?q=CT").json()["total"] == 1
    page = admin.get(f"{url}?limit=1&sort=-id").json()
    assert page["total"] == 2 and page["items"][0]["id"] == max(ids)
    nxt = admin.get(f"/api/projects/{project['id']}/next-image?after={ids[0]}").json()
    assert nxt["id"] == ids[1]
    admin.post(f"/api/images/{ids[1]}/annotations", json={})
    wrapped = admin.get(f"/api/projects/{project['id']}/next-image?after={ids[0]}").json()
    assert wrapped["id"] == ids[0]


def test_export_download_and_annotation_upload(admin: TestClient, project: dict[str, Any]) -> None:
    (image_id,) = _upload(
        admin, project["id"], [("CT_small.dcm", sample_file("CT_small.dcm").read_bytes())]
    ).json()["image_ids"]
    mask = np.zeros((1, 128, 128), np.uint8)
    mask[0, 30:60, 40:70] = 1
    import base64

    body = {
        "mask": {
            "encoding": "raw-gzip",
            "data": base64.b64encode(gzip.compress(mask.tobytes())).decode(),
        }
    }
    assert admin.post(f"/api/images/{image_id}/annotations", json=body).status_code == 201
    r = admin.post(f"/api/projects/{project['id']}/exports", json={"format": "dicom-seg"})
    assert r.status_code == 201, r.text
    z = admin.get(f"/api/exports/{r.json()['id']}/download")
    assert z.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
    seg_name = next(n for n in names if n.endswith(".seg.dcm"))
    seg_bytes = zipfile.ZipFile(io.BytesIO(z.content)).read(seg_name)
    # upload the SEG back: it lands on the same image as a new revision (source: import)
    r = admin.post(
        f"/api/projects/{project['id']}/annotation-imports",
        files={"file": ("back.seg.dcm", seg_bytes)},
    )
    assert r.status_code == 201, r.text
    (done,) = r.json()
    assert done["image_id"] == image_id
    rev = admin.get(f"/api/revisions/{done['revision_id']}").json()
    assert rev["source"] == "import" and rev["number"] == 2
    assert (
        admin.post(f"/api/projects/{project['id']}/exports", json={"format": "gif"}).status_code
        == 422
    )


def test_request_bodies_over_the_limit_are_413(settings: Any, ctx: Any) -> None:
    from medlabel.server.app import create_app

    small = settings.model_copy(update={"max_json_bytes": 1000, "max_upload_bytes": 5000})
    with TestClient(create_app(small, ctx=ctx)) as client:
        r = client.post("/api/auth/login", json={"username": "x" * 2000, "password": "y"})
        assert r.status_code == 413
        # a chunked body without Content-Length is counted as it streams
        r = client.post(
            "/api/auth/login",
            content=iter([b'{"username": "', b"x" * 3000, b'", "password": "y"}']),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 413
        r = client.post("/api/projects/1/imports", files={"files": ("a.dcm", b"\0" * 9000)})
        assert r.status_code == 413
