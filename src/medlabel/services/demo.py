"""The demo: a project of real sample images that installed packages ship."""

from __future__ import annotations

import importlib.util
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import Code, LabelSpec
from medlabel.core.errors import MissingDependencyError, NotFoundError
from medlabel.security.roles import Role
from medlabel.services import projects as projects_svc
from medlabel.services.context import Context
from medlabel.services.imports import ImportOptions, import_paths
from medlabel.services.users import create_user
from medlabel.storage.db.models import User

DEMO_USER = "demo"
DEMO_PROJECT = "Demo"

#: (file in pydicom / pydicom-data, what it is)
DICOM_SAMPLES = [
    ("693_UNCR.dcm", "head CT slice, 512x512 (CQ500)"),
    ("CT_small.dcm", "CT slice, 128x128"),
    ("MR_small.dcm", "MR slice, 64x64"),
    ("emri_small.dcm", "enhanced MR, 10 frames"),
    ("eCT_Supplemental.dcm", "enhanced CT, 2 frames"),
    ("RG1_UNCR.dcm", "computed radiograph, MONOCHROME1"),
    ("US1_J2KR.dcm", "ultrasound, RGB, JPEG 2000"),
    ("MR2_J2KR.dcm", "MR 1024x1024, JPEG 2000"),
]

DEMO_LABELS = [
    LabelSpec(
        name="lesion",
        kind=LabelKind.MASK,
        color="#e6194b",
        code=Code(value="52988006", scheme="SCT", meaning="Lesion"),
    ),
    LabelSpec(
        name="brain",
        kind=LabelKind.MASK,
        color="#4363d8",
        code=Code(value="12738006", scheme="SCT", meaning="Brain"),
    ),
    LabelSpec(
        name="liver",
        kind=LabelKind.MASK,
        color="#f58231",
        code=Code(value="10200004", scheme="SCT", meaning="Liver"),
    ),
    LabelSpec(
        name="vessel",
        kind=LabelKind.MASK,
        color="#3cb44b",
        code=Code(value="59820001", scheme="SCT", meaning="Blood vessel"),
    ),
    LabelSpec(name="finding", kind=LabelKind.BOX, color="#ffe119"),
    LabelSpec(name="landmark", kind=LabelKind.POINT, color="#46f0f0"),
    LabelSpec(name="normal", kind=LabelKind.CLASSIFICATION, color="#3cb44b"),
    LabelSpec(name="abnormal", kind=LabelKind.CLASSIFICATION, color="#e6194b"),
    LabelSpec(name="artefact", kind=LabelKind.CLASSIFICATION, color="#911eb4"),
    LabelSpec(name="comment", kind=LabelKind.NOTE, color="#808080"),
]


@dataclass
class DemoInfo:
    project: str
    images: int
    username: str
    password: str


def dicom_sample_paths() -> list[Path]:
    """The sample DICOM files, from pydicom and the pydicom-data package."""
    if importlib.util.find_spec("data_store") is None:
        raise MissingDependencyError(
            "the demo needs sample images from pydicom-data: pip install 'medlabel[demo]'"
        )
    from pydicom.data import get_testdata_file

    paths = []
    for name, _ in DICOM_SAMPLES:
        path = get_testdata_file(name, download=False)
        if path is None:
            raise MissingDependencyError(f"sample {name} not found; pip install 'medlabel[demo]'")
        paths.append(Path(str(path)))
    return paths


def mni152_path() -> Path:
    """nilearn's MNI152 2009c T1 template (a real brain MRI), read without importing
    nilearn."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("the demo needs nilearn: pip install 'medlabel[demo]'")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    if not path.exists():
        raise MissingDependencyError(f"{path} is missing from the installed nilearn")
    return path


def _password(ctx: Context) -> str:
    path = ctx.settings.home / "demo-login.txt"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(9)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


def setup_demo(ctx: Context, *, log: Callable[[str], None] = lambda _: None) -> DemoInfo:
    """Create the demo administrator and project (idempotent)."""
    password = _password(ctx)
    with ctx.db.read() as s:
        user = s.scalar(select(User).where(User.username == DEMO_USER))
    if user is None:
        create_user(ctx, DEMO_USER, password, Role.ADMIN, full_name="Demo administrator")
    try:
        project = projects_svc.find_project(ctx, DEMO_PROJECT)
        created = False
    except NotFoundError:
        project = projects_svc.create_project(
            ctx,
            None,
            DEMO_PROJECT,
            description="Real sample images shipped with pydicom, pydicom-data and nilearn.",
        )
        projects_svc.add_labels(ctx, None, project.id, DEMO_LABELS)
        created = True
    if created:
        log("importing sample DICOM files (pydicom, pydicom-data)...")
        import_paths(ctx, None, project.id, dicom_sample_paths())
        log("importing the MNI152 brain MRI (nilearn)...")
        import_paths(ctx, None, project.id, [mni152_path()], options=ImportOptions(modality="MR"))
    summary = projects_svc.get_project_summary(ctx, project.id)
    return DemoInfo(DEMO_PROJECT, sum(summary.counts.values()), DEMO_USER, password)
