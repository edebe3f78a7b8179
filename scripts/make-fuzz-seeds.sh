#!/usr/bin/env bash
# Seed corpora for the fuzz targets (issue 17), written to <out>/<target>/ and never committed:
# the generated part comes from fuzz_make_seeds (test-builder models, engines made from them,
# calibration files, images, shape specs), the rest from ../shared (QYOLO_SHARED) when present:
# the smallest shared ONNX model, the sample images and a few coco128 images.
#   usage: scripts/make-fuzz-seeds.sh <fuzz build dir> <out dir>
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: make-fuzz-seeds.sh <fuzz build dir> <out dir>}
out=${2:?usage: make-fuzz-seeds.sh <fuzz build dir> <out dir>}
shared=${QYOLO_SHARED:-../shared}
rm -rf "$out"
mkdir -p "$out"
ASAN_OPTIONS=detect_leaks=0 "$build/fuzz/fuzz_make_seeds" "$out"
if [ -d "$shared" ]; then
  # Large models make each run slow; one small real model keeps real-world structure in the corpus.
  for m in yolov5n-ort-qdq.onnx; do
    [ -f "$shared/models/$m" ] && cp "$shared/models/$m" "$out/onnx/shared-$m"
  done
  for f in "$shared"/data/samples/*.jpg; do [ -f "$f" ] && cp "$f" "$out/image/shared-$(basename "$f")"; done
  # the six smallest coco128 images (small inputs keep the fuzzer fast). awk, not head: head exits
  # after six lines and, under pipefail, sort's SIGPIPE (exit 141) would fail the script.
  find "$shared/data/coco128" -name '*.jpg' -printf '%s %p\n' 2>/dev/null | sort -n | awk 'NR <= 6' |
    while read -r _ f; do cp "$f" "$out/image/coco128-$(basename "$f")"; done
else
  echo "make-fuzz-seeds: $shared absent, generated seeds only" >&2
fi
for d in "$out"/*/; do echo "make-fuzz-seeds: $(basename "$d"): $(ls "$d" | wc -l) seeds"; done
