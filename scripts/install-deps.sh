#!/usr/bin/env bash
# Installs qyolo's build and test dependencies from Debian 12 (apt only).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config
      libonnx-dev libprotobuf-dev protobuf-compiler libdnnl-dev
      libturbojpeg0-dev libpng-dev nlohmann-json3-dev libcli11-dev
      libgtest-dev libonnx-testdata
      ocl-icd-opencl-dev
      python3-dev python3-pybind11 python3-numpy python3-pytest python3-matplotlib
      clang libclang-rt-14-dev libomp-dev llvm-14)  # sanitizer/fuzz build (scripts/sanitize-check.sh)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Optional (QYOLO_ORT_REFERENCE=1): ONNX Runtime from npm (onnxruntime-node) for the tests that
# compare with ONNX Runtime at run time (tests/ort_reference.h); without it they skip.
if [ "${QYOLO_ORT_REFERENCE:-0}" = 1 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # A node/npm already on PATH (e.g. NodeSource's nodejs, which bundles npm and conflicts with
  # Debian's npm package) is used as it is.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  mkdir -p ~/.ort-peer
  [ -f ~/.ort-peer/package.json ] || echo '{"name":"ort-peer","private":true}' > ~/.ort-peer/package.json
  [ -d ~/.ort-peer/node_modules/onnxruntime-node ] || (cd ~/.ort-peer && npm install --ignore-scripts onnxruntime-node@1.30.0)
fi
