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
