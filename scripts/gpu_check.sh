#!/usr/bin/env bash
# The GPU suite (issue 14) in one command, on a machine with an NVIDIA GPU, its driver and the CUDA toolkit:
#
#   bash scripts/gpu_check.sh                          # build, tests, compute-sanitizer, benchmark
#   bash scripts/gpu_check.sh --steps build,tests      # some of them (build tests sanitizer bench), in that order
#
#   build      convcore with its CUDA backend (CONVCORE_CUDA=on, for this GPU's architecture unless
#              CONVCORE_CUDA_ARCHITECTURES says otherwise), installed editable into $PYTHON (default python3) with
#              --no-build-isolation: nothing is downloaded (the machine needs scikit-build-core, pybind11, cmake,
#              ninja, numpy, pytest, hypothesis; torch / onnx / onnxruntime for the peers and oracles).
#   tests      tests/cuda on the GPU (CONVCORE_TEST_GPU=1: no GPU is a failure, never the emulator): every kernel
#              against the float64 references, the whole zoo's GPU Plan against its CPU Plan (<= 1e-4 of max|y|),
#              TF32 / bf16 bounds, device arrays (DeviceArray, CUDA array interface, DLPack, PyTorch, CuPy).
#   sanitizer  compute-sanitizer over the kernel tests: memcheck on all of them, racecheck / synccheck / initcheck
#              on the kernels that use shared memory or read planned buffers. A machine where the sanitizer cannot
#              attach (gVisor: "Device not supported") reports SKIPPED, not a pass.
#   bench      benchmarks/bench_cuda.py: resnet50, mobilenet_v2, efficientnet_b0 at batch 1 and 32, fp32 and TF32,
#              against PyTorch + cuDNN and onnxruntime's CUDA provider where it is installed; prints the table and
#              writes build/gpu-check/bench.json.
#
# Logs go to build/gpu-check/. Exit status: 0 when every step that ran passed.
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
steps=build,tests,sanitizer,bench
while [ $# -gt 0 ]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --steps=*) steps=${1#--steps=}; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
logs=build/gpu-check
mkdir -p "$logs"
summary=()
failed=0
t_all=$SECONDS

want() { [[ ",$steps," == *",$1,"* ]]; }
record() {  # record STEP STATUS SECONDS
  summary+=("$(printf '%-10s %-8s %5d s' "$1" "$2" "$3")")
  [ "$2" = FAIL ] && failed=1
  return 0
}

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "(nvidia-smi: none)"
command -v nvcc >/dev/null && nvcc --version | tail -n 2 | head -n 1
"$python" -c "import sys; print('python', sys.version.split()[0], sys.executable)"

if want build; then
  echo "== build (CONVCORE_CUDA=on, architectures ${CONVCORE_CUDA_ARCHITECTURES:-native})"
  t=$SECONDS
  if CONVCORE_CUDA=on CONVCORE_CUDA_ARCHITECTURES=${CONVCORE_CUDA_ARCHITECTURES:-native} \
      "$python" -m pip install --no-build-isolation --no-deps -e . >"$logs/build.log" 2>&1; then
    record build PASS $((SECONDS - t))
  else
    tail -n 40 "$logs/build.log"
    record build FAIL $((SECONDS - t))
  fi
  "$python" -c "import convcore; convcore.show_config()" || true
fi

if want tests; then
  echo "== tests/cuda on the GPU"
  t=$SECONDS
  if CONVCORE_TEST_GPU=1 "$python" -m pytest -q -p no:cacheprovider tests/cuda 2>&1 | tee "$logs/tests.log" | tail -n 25
  then record tests PASS $((SECONDS - t)); else record tests FAIL $((SECONDS - t)); fi
fi

if want sanitizer; then
  echo "== compute-sanitizer"
  t=$SECONDS
  probe=$(command -v compute-sanitizer >/dev/null && compute-sanitizer --tool memcheck "$python" -c \
    "import numpy, convcore.cuda; convcore.cuda.to_device(numpy.zeros(4, numpy.float32))" 2>&1)
  if ! command -v compute-sanitizer >/dev/null; then
    echo "compute-sanitizer is not installed"
    record sanitizer SKIPPED $((SECONDS - t))
  elif echo "$probe" | grep -q "Device not supported\|Unable to\|error 999"; then
    echo "compute-sanitizer cannot attach here:"; echo "$probe" | tail -n 5
    record sanitizer SKIPPED $((SECONDS - t))
  else
    ok=1
    export CONVCORE_TEST_GPU=1 CONVCORE_CUDA_GRAPHS=0  # plain launches: each error is attributed to its kernel
    shared="each_conv_kernel or tensor_core or global_pools or flatten_linear_softmax or squeeze"
    for run in "memcheck|" "racecheck|$shared" "synccheck|$shared" "initcheck|$shared or concat or any_batch"; do
      tool=${run%%|*}; filter=${run#*|}
      echo "-- $tool ${filter:+(-k $filter)}"
      if compute-sanitizer --tool "$tool" --error-exitcode 99 --print-limit 20 "$python" -m pytest -q -x \
          -p no:cacheprovider tests/cuda/test_cuda_ops.py -k "${filter:-not thread_order}" \
          >"$logs/sanitizer-$tool.log" 2>&1; then
        tail -n 2 "$logs/sanitizer-$tool.log"
      else
        ok=0; tail -n 30 "$logs/sanitizer-$tool.log"
      fi
    done
    unset CONVCORE_CUDA_GRAPHS
    if [ $ok = 1 ]; then record sanitizer PASS $((SECONDS - t)); else record sanitizer FAIL $((SECONDS - t)); fi
  fi
fi

if want bench; then
  echo "== benchmarks/bench_cuda.py"
  t=$SECONDS
  if "$python" benchmarks/bench_cuda.py --json "$logs/bench.json" 2>&1 | tee "$logs/bench.log"
  then record bench PASS $((SECONDS - t)); else record bench FAIL $((SECONDS - t)); fi
fi

echo "== summary ($((SECONDS - t_all)) s; logs in $logs)"
printf '%s\n' "${summary[@]}"
exit $failed
