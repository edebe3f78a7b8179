#!/usr/bin/env bash
# Installs missing dependencies, builds everything (CUDA compile-only without a GPU) and runs the
# CPU test suite. Tests needing ../shared skip with a message when it is absent (QYOLO_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" -j"$(nproc)" --output-on-failure --timeout 1500
# The Python API (issue 15): pytest on build/python's _qyolo and python/qyolo, Debian's python3.
PYTHONPATH="${BUILD_DIR:-build}/python:python" QYOLO_CLI="${BUILD_DIR:-build}/qyolo" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python
