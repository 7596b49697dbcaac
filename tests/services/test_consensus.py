"""Agreement and consensus of a real reader study, through the services."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import AnnotationKind, RevisionSource
from medlabel.core.errors import ConflictError, InvalidInputError, PermissionDeniedError
from medlabel.services import annotations as ann_svc
from medlabel.services.agreement import image_agreement, project_agreement
from medlabel.services.consensus import build_consensus, disagreement_mask
from medlabel.services.context import Context
from medlabel.services.exports import export_to_dir
from medlabel.services.images import get_image
from tests.services.reader_study import Study, make_study, read


def _square(shape: list[int], r0: int, c0: int, size: int) -> np.ndarray:
    out = np.zeros(shape[:3], np.uint8)
    out[0, r0 : r0 + size, c0 : c0 + size] = 1
    return out


@pytest.fixture
def study(ctx: Context) -> Study:
    return make_study(ctx, readers_per_image=3, blinded=True)


def _masks(study: Study, image: int) -> list[np.ndarray]:
    dims = list(get_image(study.ctx, study.admin, image).shape)
    return [_square(dims, 5, 5, 10), _square(dims, 6, 5, 10), _square(dims, 5, 7, 12)]


def _three_readings(study: Study) -> tuple[int, list[int]]:
    image = study.image_ids[0]
    ids = []
    for who, mask in zip(study.readers, _masks(study, image), strict=True):
        ids.append(read(study.ctx, who, image, mask=mask).annotation.id)
    return image, ids


def test_agreement_needs_a_reviewer(study: Study) -> None:
    image, _ = _three_readings(study)
    with pytest.raises(PermissionDeniedError):
        image_agreement(study.ctx, study.ann, image)


def test_image_agreement_pairs(study: Study) -> None:
    image, _ = _three_readings(study)
    r = image_agreement(study.ctx, study.rita, image)
    assert [i.reader for i in r.readers] == ["ann", "bob", "cy"]
    assert [(p.a, p.b) for p in r.masks] == [("ann", "bob"), ("ann", "cy"), ("bob", "cy")]
    ann_bob = r.masks[0].metrics
    assert ann_bob["dice"] == pytest.approx(2 * 90 / 200)
    assert r.classes == {"ann": ["malignant"], "bob": ["malignant"], "cy": ["malignant"]}


def test_consensus_is_stored_with_provenance_and_adjudicated(study: Study) -> None:
    ctx = study.ctx
    image, ids = _three_readings(study)
    with pytest.raises(InvalidInputError, match="at least two"):
        build_consensus(ctx, study.rita, image, annotation_ids=ids[:1])
    with pytest.raises(InvalidInputError, match="unknown consensus method"):
        build_consensus(ctx, study.rita, image, method="mean")
    result = build_consensus(ctx, study.rita, image, method="majority")
    ann = result.view.annotation
    assert ann.kind == AnnotationKind.CONSENSUS.value and ann.owner_id is None
    head = result.view.head
    assert head is not None and head.source == RevisionSource.ENGINE.value
    assert head.engine_name == "consensus.majority"
    assert [i["annotation_id"] for i in head.prompt["inputs"]] == ids
    mask = ann_svc.load_mask(ctx, head)
    assert mask is not None
    # the majority: voxels that at least two of the three squares cover
    votes = sum(m.astype(int) for m in _masks(study, image))
    assert np.array_equal(mask, (votes >= 2).astype(np.uint8))
    assert head.content["classes"] == ["malignant"]
    assert result.disagreement_voxels == int(disagreement_mask(ctx, study.rita, image).sum())
    # recomputing needs the version the reviewer saw
    with pytest.raises(ConflictError):
        build_consensus(ctx, study.rita, image, base_version=ann.version - 1)
    again = build_consensus(ctx, study.rita, image, method="staple", base_version=ann.version)
    assert again.view.annotation.id == ann.id
    assert set(again.performance) == {"ann", "bob", "cy"}
    # the blinded readers do not see the consensus; the reviewer adjudicates and approves
    assert all(
        v.annotation.kind == "reader" for v in ann_svc.list_annotations(ctx, study.ann, image)
    )
    view = ann_svc.save_annotation(
        ctx,
        study.rita,
        image,
        content=AnnotationContent(classes=["malignant"]),
        mask=np.asarray(mask),
        annotation_id=ann.id,
        base_version=again.view.annotation.version,
        message="adjudicated",
    )
    assert view.head is not None and view.head.parent_id == again.view.head.id
    agreement = image_agreement(ctx, study.rita, image)
    assert agreement.consensus is not None
    assert {p.a for p in agreement.against_consensus} == {"ann", "bob", "cy"}


def test_project_agreement_dashboard(study: Study) -> None:
    image, _ = _three_readings(study)
    r = project_agreement(study.ctx, study.rita, study.project_id)
    assert r.images_compared == 1
    assert {(p["reader_a"], p["reader_b"]) for p in r.pairs} == {
        ("ann", "bob"),
        ("ann", "cy"),
        ("bob", "cy"),
    }
    assert all(p["images"] == 1 for p in r.pairs)
    assert {row["reader"] for row in r.readers} == {"ann", "bob", "cy"}
    assert r.images[0]["image_id"] == image and 0 < r.images[0]["mean_dice"] < 1
    (malignant,) = r.classes
    assert malignant.name == "malignant" and malignant.fleiss == 1.0


def test_approved_consensus_is_what_exports_and_status_use(study: Study, tmp_path: Path) -> None:
    ctx = study.ctx
    image, ids = _three_readings(study)
    for aid in ids:
        view = ann_svc.get_annotation(ctx, study.rita, aid)
        ann_svc.transition(ctx, study.rita, aid, "approve", view.annotation.version)
    result = build_consensus(ctx, study.rita, image, method="majority")
    cons = result.view.annotation
    assert get_image(ctx, study.admin, image).status == "approved"  # three approved readers
    ann_svc.transition(ctx, study.rita, cons.id, "submit", cons.version)
    view = ann_svc.get_annotation(ctx, study.rita, cons.id)
    ann_svc.transition(ctx, study.rita, cons.id, "approve", view.annotation.version)
    summary = export_to_dir(
        ctx, None, study.project_id, "nifti", tmp_path / "out", which="approved"
    )
    assert summary.exported == 1
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    (item,) = manifest["items"]
    assert "consensus" in json.dumps(item)
    (label_file,) = (tmp_path / "out" / "labels").iterdir()
    exported = np.asarray(nib.load(label_file).dataobj)
    votes = sum(m.astype(int) for m in _masks(study, image))
    assert int(exported.sum()) == int((votes >= 2).sum())
