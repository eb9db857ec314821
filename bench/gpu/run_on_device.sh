#!/usr/bin/env bash
# The one command a session with a lent GPU runs, from the repository root, after
# bench/gpu/prepare_wheels.sh filled .whl/ here:
#     run(command="bash bench/gpu/run_on_device.sh", carry=[".whl"], timeout_s=560)
# It fits the lease's budget (about 8 minutes, tunable below): machine facts, the carried wheels
# into /tmp/site, pycuda (the prebuilt wheel, else built from the sdist, else NVIDIA's
# cuda-bindings, which the image has), the GPU test suites on the real GPU, then
# bench/gpu/bench_gpu.py with the time left. Everything goes to stdout and to files under $OUT
# (at most 8 files come back): run_on_device.log, pip_graphc.log, pycuda_build.log, pytest.log,
# bench_gpu.md, bench_gpu.json, bench_logs.tgz. No step's failure stops the later ones.
#
# Tunables (environment): TOTAL_S (480: the whole script's target), PYCUDA_BUILD_S (200),
# TESTS_S (150), TEST_WORKERS (4), BENCH_ARGS (extra bench_gpu.py arguments, e.g.
# "--workloads W1,W1b --systems graphc,torch"), GRAPHC_INSTALL (editable; "link" for a dry run
# on a machine whose python3 must not change).
set -u -o pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/bench/.work/device}
mkdir -p "$OUT"
T0=$(date +%s)
TOTAL_S=${TOTAL_S:-480}
elapsed() { echo $(( $(date +%s) - T0 )); }
step() { echo; echo "=== [$(elapsed) s] $*"; }
SITE=/tmp/site
GSITE=/tmp/graphc-site
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

main() {

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem,temperature.gpu \
    --format=csv || echo "nvidia-smi failed"
python3 -c "import sys, torch, numpy; print(sys.version.split()[0], 'torch', torch.__version__,
'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available(), 'numpy', numpy.__version__)"
python3 -m pip list 2>/dev/null | grep -i -E '^(llvmlite|numpy|scipy|networkx|tqdm|cuda-bindings|pytest|pytest-timeout|pytest-xdist) ' || true
command -v nvcc && nvcc --version | tail -1
nproc

step "wheels into $SITE; graphc"
ls .whl/*.whl >/dev/null 2>&1 || echo "no .whl/*.whl: was .whl carried? (carry=[\".whl\"])"
WHEELS=$(ls .whl/*.whl 2>/dev/null | grep -v '/pycuda-')       # pycuda's: in its own step
# shellcheck disable=SC2086
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" $WHEELS || echo "wheel install failed"
# graphc itself, editable as in this repository's .venv (the pyproject maps graphc.ops = ops/,
# graphc.passes = passes/, graphc.runtime = runtime/; the machine is bare each time, so its
# python3 may be changed); else a link farm of that mapping on PYTHONPATH, which needs
# `python3 -P` (no current directory on sys.path: ./graphc lacks ops/) where run from here
if [[ ${GRAPHC_INSTALL:-editable} == editable ]] &&
   python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >"$OUT/pip_graphc.log" 2>&1; then
    export PYTHONPATH="$SITE"
else
    echo "no editable install (GRAPHC_INSTALL=${GRAPHC_INSTALL:-editable}; pip_graphc.log);" \
         "linking graphc into $GSITE"
    tail -3 "$OUT/pip_graphc.log" 2>/dev/null
    rm -rf "$GSITE" && mkdir -p "$GSITE/graphc"
    for f in "$PWD"/graphc/*; do ln -s "$f" "$GSITE/graphc/"; done
    for d in ops passes runtime; do ln -s "$PWD/$d" "$GSITE/graphc/$d"; done
    export PYTHONPATH="$GSITE:$SITE"
fi
python3 -P -c "import graphc, scipy_openblas32; print('graphc from', graphc.__file__)" \
    || echo "graphc does not import"

step "pycuda"
PYCUDA_OK=0
pycuda_check() {
    python3 -c "import pycuda.driver as d; d.init(); print('pycuda', d.get_version(), 'gpus', d.Device.count())"
}
if ls .whl/pycuda-*.whl >/dev/null 2>&1 && python3 -m pip install -q --no-index --no-deps \
        --no-compile --no-cache-dir --target "$SITE" .whl/pycuda-*.whl && pycuda_check; then
    PYCUDA_OK=1; echo "pycuda: the prebuilt wheel works"
elif ls .whl/pycuda-*.tar.gz >/dev/null 2>&1; then
    rm -rf "$SITE"/pycuda "$SITE"/pycuda-*.dist-info
    CUDA_ROOT=${CUDA_ROOT:-$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")}
    [[ -f /usr/local/cuda/include/cuda.h && ! -f "$CUDA_ROOT/include/cuda.h" ]] && CUDA_ROOT=/usr/local/cuda
    echo "building pycuda from the sdist against $CUDA_ROOT (limit ${PYCUDA_BUILD_S:-200} s)"
    # pycuda's setup without configure.py looks beside `nvcc` for headers and libraries;
    # gcc's CPATH / LIBRARY_PATH point it at the toolkit wherever nvcc lives
    if CUDA_ROOT=$CUDA_ROOT CPATH="$CUDA_ROOT/include:${CPATH:-}" \
        LIBRARY_PATH="$CUDA_ROOT/lib64:$CUDA_ROOT/lib64/stubs:${LIBRARY_PATH:-}" \
        timeout "${PYCUDA_BUILD_S:-200}" python3 -m pip install -q --no-index --no-deps \
        --no-build-isolation --no-cache-dir --target "$SITE" .whl/pycuda-*.tar.gz \
        >"$OUT/pycuda_build.log" 2>&1 && pycuda_check; then
        PYCUDA_OK=1
    else
        echo "pycuda build failed (tail of pycuda_build.log below); falling back to cuda-bindings"
        tail -15 "$OUT/pycuda_build.log"
    fi
fi
if [[ $PYCUDA_OK == 0 ]]; then
    rm -rf "$SITE"/pycuda "$SITE"/pycuda-*.dist-info     # a broken pycuda must not shadow
fi
python3 -P - <<'EOF' || echo "graphc sees no GPU driver"
from graphc.runtime.cuda.driver import get_driver
d = get_driver()
print("graphc driver:", None if d is None else (d.name, d.device_name(0), d.compute_capability(0)))
EOF

step "GPU tests on the real GPU (limit ${TESTS_S:-150} s)"
# the cuda_device fixture (tests/conftest.py) runs every simulator test on the hardware when
# GRAPHC_TEST_REAL_GPU=1; GRAPHC_CUDA_REAL_TESTS is the same wish under the name of the plan
export GRAPHC_TEST_REAL_GPU=1 GRAPHC_CUDA_REAL_TESTS=1
TESTS=$( { [[ -d tests/runtime/cuda ]] && echo tests/runtime/cuda;
           find tests -name 'test_*cuda*.py' -not -path 'tests/runtime/cuda/*';
           find tests -name 'test_*gpu*.py'; } | sort -u | tr '\n' ' ')
echo "test files: $TESTS"
XDIST=""
python3 -c "import xdist" 2>/dev/null && XDIST="-n ${TEST_WORKERS:-4}"
TIMEOUT_OPT=""
python3 -c "import pytest_timeout" 2>/dev/null && TIMEOUT_OPT="--timeout 90"
# real_gpu_only (bench/gpu): only the tests that use the cuda_device fixture or the gpu mark;
# SIGINT at the limit, so pytest still prints which tests ran and failed
# shellcheck disable=SC2086  # word lists on purpose
PYTHONPATH="$PWD/bench/gpu:$PYTHONPATH" timeout -s INT -k 15 "${TESTS_S:-150}" \
    python3 -P -m pytest -q -rfEs -p no:cacheprovider -p real_gpu_only -m "not slow" \
    $XDIST $TIMEOUT_OPT $TESTS >"$OUT/pytest.log" 2>&1
echo "pytest exit status $? (124: stopped at the limit; 5: no GPU test collected)"
grep -E '^(FAILED|ERROR)|passed|failed|error|deselected' "$OUT/pytest.log" | tail -40 \
    || tail -20 "$OUT/pytest.log"

LEFT=$(( TOTAL_S - $(elapsed) - 15 ))
(( LEFT < 90 )) && LEFT=90
step "bench_gpu.py, budget $LEFT s"
# shellcheck disable=SC2086
python3 bench/gpu/bench_gpu.py --budget "$LEFT" --output "$OUT/bench_gpu.md" \
    --logs /tmp/bench_gpu_logs ${BENCH_ARGS:-} >/dev/null
echo "bench_gpu.py exit status $?"
tar -czf "$OUT/bench_logs.tgz" -C /tmp bench_gpu_logs 2>/dev/null
step "done"
cat "$OUT/bench_gpu.md" 2>/dev/null || echo "no bench_gpu.md written"
}

# a pipe, not `exec > >(tee)`: the script ends only after tee has written the last line
main 2>&1 | tee "$OUT/run_on_device.log"
