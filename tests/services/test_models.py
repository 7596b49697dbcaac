"""The model registry: versions per project and task, one active, stored directories,
permissions, the API, and the uncertainty map of a pre-annotation proposal.

Model directories here are real cards with stand-in weight bytes (no training needed);
tests/jobs/test_train_kind.py trains real ones.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from medlabel.core.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from medlabel.engines.deep.model_dir import (
    Architecture,
    InputSpec,
    LabelInfo,
    ModelCard,
    Normalisation,
    TaskKind,
)
from medlabel.io.arrays import encode_array
from medlabel.services import models as svc
from medlabel.services.context import Context
from medlabel.storage.db.models import AuditEvent, Proposal
from tests.conftest import PASSWORD
from tests.services.reader_study import Study, make_study


def model_dir(root: Path, *, dice: float = 0.5, weights: bytes = b"w" * 100) -> Path:
    card = ModelCard(
        task=TaskKind.SEG,
        architecture=Architecture(name="dynunet"),
        input=InputSpec(
            dims=2, channels=1, patch_size=[32, 32], normalisation=Normalisation(scheme="zscore")
        ),
        labels=[LabelInfo(value=0, name="background"), LabelInfo(value=1, name="lesion")],
        validation={"mean_dice": dice},
    )
    root.mkdir(parents=True)
    card.write(root)
    (root / "weights.pt").write_bytes(weights)
    (root / "notes.txt").write_text("not stored")
    return root


@pytest.fixture
def study(ctx: Context) -> Study:
    return make_study(ctx, readers_per_image=1, blinded=False)


# edge cases ------------------------------------------------------------------------------
def test_register_refuses_a_folder_without_a_card(
    ctx: Context, study: Study, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match=r"model\.json"):
        svc.register_model(ctx, study.project_id, tmp_path)
    with pytest.raises(InvalidInputError, match="not a model directory"):
        svc.pack_directory(tmp_path)


def test_unknown_model_and_task(ctx: Context, study: Study) -> None:
    with pytest.raises(NotFoundError):
        svc.get_model(ctx, study.admin, 999)
    with pytest.raises(InvalidInputError, match="unknown task"):
        svc.list_models(ctx, study.admin, study.project_id, task="xyz")


def test_pack_is_deterministic_and_unpack_only_known_files(tmp_path: Path) -> None:
    d = model_dir(tmp_path / "m")
    a, b = svc.pack_directory(d), svc.pack_directory(d)
    assert a == b
    with tarfile.open(fileobj=io.BytesIO(a)) as tar:
        assert sorted(tar.getnames()) == ["model.json", "weights.pt"]
    out = svc.unpack_directory(a, tmp_path / "out")
    assert (out / "weights.pt").read_bytes() == b"w" * 100
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(InvalidInputError, match=r"no model\.json"):
        svc.unpack_directory(evil.getvalue(), tmp_path / "evil")
    assert not (tmp_path / "escape.txt").exists()


# versions and the active flag ------------------------------------------------------------
def test_versions_count_up_and_one_is_active(ctx: Context, study: Study, tmp_path: Path) -> None:
    first = svc.register_model(
        ctx, study.project_id, model_dir(tmp_path / "a"), revision_ids=[3, 1], job_id=None
    )
    second = svc.register_model(ctx, study.project_id, model_dir(tmp_path / "b", dice=0.7))
    assert (first.version, first.active, first.name) == (1, True, "seg-v1")
    assert (second.version, second.active) == (2, False)
    assert first.revision_ids == [1, 3] and second.metrics == {"mean_dice": 0.7}
    assert first.size_bytes > 100 and first.weights_digest != second.weights_digest
    third = svc.register_model(ctx, study.project_id, model_dir(tmp_path / "c"), activate=True)
    rows = svc.list_models(ctx, study.admin, study.project_id)
    assert [(r.version, r.active) for r in rows] == [(3, True), (2, False), (1, False)]
    svc.activate_model(ctx, study.admin, first.id)
    with ctx.db.read() as s:
        active = svc.active_model(s, study.project_id, "seg")
    assert active is not None and active.id == first.id
    assert [r.active for r in svc.list_models(ctx, study.admin, study.project_id)] == [
        False,
        False,
        True,
    ]
    # a stored version unpacks to the directory that was registered
    out = svc.extract_model(ctx, third, tmp_path / "x")
    assert ModelCard.read(out).validation == {"mean_dice": 0.5}
    assert not (out / "notes.txt").exists()


def test_delete_removes_the_blob_unless_shared(ctx: Context, study: Study, tmp_path: Path) -> None:
    d = model_dir(tmp_path / "a")
    a = svc.register_model(ctx, study.project_id, d)
    b = svc.register_model(ctx, study.project_id, d)  # same files: same blob
    assert a.weights_digest == b.weights_digest
    svc.delete_model(ctx, study.admin, a.id)
    assert ctx.blobs.exists(b.weights_digest)
    svc.delete_model(ctx, study.admin, b.id)
    assert not ctx.blobs.exists(b.weights_digest)
    assert svc.list_models(ctx, study.admin, study.project_id) == []


def test_permissions_and_audit(ctx: Context, study: Study, tmp_path: Path) -> None:
    row = svc.register_model(ctx, study.project_id, model_dir(tmp_path / "a"))
    assert [m.id for m in svc.list_models(ctx, study.vic, study.project_id)] == [row.id]
    for call in (svc.activate_model, svc.delete_model, svc.download_model):
        with pytest.raises(PermissionDeniedError):
            call(ctx, study.ann, row.id)
    _, data = svc.download_model(ctx, study.rita, row.id)
    assert data == ctx.blobs.read_bytes(row.weights_digest)
    with ctx.db.read() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions[-2:] == ["model.create", "model.download"]


# API -------------------------------------------------------------------------------------
def test_api(ctx: Context, study: Study, tmp_path: Path, app_client: TestClient) -> None:
    row = svc.register_model(ctx, study.project_id, model_dir(tmp_path / "a"))
    svc.register_model(ctx, study.project_id, model_dir(tmp_path / "b"))
    r = app_client.post("/api/auth/login", json={"username": "rita", "password": PASSWORD})
    assert r.status_code == 200
    listed = app_client.get(f"/api/projects/{study.project_id}/models").json()
    assert [(m["version"], m["active"]) for m in listed] == [(2, False), (1, True)]
    assert listed[0]["summary"]["architecture"] == "dynunet" and listed[0]["card"] is None
    one = app_client.get(f"/api/models/{row.id}").json()
    assert one["card"]["task"] == "seg" and one["metrics"] == {"mean_dice": 0.5}
    act = app_client.post(f"/api/models/{listed[0]['id']}/activate")
    assert act.status_code == 200 and act.json()["active"] is True
    dl = app_client.get(f"/api/models/{row.id}/download")
    assert dl.status_code == 200 and dl.headers["content-type"] == "application/x-tar"
    assert app_client.delete(f"/api/models/{row.id}").status_code == 204
    assert app_client.get(f"/api/models/{row.id}").status_code == 404
    assert app_client.get(f"/api/projects/{study.project_id}/models?task=x").status_code == 422


def test_uncertainty_map_api(ctx: Context, study: Study, app_client: TestClient) -> None:
    image_id = study.image_ids[1]
    unc = np.arange(12, dtype=np.uint8).reshape(1, 3, 4) * 20
    with ctx.db.write() as s:
        digest = ctx.blobs.put_bytes(encode_array(np.ones((1, 3, 4), bool), compress=True)).digest
        udig = ctx.blobs.put_bytes(encode_array(unc, compress=True)).digest
        rows = [
            Proposal(
                project_id=study.project_id, image_id=image_id, user_id=study.rita.id,
                engine_name="model:seg-v1", engine_version="v1", label="lesion", origin=[0, 2, 5],
                shape=[1, 3, 4], mask_digest=digest, voxels=12, uncertainty_digest=u,
            )
            for u in (udig, None)
        ]  # fmt: skip
        s.add_all(rows)
        s.flush()
        with_map, without = rows[0].id, rows[1].id
    assert (
        app_client.post(
            "/api/auth/login", json={"username": "rita", "password": PASSWORD}
        ).status_code
        == 200
    )
    r = app_client.get(f"/api/proposals/{with_map}/uncertainty")
    assert r.status_code == 200, r.text
    shape = tuple(int(n) for n in r.headers["X-Mask-Shape"].split(","))
    full = np.frombuffer(gzip.decompress(r.content), np.uint8).reshape(shape)
    assert r.headers["X-Uncertainty-Scale"] == "255"
    assert np.array_equal(full[0:1, 2:5, 5:9], unc) and full.sum() == unc.sum()
    assert app_client.get(f"/api/proposals/{without}/uncertainty").status_code == 422
    nifti = app_client.get(f"/api/proposals/{with_map}/uncertainty?encoding=nifti")
    assert nifti.status_code == 200 and nifti.content[:2] == b"\x1f\x8b"
