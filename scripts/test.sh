#!/usr/bin/env bash
# Set up medlabel with its development tools and run the whole test suite:
# lint (ruff), types (mypy) and tests (pytest, slow and browser ones included).
# CI runs this (.ci/run). Browser tests use Debian's Chromium, installed here if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing Chromium for the browser tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
