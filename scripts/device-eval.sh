#!/usr/bin/env bash
# GPU accuracy on the whole of val500 through the qyolo CLI (GPU letterbox, network, GPU decode +
# NMS), compared with the CPU INT8 result of the same calibration caches. val500 (80 MiB of JPEGs)
# does not fit one device call (64 MiB carried), so it runs in parts and the detections are merged
# here with `qyolo eval --results`.
#
#   here:   bash scripts/device-eval.sh prepare K N    # part K of N (1-based): .device-carry/eval/
#   device: bash scripts/device-eval.sh run            # carry [".device-carry/eval"]; writes $OUT/*.json
#           (EVAL_ONLY="int8 int8fp16" limits the runs to those labels; int8fp16all: --all-int8)
#   here:   (copy each call's $OUT files to out/device-eval/)
#           bash scripts/device-eval.sh merge          # mAP over all 500 images vs the CPU INT8 runs
#
# CPU INT8 reference: out/int8ref/<model>-cpu-int8.json from
#   qyolo eval --model M --int8 --cache out/accuracy/M.<algo>.cache --symmetric-activations --data val500 --json ...
# (--symmetric-activations: the GPU's grid; CPU engines default to asymmetric activations.)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE="${1:-run}"
shift || true
# model:calibrator (the best per model in docs/accuracy.md); QYOLO_EVAL_MODELS overrides (prepare, run and merge alike)
MODELS="${QYOLO_EVAL_MODELS:-yolov5n:minmax yolov5s:mse}"

prepare() {
  local part="${1:?part}" parts="${2:?parts}" build="${3:-$ROOT/build}"
  local shared="${QYOLO_SHARED:-$ROOT/../shared}"
  local dst="$ROOT/.device-carry/eval"
  set -e
  # The tools (binary, libraries, models, caches) are the same for every part: kept when
  # REUSE_TOOLS=1 and already packed.
  mkdir -p "$dst"
  rm -f "$dst/val.tar"
  [ "${REUSE_TOOLS:-0}" = 1 ] && [ -s "$dst/tools.tar.xz" ] || rm -f "$dst/tools.tar.xz"
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/lib" "$stage/models" "$stage/calib" "$stage/val/images" "$stage/val/labels"
  cp "$build/qyolo" "$stage/bin/"
  for l in libonnx_proto.so.1 libprotobuf.so.32 libdnnl.so.2 libturbojpeg.so.0 libpng16.so.16 libgomp.so.1 libOpenCL.so.1; do
    cp -L "/usr/lib/x86_64-linux-gnu/$l" "$stage/lib/$l"
  done
  local mc m algo
  for mc in $MODELS; do
    m=${mc%%:*} algo=${mc#*:}
    cp "$shared/models/$m.onnx" "$stage/models/"
    cp "$ROOT/out/accuracy/$m.$algo.cache" "$stage/calib/$m.cache"
    # The equalisation sidecar `qyolo calibrate` writes beside the cache: builds from the cache apply it.
    [ -f "$ROOT/out/accuracy/$m.$algo.cache.equalize" ] && cp "$ROOT/out/accuracy/$m.$algo.cache.equalize" "$stage/calib/$m.cache.equalize"
  done
  # This part's images only (the evaluator walks the annotation file's image list).
  # Part K: every N-th image by file name, starting at K-1.
  local i=0 f b
  for f in $(ls "$shared/data/val500/images" | sort); do
    if [ $((i % parts)) -eq $((part - 1)) ]; then
      cp "$shared/data/val500/images/$f" "$stage/val/images/"
      b="${f%.*}"
      [ -f "$shared/data/val500/labels/$b.txt" ] && cp "$shared/data/val500/labels/$b.txt" "$stage/val/labels/"
    fi
    i=$((i + 1))
  done
  python3 - "$shared/data/val500/instances.json" "$stage/val/images" "$stage/val/instances.json" <<'PYEOF'
import json, os, sys
d = json.load(open(sys.argv[1]))
keep = set(os.listdir(sys.argv[2]))
d['images'] = [im for im in d['images'] if im['file_name'] in keep]
ids = {im['id'] for im in d['images']}
d['annotations'] = [a for a in d['annotations'] if a['image_id'] in ids]
json.dump(d, open(sys.argv[3], 'w'))
PYEOF
  echo "$part" > "$stage/val/part"
  [ -s "$dst/tools.tar.xz" ] || tar -C "$stage" -cf - lib models calib | xz -T0 -6 > "$dst/tools.tar.xz"
  xz -T0 -6 -c "$build/qyolo" > "$dst/qyolo.xz"
  tar -C "$stage" -cf "$dst/val.tar" val
  rm -rf "$stage"
  du -sh "$dst"/*
}

run() {
  local out="${OUT:-$ROOT/device-out}" q=/tmp/qyolo-eval src="$ROOT/.device-carry/eval"
  mkdir -p "$out"
  rm -rf "$q" && mkdir -p "$q"
  xz -dc "$src/tools.tar.xz" | tar -C "$q" -xf - && tar -C "$q" -xf "$src/val.tar" || { echo "cannot unpack $src"; return 1; }
  mkdir -p "$q/bin" && xz -dc "$src/qyolo.xz" > "$q/bin/qyolo" && chmod +x "$q/bin/qyolo" || { echo "no qyolo in $src"; return 1; }
  export LD_LIBRARY_PATH="$q/lib:/usr/lib/x86_64-linux-gnu:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  local part n Q="$q/bin/qyolo"
  part=$(cat "$q/val/part")
  n=$(ls "$q/val/images" | wc -l)
  nvidia-smi -L | head -1
  echo "part $part: $n images"
  local mc m cfg label flags
  for mc in $MODELS; do
    m=${mc%%:*}
    for cfg in "int8::--int8 --cache $q/calib/$m.cache" "int8fp16::--int8 --fp16 --cache $q/calib/$m.cache" \
               "int8fp16all::--int8 --fp16 --all-int8 --cache $q/calib/$m.cache" "fp16::--fp16"; do
      label=${cfg%%::*} flags=${cfg#*::}
      [ -n "${EVAL_ONLY:-}" ] && [[ " $EVAL_ONLY " != *" $label "* ]] && continue
      $Q build --model "$q/models/$m.onnx" --device cuda $flags --out "$q/$m-$label.qengine" > "$out/build.log" 2>&1 ||
        { echo "$m $label build FAILED"; tail -3 "$out/build.log"; continue; }
      $Q eval --engine "$q/$m-$label.qengine" --data "$q/val" --limit "$n" -q \
        --save-results "$out/$m-$label-part$part.json" > "$q/eval.log" 2>&1 ||
        { echo "$m $label eval FAILED"; tail -3 "$q/eval.log"; continue; }
      printf '%-8s %-5s %s | %s\n' "$m" "$label" "$(grep '^mAP50-95' "$q/eval.log")" "$(grep '^speed' "$q/eval.log")"
    done
  done
}

merge() {
  local shared="${QYOLO_SHARED:-$ROOT/../shared}" d="$ROOT/out/device-eval" Q="$ROOT/build/qyolo"
  local mc m label args f
  printf '%-8s %-22s %s\n' model run "mAP50-95 / mAP50 over val500"
  for mc in $MODELS; do
    m=${mc%%:*}
    if [ -f "$ROOT/out/int8ref/$m-cpu-int8.json" ]; then
      printf '%-8s %-22s %s\n' "$m" "cpu int8 (${mc#*:})" "$(grep -o '"map50_95": [0-9.]*\|"map50": [0-9.]*' "$ROOT/out/int8ref/$m-cpu-int8.json" | tr '\n' ' ')"
    fi
    for label in int8 int8fp16 int8fp16all fp16; do
      args=()
      for f in "$d/$m-$label"-part*.json; do [ -f "$f" ] && args+=(--results "$f"); done
      [ ${#args[@]} -eq 0 ] && continue
      $Q eval --data "$shared/data/val500" "${args[@]}" -q --json "$d/$m-$label-merged.json" > "$d/$m-$label-merged.log" 2>&1 ||
        { echo "$m $label merge FAILED"; tail -3 "$d/$m-$label-merged.log"; continue; }
      printf '%-8s %-22s %s (%d parts)\n' "$m" "cuda $label" "$(grep '^mAP50-95' "$d/$m-$label-merged.log")" "$((${#args[@]} / 2))"
    done
  done
}

case "$MODE" in
  prepare) prepare "$@" ;;
  run) run "$@" ;;
  merge) merge "$@" ;;
  *) echo "usage: $0 prepare K N [BUILD_DIR] | run | merge" >&2; exit 2 ;;
esac
