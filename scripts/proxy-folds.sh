#!/usr/bin/env bash
# The calibrator choice's proxy over all of coco128 instead of one held-out quarter (issue 14): four
# folds of 32 images (by file name); per fold the other 96 calibrate (one pass, every calibrator,
# with equalisation as `qyolo calibrate` does by default) and the fold scores each cache by the
# proxy of docs/accuracy.md (agreement mAP50-95 with FP32's own detections as labels). Prints each
# calibrator's proxy per fold and the mean. Calibration-side data only: val500 is not read, unless
# VAL500=1, which afterwards reports (chooses nothing) the val500 mAP50-95 of the default calibrator's
# cache of every fold: how much the calibration sample alone moves the result. Per fold it also
# scores the default cache with --symmetric-activations and with --no-equalization (the default's parts).
#   scripts/proxy-folds.sh [path/to/qyolo]      (MODELS, default "yolov5n yolov5s"; OUT_DIR, default out/proxy-folds)
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${1:-./build/qyolo}
SHARED=${QYOLO_SHARED:-../shared}
OUT=${OUT_DIR:-out/proxy-folds}
MODELS=${MODELS:-yolov5n yolov5s}
ALGOS="minmax entropy percentile mse"
DEFAULT_ALGO=mse  # qyolo calibrate's default (tools/cmd_calibrate.cpp)
IMAGES="$SHARED/data/coco128/images"
[ -d "$IMAGES" ] || { echo "proxy-folds: $IMAGES not found (set QYOLO_SHARED)" >&2; exit 1; }
mkdir -p "$OUT"
mapfile -t all < <(ls "$IMAGES" | sort)
n=${#all[@]}
fold_size=$(( (n + 3) / 4 ))
calib_n=$((n - fold_size))  # every fold calibrates on the other images
for k in 0 1 2 3; do  # fold k: images [k * size, (k + 1) * size) held out
  rm -rf "$OUT/fold$k" && mkdir -p "$OUT/fold$k/calib" "$OUT/fold$k/holdout/images"
  for i in "${!all[@]}"; do
    f=${all[$i]}
    if [ $((i / fold_size)) -eq $k ]; then ln -s "$(realpath "$IMAGES/$f")" "$OUT/fold$k/holdout/images/$f"
    else ln -s "$(realpath "$IMAGES/$f")" "$OUT/fold$k/calib/$f"; fi
  done
done
for m in $MODELS; do
  model="$SHARED/models/$m.onnx"
  declare -A sum=()
  for k in 0 1 2 3; do
    d="$OUT/fold$k"
    "$Q" calibrate --model "$model" --calib "$d/calib" --num "$calib_n" --algo minmax,entropy,percentile,mse \
      --cache "$d/$m.{algo}.cache" > "$d/$m.calib.log" 2>&1 || { echo "calibration failed: $d/$m.calib.log"; exit 1; }
    line="$m fold $k:"
    for a in $ALGOS; do
      "$Q" eval --model "$model" --int8 --cache "$d/$m.$a.cache" --data "$d/holdout" --labels-from "$model" \
        --labels-cache "$d/$m.labels.json" -q > "$d/$m.$a.proxy.log" 2>&1 || { echo "proxy failed: $d/$m.$a.proxy.log"; exit 1; }
      p=$(awk '/^mAP50-95/ {print $2}' "$d/$m.$a.proxy.log")
      sum[$a]=$(awk -v s="${sum[$a]:-0}" -v p="$p" 'BEGIN {print s + p}')
      line="$line $a $p"
    done
    echo "$line"
    # The default's two parts, on the default calibrator's cache: the asymmetric grid and the equalisation.
    "$Q" eval --model "$model" --int8 --cache "$d/$m.$DEFAULT_ALGO.cache" --symmetric-activations --data "$d/holdout" \
      --labels-from "$model" --labels-cache "$d/$m.labels.json" -q > "$d/$m.$DEFAULT_ALGO.symmetric.proxy.log" 2>&1 ||
      { echo "proxy failed: $d/$m.$DEFAULT_ALGO.symmetric.proxy.log"; exit 1; }
    "$Q" eval --model "$model" --int8 --cache "$d/$m.$DEFAULT_ALGO.cache" --no-equalization --data "$d/holdout" \
      --labels-from "$model" --labels-cache "$d/$m.labels.json" -q > "$d/$m.$DEFAULT_ALGO.no-equalization.proxy.log" 2>&1 ||
      { echo "proxy failed: $d/$m.$DEFAULT_ALGO.no-equalization.proxy.log"; exit 1; }
    line="$m fold $k default ($DEFAULT_ALGO) $(awk '/^mAP50-95/ {print $2}' "$d/$m.$DEFAULT_ALGO.proxy.log")"
    for v in symmetric no-equalization; do
      line="$line, $v $(awk '/^mAP50-95/ {print $2}' "$d/$m.$DEFAULT_ALGO.$v.proxy.log")"
    done
    echo "$line"
  done
  line="$m mean of 4 folds:"
  for a in $ALGOS; do line="$line $a $(awk -v s="${sum[$a]}" 'BEGIN {printf "%.4f", s / 4}')"; done
  echo "$line"
  unset sum
done
if [ "${VAL500:-0}" = 1 ]; then
  for m in $MODELS; do
    line="$m val500 of the default ($DEFAULT_ALGO) cache per fold:"
    for k in 0 1 2 3; do
      "$Q" eval --model "$SHARED/models/$m.onnx" --int8 --cache "$OUT/fold$k/$m.$DEFAULT_ALGO.cache" --data "$SHARED/data/val500" \
        -q > "$OUT/fold$k/$m.$DEFAULT_ALGO.val500.log" 2>&1 || { echo "val500 failed: $OUT/fold$k/$m.$DEFAULT_ALGO.val500.log"; exit 1; }
      line="$line $(awk '/^mAP50-95/ {print $2}' "$OUT/fold$k/$m.$DEFAULT_ALGO.val500.log")"
    done
    echo "$line"
  done
fi
