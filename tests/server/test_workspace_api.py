"""API the workspace relies on: view filters, region statistics, drafts, meta."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient

from medlabel.imaging.filters import FilterKind, ViewFilter, apply_view_filter
from medlabel.services.context import Context
from medlabel.services.imports import import_paths
from tests.conftest import sample_file


@pytest.fixture
def ct(admin: TestClient, ctx: Context) -> dict[str, Any]:
    p = admin.post("/api/projects", json={"name": "W"}).json()
    admin.post(
        f"/api/projects/{p['id']}/labels",
        json=[{"name": "organ", "kind": "mask"}, {"name": "c", "kind": "classification"}],
    )
    (image_id,) = import_paths(ctx, None, p["id"], [sample_file("CT_small.dcm")]).image_ids
    return admin.get(f"/api/images/{image_id}").json()


def _payload(mask: np.ndarray) -> dict[str, str]:
    return {
        "encoding": "raw-gzip",
        "dtype": "uint8",
        "data": base64.b64encode(gzip.compress(mask.tobytes())).decode(),
    }


def test_filtered_volume_never_changes_stored_pixels(admin: TestClient, ct: dict[str, Any]) -> None:
    url = f"/api/images/{ct['id']}/volume.nii"
    original = nib.Nifti1Image.from_bytes(admin.get(url).content)
    for kind in FilterKind:
        r = admin.get(f"{url}?filter={kind.value}")
        assert r.status_code == 200, (kind, r.text)
        img = nib.Nifti1Image.from_bytes(r.content)
        assert img.shape == original.shape and np.allclose(img.affine, original.affine)
    smooth = np.asarray(
        nib.Nifti1Image.from_bytes(admin.get(f"{url}?filter=gaussian&sigma=2").content).dataobj
    )
    assert smooth.std() < np.asarray(original.dataobj).std()
    again = nib.Nifti1Image.from_bytes(admin.get(url).content)
    assert np.array_equal(np.asarray(again.dataobj), np.asarray(original.dataobj))
    assert admin.get(f"{url}?filter=blur").status_code == 422
    assert admin.get(f"{url}?filter=median&size=99").status_code == 422


def test_filters_match_scipy_and_skimage() -> None:
    from scipy import ndimage
    from skimage.exposure import equalize_adapthist

    arr = pydicom.dcmread(sample_file("CT_small.dcm")).pixel_array[np.newaxis].astype(np.int16)
    med = apply_view_filter(arr, ViewFilter(kind="median", size=5))
    assert np.array_equal(med[0], ndimage.median_filter(arr[0], size=5))
    clahe = apply_view_filter(arr, ViewFilter(kind="clahe", clip_limit=0.02))
    a = arr[0].astype(np.float32)
    ref = equalize_adapthist((a - a.min()) / (a.max() - a.min()), clip_limit=0.02) * 1000
    assert np.allclose(clahe[0], ref, atol=1e-3)
    eq = apply_view_filter(arr, ViewFilter(kind="equalize"))
    assert eq.min() == 0 and eq.max() == 1000
    # equalisation preserves order: brighter stays brighter
    flat, out = arr[0].ravel(), eq[0].ravel()
    order = np.argsort(flat, kind="stable")
    assert np.all(np.diff(out[order]) >= 0)


def test_region_stats_in_hounsfield_units(admin: TestClient, ct: dict[str, Any]) -> None:
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    mask = np.zeros((1, 128, 128), np.uint8)
    mask[0, 40:60, 50:80] = 1
    r = admin.post(f"/api/images/{ct['id']}/stats", json={"mask": _payload(mask)})
    assert r.status_code == 200, r.text
    (st,) = r.json()
    region = hu[40:60, 50:80]
    assert st["label"] == "organ" and st["voxels"] == 600 and st["units"] == "HU"
    ps = [float(x) for x in ds.PixelSpacing]
    assert st["area_mm2"] == pytest.approx(600 * ps[0] * ps[1], rel=1e-4)
    assert st["volume_mm3"] is None
    assert st["mean"] == pytest.approx(region.mean()) and st["std"] == pytest.approx(region.std())


def test_drafts_autosave_and_disappear_on_save(admin: TestClient, ct: dict[str, Any]) -> None:
    url = f"/api/images/{ct['id']}/draft"
    assert admin.get(url).status_code == 204
    mask = np.zeros((1, 128, 128), np.uint8)
    mask[0, 1:3, 1:3] = 1
    r = admin.put(url, json={"content": {"classes": ["c"]}, "mask": _payload(mask)})
    assert r.status_code == 200 and r.json()["has_mask"]
    r = admin.put(url, json={"content": {"classes": []}, "mask": _payload(mask)})
    got = admin.get(url).json()
    assert got["content"]["classes"] == []  # replaced, one draft per user and image
    raw = admin.get(f"{url}/mask")
    back = np.frombuffer(gzip.decompress(raw.content), np.uint8).reshape(1, 128, 128)
    assert np.array_equal(back, mask)
    nii = admin.get(f"{url}/mask?encoding=nifti")
    assert nib.Nifti1Image.from_bytes(gzip.decompress(nii.content)).shape == (128, 128, 1)
    # a draft is validated like a save
    bad = admin.put(url, json={"content": {"classes": ["nope"]}})
    assert bad.status_code == 422
    # saving a revision removes the draft
    assert admin.post(f"/api/images/{ct['id']}/annotations", json={}).status_code == 201
    assert admin.get(url).status_code == 204
    assert admin.delete(url).status_code == 204


def test_meta(admin: TestClient) -> None:
    meta = admin.get("/api/meta").json()
    assert meta["window_presets"]["lung"] == {"center": -600.0, "width": 1500.0}
    assert "clahe" in meta["filters"] and "mask" in meta["label_kinds"]
