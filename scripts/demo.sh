#!/usr/bin/env bash
# Set up medlabel and start the demo: real sample images, prints the URL and the login.
# Extra arguments go to `medlabel demo` (e.g. --port 8080 --host 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo
exec .venv/bin/medlabel demo "$@"
