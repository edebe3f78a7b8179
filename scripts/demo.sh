#!/usr/bin/env bash
# The main job on the shared data: detect on the samples, calibrate INT8, evaluate FP32 and INT8
# mAP of yolov5n on val500. Needs ../shared (or QYOLO_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${QYOLO_SHARED:-../shared}
if [ ! -d "$SHARED/models" ] || [ ! -d "$SHARED/data/val500" ]; then
  echo "qyolo demo: shared data not found at '$SHARED' (set QYOLO_SHARED to the folder with models/ and data/)." >&2
  echo "The build succeeded; run ./build/qyolo --help to use it on your own models." >&2
  exit 0
fi
Q=./build/qyolo
OUT=${OUT_DIR:-out}
mkdir -p "$OUT"
$Q detect --model "$SHARED/models/yolov5s.onnx" --source "$SHARED/data/samples" --out "$OUT/detect"
$Q calibrate --model "$SHARED/models/yolov5n.onnx" --calib "$SHARED/data/coco128" --algo mse --num 128 --cache "$OUT/yolov5n.mse.cache"
$Q eval --model "$SHARED/models/yolov5n.onnx" --data "$SHARED/data/val500" --json "$OUT/yolov5n.fp32.json" -q
$Q eval --model "$SHARED/models/yolov5n.onnx" --int8 --cache "$OUT/yolov5n.mse.cache" --data "$SHARED/data/val500" --json "$OUT/yolov5n.int8.json" -q
echo "annotated images: $OUT/detect/  summaries: $OUT/*.json"
