#!/usr/bin/env bash
# CPU speed table (issue 13): qyolo FP32, qyolo INT8 and ONNX Runtime FP32 (the peer) on the same
# models, batches and threads, in one run; medians of ITERS runs each. Prints the machine's ISA
# (what /proc/cpuinfo offers and what oneDNN dispatches to) and the load, since timings on a
# shared machine move with it.
#
#   scripts/cpu-bench.sh [--models "yolov5n yolov5s"] [--batches "1 8"] [--iters 20] [--rounds 3]
#                        [--profile] [--baseline OTHER_QYOLO] [--cpu-time]
#
# --rounds R: each row is R rounds of (qyolo FP32, ONNX Runtime FP32, qyolo INT8[, baseline]), the
# order rotating from round to round; a time cell is the median of the R rounds' medians and a ratio
# the median of the R rounds' ratios (each taken within one round, so a machine whose speed changes
# between minutes, as a shared 2-vCPU VM does, moves both sides of it), with the rounds' range.
#
# --cpu-time: for a loaded (shared) machine, where wall times say little: one thread everywhere,
# and each cell is CPU time (user + sys) per run, that of ITERS + 5 timed runs minus that of 5,
# over ITERS (set-up, warm-up and the first runs cancel out).
#
# --baseline: also times INT8 with another qyolo binary (e.g. one built from an older commit), in
# the same run, as one more column.
#
# --profile: instead of the table, one INT8 run per model/batch with ONEDNN_VERBOSE=1: the oneDNN
# implementation of every primitive that executes (counted), then `qyolo bench --dump-profile`
# (per layer: time, int8 in/out of the int8 plan, implementation).
#
# Needs: build/qyolo (scripts/build.sh), $QYOLO_SHARED (default ../shared) with models/ and
# data/coco128, and onnxruntime-node for the peer (set-up line in shared/bench/ort_cpu_peer.js;
# ORT_PEER_DIR, default ~/.ort-peer). INT8 caches: `qyolo calibrate` on coco128 (128 images,
# minmax for yolov5n, mse for yolov5s: the issue's caches), made once into $CACHE_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${QYOLO_SHARED:-../shared}
QYOLO=${QYOLO:-build/qyolo}
ORT_PEER_DIR=${ORT_PEER_DIR:-$HOME/.ort-peer}
CACHE_DIR=${CACHE_DIR:-build/cpu-bench}
MODELS="yolov5n yolov5s"
BATCHES="1 8"
ITERS=20
ROUNDS=3
PROFILE=0
CPU_TIME=0
BASELINE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --models) MODELS=$2; shift 2 ;;
    --batches) BATCHES=$2; shift 2 ;;
    --iters) ITERS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --profile) PROFILE=1; shift ;;
    --baseline) BASELINE=$2; shift 2 ;;
    --cpu-time) CPU_TIME=1; shift ;;
    *) echo "cpu-bench: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -x "$QYOLO" ] || { echo "cpu-bench: $QYOLO not found (run scripts/build.sh)" >&2; exit 1; }
[ -d "$SHARED/models" ] || { echo "cpu-bench: $SHARED/models not found (set QYOLO_SHARED)" >&2; exit 1; }
THREADS=${THREADS:-$(nproc)}
[ "$CPU_TIME" = 1 ] && THREADS=1
export OMP_NUM_THREADS=$THREADS
mkdir -p "$CACHE_DIR"

algo_for() { [ "$1" = yolov5n ] && echo minmax || echo mse; }
# The dynamic exports take every batch. The cache is made on the static export (batch 1, same
# tensor names) and serves both.
model_file() { echo "$SHARED/models/$1-dynamic.onnx"; }
cache_for() {
  local m=$1 algo
  algo=$(algo_for "$m")
  local c="$CACHE_DIR/$m-$algo.cache"
  if [ ! -s "$c" ]; then
    echo "calibrating $m ($algo, 128 coco128 images) -> $c" >&2
    "$QYOLO" calibrate --model "$SHARED/models/$m.onnx" --calib "$SHARED/data/coco128" --algo "$algo" --num 128 \
      --cache "$c" >&2
  fi
  echo "$c"
}
qyolo_median() {  # binary model batch [int8 args...]: median ms of `qyolo bench`
  local bin=$1 m=$2 b=$3
  shift 3
  "$bin" bench --model "$(model_file "$m")" "$@" --shapes "images:${b}x3x640x640" --warmup 3 \
    --iterations "$ITERS" | sed -n 's/^latency ms:.* median \([0-9.]*\).*/\1/p'
}
cpu_seconds() {  # command...: user + sys CPU seconds it took
  local TIMEFORMAT='%U %S'
  { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{ print $1 + $2 }'
}
per_run_ms() {  # CPU seconds of ITERS + 5 runs, of 5 runs -> ms per run
  awk -v a="$1" -v c="$2" -v n="$ITERS" 'BEGIN { printf "%.1f", (a - c) / n * 1000 }'
}
qyolo_cpu_ms() {  # binary model batch [int8 args...]: CPU ms per run of `qyolo bench`
  local bin=$1 m=$2 b=$3
  shift 3
  local args=(bench --model "$(model_file "$m")" "$@" --shapes "images:${b}x3x640x640" --warmup 1)
  per_run_ms "$(cpu_seconds "$bin" "${args[@]}" --iterations $((ITERS + 5)))" \
    "$(cpu_seconds "$bin" "${args[@]}" --iterations 5)"
}
ort_cpu_ms() {
  local peer=(node "$SHARED/bench/ort_cpu_peer.js" "$(model_file "$1")" --batch "$2" --threads 1)
  export NODE_PATH="$ORT_PEER_DIR/node_modules"
  per_run_ms "$(cpu_seconds "${peer[@]}" --iters $((ITERS + 5)))" "$(cpu_seconds "${peer[@]}" --iters 5)"
}
ort_median() {
  NODE_PATH="$ORT_PEER_DIR/node_modules" node "$SHARED/bench/ort_cpu_peer.js" "$(model_file "$1")" --batch "$2" \
    --iters "$ITERS" --threads "$THREADS" | sed -n 's/.*"median_ms":\([0-9.]*\).*/\1/p'
}
if [ "$CPU_TIME" = 1 ]; then  # the same table, in CPU time
  qyolo_median() { qyolo_cpu_ms "$@"; }
  ort_median() { ort_cpu_ms "$@"; }
fi

echo "machine: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | awk 'NR == 1'), $(nproc --all) cores, threads $THREADS"
flags=$(grep -m1 '^flags' /proc/cpuinfo)
isa=""
for f in avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16; do
  [[ " $flags " == *" $f "* ]] && isa="$isa $f"
done
echo "cpu flags:$isa"
first=${MODELS%% *}
onednn_isa=$(ONEDNN_VERBOSE=1 "$QYOLO" bench --model "$(model_file "$first")" --shapes images:1x3x64x64 \
  --warmup 0 --iterations 1 2>&1 | sed -n 's/.*isa:\([^,]*\).*/\1/p' | awk 'NR == 1')
echo "oneDNN dispatches to: ${onednn_isa:-unknown}"
echo "load: $(uptime | sed 's/.*load average/load average/')"

if [ "$PROFILE" = 1 ]; then
  for m in $MODELS; do
    cache=$(cache_for "$m")
    for b in $BATCHES; do
      echo
      echo "=== $m batch $b INT8: oneDNN implementations executed in one run (count) ==="
      ONEDNN_VERBOSE=1 "$QYOLO" bench --model "$(model_file "$m")" --int8 --cache "$cache" \
        --shapes "images:${b}x3x640x640" --warmup 0 --iterations 1 2>&1 |
        awk -F, '$2 == "exec" { print $4, $5, $7 }' | sort | uniq -c | sort -rn
      "$QYOLO" bench --model "$(model_file "$m")" --int8 --cache "$cache" --shapes "images:${b}x3x640x640" \
        --warmup 1 --iterations 3 --dump-profile
    done
  done
  exit 0
fi

echo
extra_head="" extra_rule=""
[ -n "$BASELINE" ] && extra_head=" int8 with --baseline ms |" extra_rule=" --- |"
echo "| model | batch | qyolo fp32 ms | ONNX Runtime fp32 ms | qyolo int8 ms | int8 vs our fp32 | int8 vs ORT fp32 |$extra_head"
echo "| --- | --- | --- | --- | --- | --- | --- |$extra_rule"
ratio() { [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }' || echo ""; }
median() { [ $# -gt 0 ] && printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }' || echo "-"; }
range() { [ $# -gt 1 ] && printf ' (%s-%s)' "$(printf '%s\n' "$@" | sort -g | head -1)" "$(printf '%s\n' "$@" | sort -g | tail -1)" || true; }
ratio_cell() { [ $# -gt 0 ] && echo "$(median "$@")x$(range "$@")" || echo "-"; }
for m in $MODELS; do
  cache=$(cache_for "$m")
  for b in $BATCHES; do
    fs=() os=() is=() bs=() rf=() ro=()
    for ((r = 0; r < ROUNDS; r++)); do
      f="" o="" i="" x=""
      for k in 0 1 2 3; do  # the order rotates from round to round
        case $(((k + r) % 4)) in
          0) f=$(qyolo_median "$QYOLO" "$m" "$b") ;;
          1) o=$(ort_median "$m" "$b" || true) ;;
          2) i=$(qyolo_median "$QYOLO" "$m" "$b" --int8 --cache "$cache") ;;
          3) [ -n "$BASELINE" ] && x=$(qyolo_median "$BASELINE" "$m" "$b" --int8 --cache "$cache") ;;
        esac
      done
      fs+=("$f") is+=("$i")
      [ -n "$o" ] && os+=("$o") && ro+=("$(ratio "$i" "$o")")
      [ -n "$x" ] && bs+=("$x")
      rf+=("$(ratio "$i" "$f")")
    done
    extra=""
    [ -n "$BASELINE" ] && extra=" $(median "${bs[@]}") |"
    echo "| $m ($(algo_for "$m") cache) | $b | $(median "${fs[@]}") | $(median "${os[@]}") | $(median "${is[@]}") |" \
      "$(ratio_cell "${rf[@]}") | $(ratio_cell "${ro[@]}") |$extra"
  done
done
echo
if [ "$CPU_TIME" = 1 ]; then
  echo "(one-thread CPU time per run: ($((ITERS + 5)) runs - 5 runs) / $ITERS, 640x640, median over $ROUNDS rounds;"
  echo " ratios: how many times less int8 takes, the median of the rounds' ratios and their range;"
else
  echo "(each time: the median over $ROUNDS rounds of medians of $ITERS runs after 3 warm-ups, 640x640, $THREADS threads;"
  echo " ratios: how many times faster int8 is, the median of the rounds' ratios and their range;"
fi
echo " load after the run: $(uptime | sed 's/.*load average/load average/'))"
