#!/usr/bin/env bash
# Set up medlabel with its development tools and run the whole test suite:
# lint (ruff), types (mypy) and tests (pytest, slow ones included). CI runs this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
