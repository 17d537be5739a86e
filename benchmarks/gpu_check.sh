#!/usr/bin/env bash
# The GPU check: the one script run on a machine with an NVIDIA GPU (no network there;
# its python3 already has numpy, numba, cupy, torch with CUDA, pytest and hypothesis).
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh          # tests, then the benchmark
#   OUT=/some/folder bash benchmarks/gpu_check.sh tests    # only the GPU tests
#   OUT=/some/folder bash benchmarks/gpu_check.sh bench    # only the benchmark
#
# Run from the repository root. Everything it prints is also kept in $OUT, at most
# 8 files and no folders: env.txt, install.log, pytest_gpu.log, bench.log,
# gpu_latest.json, gpu_latest.md (benchmarks/gpu.py's) and summary.txt.
# Settings: MINIGAN_EXAMPLES (hypothesis examples per test, default 5), TEST_TIMEOUT
# (s, default 300), BENCH_TIMEOUT (s, default 240), BENCH_ARGS (more flags for
# benchmarks/gpu.py, e.g. --quick), PYTHON (default python3).
set -o pipefail
export PYTHONUNBUFFERED=1

part=${1:-all}
case "$part" in
  all | tests | bench) ;;
  *)
    echo "usage: OUT=DIR bash benchmarks/gpu_check.sh [tests|bench]" >&2
    exit 2
    ;;
esac
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 1
cd "$(dirname "$0")/.." || exit 1
PYTHON=${PYTHON:-python3}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-240}
echo "gpu_check: $part; output in $OUT"

# 1. The machine: GPU, driver, and the versions the tests and benchmark will use.
{
  nvidia-smi || echo "nvidia-smi failed (status $?)"
  echo
  "$PYTHON" --version
  for module in numpy cupy torch numba; do
    "$PYTHON" -c "import $module; print('$module', $module.__version__)" 2>&1 | tail -1
  done
  "$PYTHON" -c "import torch; print('torch CUDA', torch.version.cuda, 'cuDNN',
torch.backends.cudnn.version(), 'GPU available:', torch.cuda.is_available())" 2>&1 | tail -1
  "$PYTHON" -c "import cupy; cupy.show_config()" 2>&1
} 2>&1 | tee "$OUT/env.txt"

# 2. minigan itself, from this checkout (its dependencies are already there).
"$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tee "$OUT/install.log"
install_status=$?
echo "gpu_check: pip install -e . exited $install_status"

# 3. The tests marked gpu. pytest's status is kept; the benchmark runs whatever it is.
tests_status=skipped
if [ "$part" != bench ]; then
  echo "gpu_check: pytest -m gpu (at most $TEST_TIMEOUT s)"
  MINIGAN_EXAMPLES=${MINIGAN_EXAMPLES:-5} timeout -k 10 "$TEST_TIMEOUT" \
    "$PYTHON" -m pytest -m gpu --maxfail=25 -q -p no:cacheprovider 2>&1 | tee "$OUT/pytest_gpu.log"
  tests_status=$?
fi

# 4. The benchmark, its own time budget kept inside the timeout so it always writes
#    its tables (timeout signals the whole process group: its workers too).
bench_status=skipped
if [ "$part" != tests ]; then
  budget=$((BENCH_TIMEOUT > 60 ? BENCH_TIMEOUT - 25 : BENCH_TIMEOUT * 2 / 3))
  echo "gpu_check: benchmarks/gpu.py (at most $BENCH_TIMEOUT s, budget $budget s)"
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
  timeout -k 10 "$BENCH_TIMEOUT" "$PYTHON" benchmarks/gpu.py --out "$OUT" --budget "$budget" \
    ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
  bench_status=$?
fi

summary="gpu_check: install $install_status, tests $tests_status, bench $bench_status"
summary+=" (0: passed; 124: timed out; 5: no tests selected; 2 from the bench: no GPU)"
echo "$summary" | tee "$OUT/summary.txt"
[ "$tests_status" = 0 ] || [ "$tests_status" = skipped ] || exit 1
[ "$bench_status" = 0 ] || [ "$bench_status" = skipped ] || exit 1
