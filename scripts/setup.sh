#!/usr/bin/env bash
# Set up medlabel in ./.venv (idempotent) and build the web UI.
# Usage: scripts/setup.sh [EXTRAS]   e.g. "demo" or "dev"
# Needs Python >= 3.11 and Node.js >= 18 with npm; on Debian, run as root, it installs
# python3-venv, nodejs and npm when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-demo}"
py="${PYTHON:-python3}"

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing $* with apt-get" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "setup: please install: $* (Debian: sudo apt-get install $*)" >&2
        exit 1
    fi
}

if ! command -v "$py" >/dev/null 2>&1; then
    echo "setup: $py not found; install Python 3.11 or newer (Debian: apt-get install python3)" >&2
    exit 1
fi
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: medlabel needs Python >= 3.11; $py is $("$py" -V 2>&1)" >&2
    exit 1
fi
"$py" -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_install python3-venv
command -v npm >/dev/null 2>&1 || apt_install nodejs npm

# the browser UI: NiiVue from npm (package-lock.json), our modules as they are
(cd web && npm ci --no-audit --no-fund --loglevel=error && node build.mjs)

if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --editable ".[$extras]"
echo "setup: medlabel installed in $(pwd)/.venv with extras [$extras]"
