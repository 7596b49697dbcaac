#!/usr/bin/env bash
# Set up medlabel in ./.venv (idempotent). Usage: scripts/setup.sh [EXTRAS]   e.g. "demo" or "dev"
# Needs Python >= 3.11; on Debian, installs python3-venv when run as root and it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-demo}"
py="${PYTHON:-python3}"

if ! command -v "$py" >/dev/null 2>&1; then
    echo "setup: $py not found; install Python 3.11 or newer (Debian: apt-get install python3)" >&2
    exit 1
fi
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: medlabel needs Python >= 3.11; $py is $("$py" -V 2>&1)" >&2
    exit 1
fi
if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else
        echo "setup: the venv module is missing; install it (Debian: sudo apt-get install python3-venv)" >&2
        exit 1
    fi
fi
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --editable ".[$extras]"
echo "setup: medlabel installed in $(pwd)/.venv with extras [$extras]"
