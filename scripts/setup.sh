#!/usr/bin/env bash
# Fresh Debian 12: install dependencies, build everything, run the main job on ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
scripts/demo.sh
