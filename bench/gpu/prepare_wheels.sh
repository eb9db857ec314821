#!/usr/bin/env bash
# Run HERE, where a package registry is reachable, before a session that has a lent GPU: fills
# .whl/ (ignored by .gitignore's /.whl/) with what graphc needs on the lent machine and its
# python3 (3.12, with torch, numpy, scipy, llvmlite, networkx, tqdm, mako's markupsafe and
# typing-extensions; shared/../device KINDS.md lists them) lacks:
#   - scipy-openblas32 (graphc's BLAS for host steps);
#   - pycuda's sdist and its pure-Python needs (pytools, platformdirs, mako, siphash24);
#   - with PREBUILD_PYCUDA=1 (the default when python3.12 and nvcc are here): a pycuda wheel
#     built here against this machine's CUDA headers, so the lent machine need not spend device
#     minutes compiling it (run_on_device.sh tries that wheel first, then the sdist, then falls
#     back to cuda-bindings).
# Flags are the device README's (`--no-deps`: every need is named here; one version of each).
# Optional: WITH_LLVMLITE=1 also carries the llvmlite graphc is tested with here (about 40 MB;
# only when the image's llvmlite turns out unusable).
set -euo pipefail
cd "$(dirname "$0")/../.."
W=.whl
mkdir -p "$W"

PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
      --platform manylinux1_x86_64)
binary() {   # NAME==VERSION: a cp312 manylinux (or pure-Python) wheel
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${PLAT[@]}" -d "$W" "$1"
}

PYCUDA=pycuda==2026.1
binary scipy-openblas32==0.3.34.481.3
binary pytools==2026.1.1
binary platformdirs==4.14.9
binary mako==1.4.3
binary siphash24==1.9
# the sdist (only pycuda from source: its build needs, numpy included, stay wheels)
python3 -m pip download -q --no-deps --no-binary=pycuda -d "$W" "$PYCUDA"
if [[ "${WITH_LLVMLITE:-0}" == 1 ]]; then
    binary llvmlite==0.50.0
fi

PY312=""
for c in python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do
    if "$c" -c pass 2>/dev/null; then PY312=$c; break; fi    # a pyenv shim may not run
done
if [[ "${PREBUILD_PYCUDA:-1}" == 1 && -n "$PY312" ]] && command -v nvcc >/dev/null; then
    # built against the stub libcuda (the real one is the lent machine's driver). pycuda's
    # setup, without its configure.py, reads ~/.aksetup-defaults.py: a private HOME holds one
    # naming the toolkit (nvcc may be a wrapper outside it) and leaving out cuRAND (this
    # toolkit has no curand.h; graphc does not use pycuda.curandom)
    cuda_root=${CUDA_ROOT:-/usr/local/cuda}
    [[ -f "$cuda_root/include/cuda.h" ]] || \
        cuda_root=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
    if ls "$W"/pycuda-*-cp312-*.whl >/dev/null 2>&1; then
        echo "prepare_wheels: a prebuilt pycuda wheel is already in $W"
    else
        echo "prepare_wheels: building a pycuda wheel with $PY312 against $cuda_root (minutes)"
        conf_home=$(mktemp -d)
        printf "CUDA_ROOT = '%s'\nCUDA_ENABLE_CURAND = False\n" "$cuda_root" \
            >"$conf_home/.aksetup-defaults.py"
        # `-lcuda` needs a libcuda.so to link against: the toolkit's stub, or (a toolkit
        # without stubs/) an empty one named libcuda.so.1; the cu* symbols stay undefined in
        # pycuda's module and bind to the lent machine's driver library at import, which
        # --no-as-needed keeps in the module's NEEDED list though the empty stub gave nothing
        stubs="$cuda_root/lib64/stubs"
        if [[ ! -f "$stubs/libcuda.so" ]]; then
            stubs="$conf_home/stubs" && mkdir -p "$stubs"
            echo "" | gcc -shared -x c - -o "$stubs/libcuda.so" -Wl,-soname,libcuda.so.1
        fi
        HOME="$conf_home" CUDA_ROOT="$cuda_root" LIBRARY_PATH="$stubs:${LIBRARY_PATH:-}" \
            LDFLAGS="-Wl,--no-as-needed ${LDFLAGS:-}" \
            nice -n 19 "$PY312" -m pip wheel -q --no-deps -w "$W" "$W"/pycuda-*.tar.gz \
            || echo "prepare_wheels: prebuilding pycuda failed; the lent machine builds the sdist"
        # a module that does not name libcuda.so.1 would fail at import there: refuse it here
        for whl in "$W"/pycuda-*-cp312-*.whl; do
            [[ -f "$whl" ]] || continue
            if ! unzip -p "$whl" 'pycuda/_driver*.so' >"$conf_home/_driver.so" ||
               ! readelf -d "$conf_home/_driver.so" | grep -q 'NEEDED.*libcuda\.so'; then
                echo "prepare_wheels: $whl does not link libcuda.so.1; removed"
                rm -f "$whl"
            fi
        done
    fi
fi
ls -la "$W"
du -sh "$W"
