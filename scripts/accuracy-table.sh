#!/usr/bin/env bash
# Produces docs/accuracy.md: val500 mAP of FP32 vs INT8 (each calibrator, calibrated on coco128)
# for yolov5n and yolov5s, plus the ONNX Runtime Q/DQ model. One command:
#   scripts/accuracy-table.sh [path/to/qyolo]
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${1:-./build/qyolo}
SHARED=${QYOLO_SHARED:-../shared}
OUT=${OUT_DIR:-out/accuracy}
DATA="$SHARED/data/val500"
mkdir -p "$OUT"
[ -d "$DATA" ] || { echo "accuracy-table: $DATA not found (set QYOLO_SHARED)" >&2; exit 1; }

rows=()
eval_row() {  # label, then qyolo eval arguments
  local label=$1; shift
  local log="$OUT/$(echo "$label" | tr ' /' '__').log"
  "$Q" eval --data "$DATA" -q "$@" >"$log" 2>&1 || { echo "FAILED: $label (see $log)" >&2; rows+=("| $label | failed | | |"); return; }
  local line
  line=$(grep '^mAP50-95' "$log")
  rows+=("| $label | $(echo "$line" | awk '{print $2}') | $(echo "$line" | awk '{print $4}') | $(echo "$line" | awk '{print $6}') |")
  echo "$label: $line"
}

for m in yolov5n yolov5s; do
  model="$SHARED/models/$m.onnx"
  eval_row "$m FP32" --model "$model"
  for algo in entropy minmax percentile mse; do
    cache="$OUT/$m.$algo.cache"
    "$Q" calibrate --model "$model" --calib "$SHARED/data/coco128" --algo "$algo" --num 128 --cache "$cache" >"$OUT/$m.$algo.calib.log" 2>&1
    eval_row "$m INT8 $algo" --model "$model" --int8 --cache "$cache"
  done
  # Mixed precision as TensorRT users deploy YOLO: the 3 Detect-head convs (model.24.m.*) in float.
  for algo in minmax mse; do
    eval_row "$m INT8 $algo, Detect-head convs float" --model "$model" --int8 --cache "$OUT/$m.$algo.cache" \
      --float-layers '^/model\.24/'
  done
done
qdq="$SHARED/models/yolov5n-ort-qdq.onnx"
eval_row "yolov5n ORT Q/DQ (scales as given)" --model "$qdq" --int8
eval_row "yolov5n ORT Q/DQ, Detect head Q/DQ in float" --model "$qdq" --int8 --float-layers '^/model\.24/|^output0'

{
  echo "# Accuracy: FP32 vs INT8 on val500"
  echo
  echo "Produced by \`scripts/accuracy-table.sh\` on $(date -u +%Y-%m-%d) ($(nproc) CPU cores, qyolo CPU backend)."
  echo "COCO mAP on \`data/val500\` (500 val2017 images), square 640 letterbox, conf 0.001, IoU 0.65,"
  echo "max 300 detections, multi-label NMS. INT8 caches: 128 coco128 images at 1x3x640x640."
  echo "INT8 = every Conv in int8 (per-tensor activation scale from the cache, per-channel weights,"
  echo "int32 accumulation); other ops in float (see src/quant/quantize_graph.h)."
  echo
  echo "| model / precision | mAP50-95 | mAP50 | mAP75 |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Reference (MODELS.md, ultralytics val.py, rectangular batches): yolov5n 0.283 / 0.459, yolov5s 0.380 / 0.562."
} >docs/accuracy.md
cat docs/accuracy.md
