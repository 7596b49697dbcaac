"""Shared fixtures: a fresh medlabel home per test, the app, logged-in clients and
real sample files from installed packages (pydicom, pydicom-data, nibabel)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file

from medlabel.core.settings import Settings
from medlabel.security.roles import Role
from medlabel.server.app import create_app
from medlabel.services.context import Context, open_context
from medlabel.services.users import create_user
from tests.support.orthanc import orthanc, orthanc_auth  # noqa: F401  (session Orthancs, on demand)
from tests.support.postgres import (  # noqa: F401  (one PostgreSQL per session, on demand)
    new_postgres_database,
    postgres,
    postgres_database,
    suite_on_postgres,
)
from tests.support.seaweedfs import (  # noqa: F401  (one SeaweedFS per session, on demand)
    BUCKET,
    blobs_in,
    seaweedfs,
    suite_on_s3,
)

PASSWORD = "correct horse battery"


def sample_file(name: str) -> Path:
    """A file from pydicom's test files or the pydicom-data package."""
    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom test file {name} is not installed"
    return Path(str(path))


@pytest.fixture(autouse=True)
def _database_per_test(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``MEDLABEL_TEST_DB=postgresql``, every test that has a ``tmp_path`` (where its
    medlabel home lives) gets a fresh PostgreSQL database through ``MEDLABEL_DATABASE_URL``,
    so each ``Settings(home=...)`` of the suite — fixtures, CLI runs, restarted contexts —
    uses it unchanged; by default they use SQLite files in their home."""
    if suite_on_postgres() and "tmp_path" in request.fixturenames:
        monkeypatch.setenv("MEDLABEL_DATABASE_URL", request.getfixturevalue("postgres_database"))


@pytest.fixture(autouse=True)
def _blobs_per_test(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``MEDLABEL_TEST_BLOBS=s3``, every test that has a ``tmp_path`` keeps its blobs
    in SeaweedFS, under a prefix of its own (through ``MEDLABEL_BLOB_URL``)."""
    if suite_on_s3() and "tmp_path" in request.fixturenames:
        blobs_in(request.getfixturevalue("seaweedfs"), monkeypatch)


@pytest.fixture
def new_blob_url(request: pytest.FixtureRequest) -> Callable[[], str | None]:
    """Factory for a test needing a second, separate blob store: ``Settings(home=other,
    blob_url=new_blob_url())`` (None, i.e. a folder in that home, unless
    ``MEDLABEL_TEST_BLOBS=s3``: then a new prefix in SeaweedFS)."""
    if not suite_on_s3():
        return lambda: None
    server = request.getfixturevalue("seaweedfs")
    return lambda: f"s3://{BUCKET}/{server.new_prefix()}"


@pytest.fixture
def new_database(request: pytest.FixtureRequest) -> Callable[[], str | None]:
    """Factory for a test needing a second, separate database: ``Settings(home=other,
    database_url=new_database())`` (None, i.e. SQLite in that home, unless on PostgreSQL)."""
    if not suite_on_postgres():
        return lambda: None
    return request.getfixturevalue("new_postgres_database")  # type: ignore[no-any-return]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", login_max_failures=5, preload_engines=[])


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    context = open_context(settings)
    yield context
    context.close()


@pytest.fixture
def app_client(settings: Settings, ctx: Context) -> Iterator[TestClient]:
    app = create_app(settings, ctx=ctx)
    with TestClient(app, base_url="http://testserver") as client:
        yield client


def _login(client: TestClient, username: str) -> TestClient:
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


@pytest.fixture
def admin(ctx: Context, settings: Settings) -> Iterator[TestClient]:
    """A client logged in as an administrator."""
    create_user(ctx, "admin", PASSWORD, Role.ADMIN)
    with TestClient(create_app(settings, ctx=ctx), base_url="http://testserver") as client:
        yield _login(client, "admin")


@pytest.fixture
def make_client(ctx: Context, settings: Settings) -> Iterator[object]:
    """Factory: ``make_client("alice", Role.ANNOTATOR)`` → a logged-in client."""
    clients: list[TestClient] = []

    def make(username: str, role: Role = Role.ANNOTATOR) -> TestClient:
        create_user(ctx, username, PASSWORD, role)
        client = TestClient(create_app(settings, ctx=ctx), base_url="http://testserver")
        client.__enter__()
        clients.append(client)
        return _login(client, username)

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def ct_series(tmp_path: Path) -> Path:
    """A real 5-slice CT series (pydicom's dicomdirtests CT5N folder), copied."""
    src = sample_file("CT_small.dcm").parent / "dicomdirtests" / "98892001" / "CT5N"
    dest = tmp_path / "ct5n"
    shutil.copytree(src, dest)
    return dest


@pytest.fixture
def nifti_file(tmp_path: Path) -> Path:
    """nibabel's real anatomical MRI test volume."""
    import nibabel.testing

    src = Path(nibabel.testing.data_path) / "anatomical.nii"
    dest = tmp_path / "anatomical.nii"
    shutil.copy(src, dest)
    return dest


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MEDLABEL_TEST", "1")
