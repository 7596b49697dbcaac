"""Agreement, consensus and disagreement over HTTP."""

from __future__ import annotations

import gzip

import numpy as np
from fastapi.testclient import TestClient

from medlabel.services.context import Context
from medlabel.services.images import get_image
from tests.conftest import PASSWORD
from tests.services.reader_study import make_study, read


def _login(client: TestClient, name: str) -> TestClient:
    r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


def test_reader_study_agreement_and_consensus(ctx: Context, app_client: TestClient) -> None:
    study = make_study(ctx, readers_per_image=2, blinded=True)
    image = study.image_ids[1]
    shape = list(get_image(ctx, study.admin, image).shape)
    a = np.zeros(shape, np.uint8)
    a[0, 10:30, 10:30] = 1
    b = np.zeros(shape, np.uint8)
    b[0, 12:30, 10:34] = 1
    read(ctx, study.ann, image, mask=a)
    read(ctx, study.bob, image, mask=b)

    client = _login(app_client, "ann")
    assert client.get(f"/api/images/{image}/agreement").status_code == 403
    assert client.post(f"/api/images/{image}/consensus", json={}).status_code == 403

    client = _login(app_client, "rita")
    r = client.get(f"/api/images/{image}/agreement")
    assert r.status_code == 200, r.text
    (pair,) = r.json()["masks"]
    inter = int((a & b).sum())
    assert abs(pair["metrics"]["dice"] - 2 * inter / (a.sum() + b.sum())) < 1e-9

    r = client.post(f"/api/images/{image}/consensus", json={"method": "median"})
    assert r.status_code == 422
    r = client.post(f"/api/images/{image}/consensus", json={"method": "staple"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["annotation"]["head"]["engine_name"] == "consensus.staple"
    assert out["disagreement_voxels"] == int((a != b).sum())
    r = client.post(f"/api/images/{image}/consensus", json={"method": "staple"})
    assert r.status_code == 422 and "base_version" in r.text  # recompute with its version
    version = out["annotation"]["version"]
    r = client.post(f"/api/images/{image}/consensus", json={"base_version": version - 1})
    assert r.status_code == 409
    r = client.post(
        f"/api/images/{image}/consensus", json={"method": "majority", "base_version": version}
    )
    assert r.status_code == 200 and r.json()["annotation"]["version"] > version

    r = client.get(f"/api/images/{image}/disagreement")
    assert r.status_code == 200
    dis = np.frombuffer(gzip.decompress(r.content), np.uint8).reshape(shape)
    assert np.array_equal(dis, (a != b).astype(np.uint8))

    r = client.get(f"/api/projects/{study.project_id}/agreement")
    assert r.status_code == 200, r.text
    dash = r.json()
    assert dash["images_compared"] == 1 and dash["images"][0]["has_consensus"]
    assert {row["reader"] for row in dash["readers"]} == {"ann", "bob"}

    # one reader marked nothing: distances are undefined and come back as null
    empty = study.image_ids[2]
    read(
        ctx,
        study.ann,
        empty,
        mask=np.zeros(list(get_image(ctx, study.admin, empty).shape), np.uint8),
    )
    c = np.zeros(list(get_image(ctx, study.admin, empty).shape), np.uint8)
    c[0, 1:5, 1:5] = 1
    read(ctx, study.bob, empty, mask=c)
    (pair,) = client.get(f"/api/images/{empty}/agreement").json()["masks"]
    assert pair["metrics"]["dice"] == 0.0 and pair["metrics"]["hd95"] is None
