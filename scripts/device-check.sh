#!/usr/bin/env bash
# CUDA backend check on the GPU machine: GPU tests, compute-sanitizer on a short run, the engine
# benchmark and the PyTorch peer (../shared/bench/torch_peer.py) side by side in one table.
#
# Two halves, because the device machine has no ONNX/oneDNN libraries and no ../shared:
#
#   scripts/device-check.sh prepare [BUILD_DIR]
#       here (the build machine): builds qyolo_gpu_tests and bench_gpu in BUILD_DIR (default
#       build-cuda) and packs them, the non-system shared libraries they need, the models, the
#       reference input and torch_peer.py into .device-carry/bundle.tar.xz (git-ignored; < 64 MiB).
#
#   scripts/device-check.sh run [tests|sanitizer|ort|bench|ncu|ncuconv|all]...   (default: all; ncu, ncuconv and probe only when named)
#       on the device machine, from the repository root, with .device-carry carried. Unpacks to
#       /tmp/qyolo-carry, points QYOLO_SHARED there, writes logs to $OUT (or ./device-out).
#
# The lead's device call (one command, carry [".device-carry"]):
#   bash scripts/device-check.sh run all
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARRY="$ROOT/.device-carry"
MODE="${1:-run}"
shift || true

prepare() {
  local build
  build=$(realpath -m "${1:-$ROOT/build-cuda}")
  local shared="${QYOLO_SHARED:-$ROOT/../shared}"
  set -e
  if [ ! -f "$build/build.ninja" ]; then
    # CMake 3.25 does not know nvcc's C++20 flag; tell it.
    cmake -S "$ROOT" -B "$build" -G Ninja -DQYOLO_CUDA=AUTO \
      -DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20 -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20
  fi
  ninja -C "$build" qyolo_gpu_tests qyolo
  # (grep without -q: under pipefail an early-exiting grep makes the pipeline fail on SIGPIPE)
  if ninja -C "$build" -t targets all 2>/dev/null | grep '^bench_gpu:' >/dev/null; then
    ninja -C "$build" bench_gpu bench_cudnn_int8
  else
    # No CMake target yet: compile and link like qyolo_gpu_tests.
    local flags
    flags=$(ninja -C "$build" -t commands qyolo_gpu_tests | grep -m1 'test_cuda_model.cpp.o -c' |
            sed -e 's/ -MD .*//' -e 's/^[^ ]* //' -e 's/-DQYOLO_VERSION_STRING=[^ ]*//')
    local link
    link=$(ninja -C "$build" -t commands qyolo_gpu_tests | tail -1 | sed -e 's/^: && //' -e 's/ && :$//' |
           sed -e 's/ CMakeFiles[^ ]*\.o//g' -e 's/-o qyolo_gpu_tests//' -e 's#[^ ]*libgtest[^ ]*\.a##g' -e 's/^[^ ]* //')
    (cd "$build" && c++ $flags -o bench_gpu.o -c "$ROOT/bench/bench_gpu.cpp" && c++ -O3 bench_gpu.o -o bench_gpu $link)
  fi
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/lib" "$stage/models" "$stage/reference" "$stage/bench"
  cp "$build/qyolo_gpu_tests" "$build/bench_gpu" "$stage/bin/"
  [ -x "$build/qyolo" ] && cp "$build/qyolo" "$stage/bin/"
  [ -x "$build/bench_cudnn_int8" ] && cp "$build/bench_cudnn_int8" "$stage/bin/"
  for l in libonnx_proto.so.1 libprotobuf.so.32 libdnnl.so.2 libturbojpeg.so.0 libpng16.so.16 libgomp.so.1 \
           libOpenCL.so.1; do
    cp -L "/usr/lib/x86_64-linux-gnu/$l" "$stage/lib/$l"
  done
  cp "$shared/models/yolov5n.onnx" "$shared/models/yolov5s.onnx" "$stage/models/"
  cp "$shared/reference/bus_input.npy" "$stage/reference/"
  mkdir -p "$stage/data/samples"
  cp "$shared/data/samples/bus.jpg" "$shared/data/samples/zidane.jpg" "$stage/data/samples/"
  cp "$shared/models/yolov5n-dynamic.onnx" "$stage/models/"
  # YOLOv8n (tests/gpu/test_cuda_yolov8.cpp): the 3.4 MB QOperator file; `run` exports its float
  # graph there (12 MB, which the bundle need not carry).
  cp "$shared/models/yolov8n-ort-qlinear.onnx" "$stage/models/"
  cp "$shared/bench/torch_peer.py" "$stage/bench/"
  # INT8 scales for the bench (qyolo calibrate on coco128: min-max for yolov5n, mse for yolov5s,
  # the best per model in docs/accuracy.md); written here by scripts/accuracy-table.sh.
  mkdir -p "$stage/calib"
  local m algo
  for m in yolov5n:minmax yolov5s:mse; do
    algo=${m#*:}; m=${m%%:*}
    local cache="$ROOT/out/accuracy/$m.$algo.cache"
    if [ ! -f "$cache" ]; then
      mkdir -p "$(dirname "$cache")"
      "$build/qyolo" calibrate --model "$shared/models/$m.onnx" --calib "$shared/data/coco128/images" --algo "$algo" \
        --cache "$cache" || { echo "calibration of $m failed"; return 1; }
    fi
    cp "$cache" "$stage/calib/$m.cache"
    # Its equalisation sidecar (qyolo calibrate's default): INT8 builds from the cache apply it.
    if [ -f "$cache.equalize" ]; then cp "$cache.equalize" "$stage/calib/$m.cache.equalize"; fi
  done
  mkdir -p "$CARRY"
  rm -f "$CARRY/bundle.tar.xz"
  tar -C "$stage" -cf - . | xz -T0 -6 > "$CARRY/bundle.tar.xz"
  rm -rf "$stage"
  ls -la "$CARRY"
  du -sh "$CARRY"
}

run() {
  local phases=("$@")
  [ ${#phases[@]} -eq 0 ] && phases=(all)
  has() { local p; for p in "${phases[@]}"; do { [ "$p" = "$1" ] || { [ "$p" = all ] && [ "$1" != ncu ] && [ "$1" != ncuconv ] && [ "$1" != probe ]; }; } && return 0; done; return 1; }
  local out="${OUT:-$ROOT/device-out}"
  mkdir -p "$out"
  local q=/tmp/qyolo-carry
  rm -rf "$q" && mkdir -p "$q"
  xz -dc "$CARRY/bundle.tar.xz" | tar -C "$q" -xf - || { echo "cannot unpack $CARRY/bundle.tar.xz"; return 1; }
  local cudnn_dir
  cudnn_dir=$(dirname "$( (ls /usr/local/cuda/lib64/libcudnn.so.9 /usr/lib/x86_64-linux-gnu/libcudnn.so.9 2>/dev/null;
                          find / -name 'libcudnn.so.9' -not -path '/proc/*' 2>/dev/null) | head -1)")
  export LD_LIBRARY_PATH="$q/lib:${cudnn_dir}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  export QYOLO_SHARED="$q"
  nvidia-smi -L 2>&1 | head -2
  echo "cuDNN from: $cudnn_dir"
  ldd "$q/bin/qyolo_gpu_tests" | grep -i "not found" && echo "MISSING LIBRARIES" || true
  local py=python3
  for n in 4 32; do $py "$ROOT/tests/gpu/rebatch_onnx.py" "$q/models/yolov5n.onnx" "$q/models/yolov5n-b$n.onnx" $n; done
  $py "$ROOT/tests/gpu/rebatch_onnx.py" "$q/models/yolov5s.onnx" "$q/models/yolov5s-b32.onnx" 32
  if [ -x "$q/bin/qyolo" ] && [ -f "$q/models/yolov8n-ort-qlinear.onnx" ]; then
    "$q/bin/qyolo" export-float -m "$q/models/yolov8n-ort-qlinear.onnx" -o "$q/models/yolov8n-float.onnx" >/dev/null ||
      echo "export-float of yolov8n-ort-qlinear.onnx failed: the yolov8n GPU tests will skip"
  fi

  local rc=0
  if has tests; then
    # QYOLO_TESTS_FIRST: a filter run before the rest (the tests of new work), excluded from it.
    if [ -n "${QYOLO_TESTS_FIRST:-}" ]; then
      echo "== qyolo_gpu_tests (first: $QYOLO_TESTS_FIRST)"
      timeout "${QYOLO_TESTS_FIRST_TIMEOUT:-200}" "$q/bin/qyolo_gpu_tests" --gtest_color=no --gtest_filter="$QYOLO_TESTS_FIRST" 2>&1 |
        tee "$out/gpu_tests_first.log" |
        grep -E '^\[ *(FAILED|PASSED|SKIPPED) *\]|^\[(fp|yolov|NMS)|^NMS|^image stem|Failure|error|Expected|Which is|max abs|: ' | head -80
      [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    fi
    echo "== qyolo_gpu_tests"
    timeout "${QYOLO_TESTS_TIMEOUT:-400}" "$q/bin/qyolo_gpu_tests" --gtest_color=no \
      --gtest_filter="${QYOLO_TESTS_FILTER:-*}${QYOLO_TESTS_FIRST:+-$QYOLO_TESTS_FIRST}" 2>&1 | tee "$out/gpu_tests.log" |
      grep -E '^\[ *(FAILED|PASSED|SKIPPED) *\]|^\[(fp|yolov|NMS)|^NMS|Failure|error|Expected|Which is|max abs|: ' | head -150
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  fi
  if has sanitizer; then
    echo "== compute-sanitizer (memcheck, short run)"
    local cs
    cs=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
    if [ -n "$cs" ]; then
      timeout "${QYOLO_SANITIZER_TIMEOUT:-45}" "$cs" --tool memcheck --leak-check no --error-exitcode 9 "$q/bin/qyolo_gpu_tests" --gtest_color=no \
        --gtest_filter='CudaKernels.DetectHead:CudaKernels.ConcatMixedLayouts:Cuda/ConvTest.MatchesCpu/hardswish_residual:CudaNms.*:CudaLetterbox.*:Cuda/Int8ConvTest.WithinOneLsbOfCpu/hardswish_residual:Cuda/Int8ConvTest.WithinOneLsbOfCpu/odd_channels:Cuda/Int8ConvTest.WithinOneLsbOfCpu/k3_silu:CudaInt8.ChainFusesRequantisation:CudaInt8.ConcatOfInt8ConvsIsWrittenInPlace:CudaYoloDecode.*:CudaKernels.CudnnFusedEpilogue:CudaKernels.Fp16StemDirectAndSpaceToDepth:CudaKernels.Fp16ConcatWrittenInPlace:CudaKernels.ConcurrentBranchesMatchOneStream:CudaKernels.Fp16OddChannelsArePadded:Cuda/Int8ConvTest.CudnnEngineWithinOneLsbOfCpu/k3_silu:Cuda/Int8ConvTest.CudnnEngineWithinOneLsbOfCpu/silu_residual_nobias:CudaInt8.ConcatWithOtherInputsIsQuantisedIntoSlices:CudaInt8.Fp16StemWritesTheInt8CopyItsReaderTakes:CudaInt8.ProgrammaticLaunchMatchesPlainLaunch' \
        > "$out/sanitizer.log" 2>&1
      local s=$?
      grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/sanitizer.log" | tail -5
      [ $s -eq 0 ] || rc=1
    else
      echo "compute-sanitizer not found"
    fi
  fi
  if has ort && [ -f "$CARRY/ort/qdq.onnx" ]; then
    echo "== ONNX Runtime on qyolo's exported Q/DQ model vs qyolo INT8 (bus.jpg)"
    $py "$ROOT/scripts/ort_check.py" "$CARRY/ort/qdq.onnx" "$q/reference/bus_input.npy" "$CARRY/ort/detections.json" \
      "$CARRY/ort/yolov5n-ort-qdq.onnx" 2>&1 | tee "$out/ort_check.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
  fi
  if has probe; then
    # cuDNN INT8 (runtime fusion) against cuDNN FP16 per conv shape of yolov5s (bench_cudnn_int8).
    echo "== cuDNN int8 vs fp16 per conv shape (b${QYOLO_PROBE_BATCH:=32})"
    timeout 300 "$q/bin/bench_cudnn_int8" --batch "$QYOLO_PROBE_BATCH" 2>&1 | tee "$out/probe.txt"
  fi
  if has ncu; then
    # Nsight Compute on a few kernels of yolov5s b32 fp16 (QYOLO_NCU_KERNELS: a kernel-name regex;
    # QYOLO_NCU_ARGS: bench_gpu's precision options instead of "--precision fp16").
    echo "== ncu (${QYOLO_NCU_KERNELS:=conv_stem|yolo_decode})"
    local ncu_bin
    ncu_bin=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
    if [ -n "$ncu_bin" ]; then
      timeout 240 "$ncu_bin" --kernel-name "regex:$QYOLO_NCU_KERNELS" --launch-count "${QYOLO_NCU_COUNT:-4}" \
        --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
        --section WarpStateStats --section SchedulerStats \
        "$q/bin/bench_gpu" "$q/models/yolov5s-b32.onnx" --batch 32 ${QYOLO_NCU_ARGS:---precision fp16} --iters 2 --warmup 1 \
        > "$out/ncu.txt" 2>&1
      grep -E "^  [a-z_]+.*\(|Duration|Memory Throughput|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Issue Slots Busy|No Eligible|Stall" "$out/ncu.txt" | head -60
    else
      echo "ncu not found"
    fi
  fi
  if has ncuconv; then
    # Nsight Compute on one yolov5s b32 --int8 --fp16 run (bench_gpu --ncu-range: the build's tactic
    # timing is not profiled): every kernel's time, SM and DRAM throughput and tensor-pipe activity;
    # the longest kernels are the largest convs (match them with the --profile table of the bench).
    echo "== ncu: the longest kernels of yolov5s b32 int8-fp16"
    local ncu_bin
    ncu_bin=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
    if [ -n "$ncu_bin" ]; then
      local tensor
      tensor=$("$ncu_bin" --query-metrics --chip gh100 2>/dev/null | awk '{print $1}' |
               grep -E '^sm__pipe_tensor.*cycles_active$|^sm__pipe_shared_cycles_active$' | sed 's/$/.avg.pct_of_peak_sustained_active/' | paste -sd,)
      timeout 300 "$ncu_bin" --profile-from-start off --csv \
        --metrics "gpu__time_duration.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size${tensor:+,$tensor}" \
        "$q/bin/bench_gpu" "$q/models/yolov5s-b32.onnx" --batch 32 --precision int8-fp16 --calib "$q/calib/yolov5s.cache" \
        --ncu-range > "$out/ncu_convs.csv" 2>"$out/ncu_convs.err"
      echo "ncu exit $?"; tail -3 "$out/ncu_convs.err"
      $py - "$out/ncu_convs.csv" <<'PYEOF'
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
if not rows: sys.exit("no ncu rows")
h = rows[0]; i_id, i_name, i_m, i_v = h.index('ID'), h.index('Kernel Name'), h.index('Metric Name'), h.index('Metric Value')
k = collections.OrderedDict()
for r in rows[1:]:
    d = k.setdefault(r[i_id], {'name': r[i_name]})
    try: d[r[i_m]] = float(r[i_v].replace(',', ''))
    except ValueError: d[r[i_m]] = r[i_v]
ks = sorted(k.values(), key=lambda d: -d.get('gpu__time_duration.sum', 0))
tot = sum(d.get('gpu__time_duration.sum', 0) for d in ks)
print(f"{len(ks)} kernels, {tot/1e3:.1f} us summed (serial, under ncu)")
cols = [c for c in ks[0] if c.startswith('sm__pipe')]
print('us      SM%   DRAM%  ' + '  '.join(c.replace('sm__pipe_', '').replace('_cycles_active.avg.pct_of_peak_sustained_active', '') for c in cols) + '  kernel')
for d in ks[:12]:
    print(f"{d.get('gpu__time_duration.sum',0)/1e3:6.1f} {d.get('sm__throughput.avg.pct_of_peak_sustained_elapsed',0):5.1f} {d.get('dram__throughput.avg.pct_of_peak_sustained_elapsed',0):6.1f}  " +
          '  '.join(f"{d.get(c,0):5.1f}" for c in cols) + '  ' + d['name'][:90])
PYEOF
    else
      echo "ncu not found"
    fi
  fi
  if has bench; then
    echo "== bench (ours: bench_gpu --graph; peer: torch_peer.py --dtype fp16 --graph --channels-last)"
    : > "$out/bench.jsonl"
    : > "$out/bench.err"
    # The chip's ceilings in this run: D2D copy, cuBLASLt int8 and fp16 8192^3 GEMMs.
    timeout 60 "$q/bin/bench_gpu" --ceilings >> "$out/bench.jsonl" 2>>"$out/bench.err"
    # name:batch:dtype[:flag,flag...] (extra bench_gpu flags), most wanted first (the deadline skips the rest: fp16
    # builds compile cuDNN fusion kernels with NVRTC); QYOLO_BENCH overrides the list.
    local configs="${QYOLO_BENCH:-yolov5s:1:int8-fp16 yolov5s:32:int8-fp16 yolov5s:1:fp16 yolov5s:32:fp16 yolov5n:1:int8-fp16 yolov5n:32:int8-fp16 yolov5n:1:fp16 yolov5n:32:fp16 yolov5s:1:int8 yolov5s:32:int8 yolov5n:1:int8 yolov5n:32:int8 yolov5s:1:int8-fp16:--all-int8 yolov5s:32:int8-fp16:--all-int8 yolov5n:1:int8-fp16:--all-int8 yolov5n:32:int8-fp16:--all-int8 yolov5s:1:int8-fp16:--all-int8,--prepost yolov5s:32:int8-fp16:--all-int8,--prepost yolov5s:1:int8-fp16:--all-int8,--no-cudnn-int8 yolov5s:32:int8-fp16:--all-int8,--no-cudnn-int8 yolov5s:1:int8-fp16:--prepost yolov5s:32:int8-fp16:--prepost yolov5s:1:fp16:--prepost yolov5s:32:fp16:--prepost yolov5n:1:int8-fp16:--prepost yolov5n:32:int8-fp16:--prepost yolov5n:1:fp16:--prepost yolov5n:32:fp16:--prepost yolov5s:32:int8-fp16:--no-cublaslt yolov5s:1:int8-fp16:--no-direct-stem yolov5s:32:int8-fp16:--no-direct-stem yolov5s:1:int8-fp16:--one-stream yolov5s:32:int8-fp16:--one-stream yolov5s:1:int8-fp16:--no-concat-in-place yolov5s:32:int8-fp16:--no-concat-in-place yolov5s:1:fp16:--no-cudnn-fusion yolov5s:32:fp16:--no-cudnn-fusion yolov5n:32:fp32 yolov5s:32:fp32}"
    local cfg m b dt flag
    # The peer first: its numbers must be in the table even when the deadline cuts our configs.
    for cfg in ${QYOLO_PEER:-yolov5n:1 yolov5n:32 yolov5s:1 yolov5s:32}; do
      IFS=: read -r m b <<< "$cfg"
      [ $SECONDS -gt "${QYOLO_DEADLINE:-520}" ] && { echo "deadline: skipping peer $cfg"; continue; }
      PYTHONUNBUFFERED=1 timeout 40 $py "$q/bench/torch_peer.py" "$q/models/$m.onnx" --batch "$b" --dtype fp16 --graph \
        --channels-last --iters 100 --json 2>>"$out/bench.err" |
        sed "s/^{/{\"who\": \"peer\", \"name\": \"$m\", /" >> "$out/bench.jsonl"
    done
    for cfg in $configs; do
      IFS=: read -r m b dt flag <<< "$cfg"
      [ $SECONDS -gt "${QYOLO_DEADLINE:-520}" ] && { echo "deadline: skipping $cfg"; continue; }
      local model="$q/models/$m.onnx"
      [ "$b" -ne 1 ] && model="$q/models/$m-b$b.onnx"
      local errf="$out/bench.err" extra=()
      [ -n "$flag" ] && extra+=(${flag//,/ })  # several flags: comma-separated
      case "$dt" in int8*) extra+=(--calib "$q/calib/$m.cache") ;; esac
      if [ "$cfg" = "yolov5s:32:fp16" ]; then extra+=(--summary --profile); errf="$out/profile_yolov5s_b32_fp16.txt"; fi
      if [ "$cfg" = "yolov5s:32:int8-fp16" ]; then extra+=(--summary --profile); errf="$out/profile_yolov5s_b32_int8.txt"; fi
      if [ "$cfg" = "yolov5s:32:int8-fp16:--all-int8" ]; then extra+=(--summary --profile); errf="$out/profile_yolov5s_b32_allint8.txt"; fi
      if [ "$cfg" = "yolov5s:1:int8-fp16:--all-int8" ]; then extra+=(--summary --profile); errf="$out/profile_yolov5s_b1_allint8.txt"; fi
      # A config that names --profile itself gets its own profile file.
      case ",$flag," in *,--profile,*) errf="$out/profile_${m}_b${b}_${dt}$(printf '%s' "$flag" | tr -c 'a-z0-9' '_').txt" ;; esac
      timeout "${QYOLO_BENCH_TIMEOUT:-240}" "$q/bin/bench_gpu" "$model" --batch "$b" --precision "$dt" --graph --iters 100 --json --pdl-ab "${extra[@]}" \
        2>>"$errf" | sed "s/^{/{\"who\": \"qyolo\", \"name\": \"$m\", /" >> "$out/bench.jsonl"
    done
    grep -v "^  " "$out/bench.err" | tail -8
    grep -A12 "^profile:" "$out/profile_yolov5s_b32_fp16.txt" 2>/dev/null | head -16
    grep -A16 "^profile:" "$out/profile_yolov5s_b32_int8.txt" 2>/dev/null | head -20
    $py - "$out/bench.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')]
peer = {(r['name'], r['batch']): r for r in rows if r['who'] == 'peer'}
ceil = next((r for r in rows if r['who'] == 'ceilings'), None)
if ceil:
    print(f"ceilings (this run): copy {ceil['copy_gbs']:.0f} GB/s, cuBLASLt int8 {ceil['int8_tops']:.0f} TOPS, "
          f"fp16 {ceil['fp16_tflops']:.0f} TFLOPS (8192^3 GEMMs)")
print("TOPS: 2 x conv MACs / median time; GB/s: bytes every step reads + writes / median time")
print("plain ms: the same engine with plain launches instead of programmatic dependent launch (PDL)")
print(f"{'model':8} {'batch':>5} {'qyolo':42} {'ms':>8} {'img/s':>7} {'TOPS':>6} {'GB/s':>6} {'build s':>7} | {'peer fp16 ms':>12} {'img/s':>7} | {'peer/qyolo':>10} | {'plain ms':>8}")
for r in rows:
    if r['who'] != 'qyolo':
        continue
    p = peer.get((r['name'], r['batch']))
    conv = r.get('conv', 'graph')
    what = r['dtype'] + ('' if conv == 'graph' or r['dtype'] == 'fp32' else ' legacy' if conv == 'legacy' else ' no cuDNN fusion') + \
        (' +pre/post' if r.get('prepost') else '') + \
        (' w/o' + r['without'] if r.get('without') else '') + \
        (f" ({r['int8_gmacs'] / r['conv_gmacs']:.0%} int8)" if r['dtype'].startswith('int8') and r.get('conv_gmacs') else '')
    pm = f"{p['median_ms']:.3f}" if p else '-'
    pi = f"{p['images_per_s']:.0f}" if p else '-'
    ratio = f"{p['median_ms'] / r['median_ms']:.2f}x" if p else '-'
    tops = 2 * r.get('conv_gmacs', 0) / r['median_ms']
    gbs = r.get('gbytes', 0) / (r['median_ms'] * 1e-3)
    plain = f"{r['median_ms_no_pdl']:.3f}" if r.get('median_ms_no_pdl', -1) > 0 else '-'
    print(f"{r['name']:8} {r['batch']:>5} {what:42} {r['median_ms']:>8.3f} {r['images_per_s']:>7.0f} {tops:>6.1f} {gbs:>6.0f} {r['build_s']:>7.1f} | {pm:>12} {pi:>7} | {ratio:>10} | {plain:>8}")
PYEOF
  fi
  return $rc
}

case "$MODE" in
  prepare) prepare "$@" ;;
  run) run "$@" ;;
  *) echo "usage: $0 prepare [BUILD_DIR] | run [tests|sanitizer|bench|all]..." >&2; exit 2 ;;
esac
