#!/usr/bin/env bash
# On the device machine: the qyolo CLI end to end on the GPU vs the CPU, same images.
#   here:   scripts/device-check.sh prepare build; mkdir -p .device-carry/e2e/val/images;
#           copy N val500 images + instances.json there, build/qyolo and bus.jpg to .device-carry/e2e/
#   device: bash scripts/device-eval.sh   (carry .device-carry)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
C="$ROOT/.device-carry"
q=/tmp/qyolo-carry
mkdir -p "$q" && xz -dc "$C/bundle.tar.xz" | tar -C "$q" -xf -
export LD_LIBRARY_PATH="$q/lib:/usr/lib/x86_64-linux-gnu:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
Q="$C/e2e/qyolo"
out="${OUT:-$ROOT/device-out}"
mkdir -p "$out"
n=$(ls "$C/e2e/val/images" | wc -l)
for m in yolov5n yolov5s; do
  for cfg in "cpu fp32::--device cpu" "cuda fp32::--device cuda" "cuda fp16::--device cuda --fp16"; do
    label=${cfg%%::*}; flags=${cfg#*::}
    $Q eval --model "$q/models/$m.onnx" $flags --data "$C/e2e/val" --limit "$n" -q --json "$out/$m-${label// /-}.json" \
      > "$out/$m-${label// /-}.log" 2>&1 || { echo "$m $label FAILED"; tail -3 "$out/$m-${label// /-}.log"; continue; }
    printf '%-8s %-10s %s | %s\n' "$m" "$label" "$(grep '^mAP50-95' "$out/$m-${label// /-}.log")" \
      "$(grep '^speed' "$out/$m-${label// /-}.log")"
  done
done
$Q detect --device cuda --fp16 --model "$q/models/yolov5s.onnx" --source "$C/e2e/bus.jpg" --out "$out/detect" 2>&1 | tail -7
