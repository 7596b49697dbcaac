#!/bin/sh
# Install the Debian packages that the benchmarks and service tests need:
#   orthanc, orthanc-dicomweb  - a real DICOM server with DICOMweb (nothing is started)
#   dcmtk                      - storescu/echoscu for DICOM networking tests
#   wrk                        - HTTP load generator for benchmarks/bench_slices.py
# Idempotent: runs `apt-get update` and `apt-get install` only when a package is missing.
# Needs root (or sudo). Usage: scripts/install-services.sh [extra-package ...]
set -eu

PACKAGES="orthanc orthanc-dicomweb dcmtk wrk${*:+ $*}"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    echo "install-services: all present ($PACKAGES)"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-services: need root to install:$missing" >&2
    exit 1
fi

echo "install-services: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086  # word splitting of the package list is intended
$SUDO apt-get install -y -qq $missing

# The orthanc package may register a system service; the benchmarks and tests start
# their own servers on free ports, so nothing is started here.
echo "install-services: done"
