"""GEMM throughput of graphc's compiled `dot`, OpenBLAS path vs graphc's own kernel, per shape.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/gemm_shapes.py [--rounds 7] [--jax]

Both programs of a shape are built in this one process (GRAPHC_GEMM=blas and =native are read
when a program is built) and timed alternately, `--rounds` times; the table gives the median
GFLOP/s of each and new/old. --jax adds jax.jit(a @ b) on the same shapes, run in JAX's venv
(bench/.venvs/jax) as a child process. The machine is shared: compare medians of alternating
runs, and look at the spread (min-max over rounds) before believing a difference.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

# (M, K, N, transA, transB): C[M, N] = op(A) @ op(B)
SHAPES = [
    (256, 784, 512, 0, 1), (256, 512, 512, 0, 1), (256, 512, 784, 0, 0), (256, 512, 512, 0, 0),
    (512, 256, 784, 1, 0), (512, 256, 512, 1, 0), (784, 256, 512, 1, 0),
    # ResNet-18 im2col: weights [filters, C*kh*kw] @ columns [C*kh*kw, pixels]
    (64, 147, 12544, 0, 0), (64, 576, 3136, 0, 0), (128, 576, 784, 0, 0), (256, 1152, 196, 0, 0),
    (512, 2304, 49, 0, 0),
    # LSTM: one step's gates, the decoder over a 10000-word vocabulary
    (20, 200, 800, 0, 1), (700, 200, 10000, 0, 1),
]

JAX_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venvs", "jax", "bin", "python")

_JAX_CHILD = r"""
import json, sys, time, statistics
import numpy as np, jax, jax.numpy as jnp
shapes = json.loads(sys.argv[1]); rounds = int(sys.argv[2])
out = {}
for M, K, N, ta, tb in shapes:
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32))
    b = jnp.asarray(rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32))
    f = jax.jit(lambda x, y: (x.T if ta else x) @ (y.T if tb else y))
    f(a, b).block_until_ready()
    t0 = time.perf_counter(); f(a, b).block_until_ready(); one = time.perf_counter() - t0
    reps = max(3, int(0.02 / max(one, 1e-6)))
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            r = f(a, b)
        r.block_until_ready()
        ts.append((time.perf_counter() - t0) / reps)
    out[str((M, K, N, ta, tb))] = statistics.median(ts)
print(json.dumps(out))
"""


def build(shape, mode):
    from graphc.ops.builder import GraphBuilder
    from graphc.ops.types import TensorType
    from graphc.compiler import compile_graph
    M, K, N, ta, tb = shape
    os.environ["GRAPHC_GEMM"] = mode
    b = GraphBuilder("gemm")
    A = b.var("a", TensorType((K, M) if ta else (M, K), "float32"), "input")
    B = b.var("b", TensorType((N, K) if tb else (K, N), "float32"), "input")
    g = b.build([b.F.dot(A, B, transpose_a=bool(ta), transpose_b=bool(tb)).value])
    return compile_graph(g)


def time_call(p, args, out, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        p(args, out)
    return (time.perf_counter() - t0) / reps


def measure(shape, rounds):
    M, K, N, ta, tb = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
    ref = (a.T if ta else a) @ (b.T if tb else b)
    progs = {m: build(shape, m) for m in ("blas", "native")}
    out = [np.empty((M, N), np.float32)]
    for m, p in progs.items():
        p([a, b], out)
        err = float(np.abs(out[0] - ref).max() / max(1.0, float(np.abs(ref).max())))
        if err > 1e-4:
            raise SystemExit(f"{shape} {m}: wrong result (max rel err {err:.2e})")
    one = min(time_call(progs[m], [a, b], out, 3) for m in progs)
    reps = max(3, int(0.03 / max(one, 1e-7)))
    ts = {m: [] for m in progs}
    for r in range(rounds):
        order = ("blas", "native") if r % 2 == 0 else ("native", "blas")
        for m in order:
            ts[m].append(time_call(progs[m], [a, b], out, reps))
    return ts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--jax", action="store_true", help="also time jax.jit(a @ b) in bench/.venvs/jax")
    ap.add_argument("--only", default="", help="comma-separated shape indices")
    ap.add_argument("--shapes", default="", help="other shapes: M,K,N,tA,tB;M,K,N,tA,tB...")
    args = ap.parse_args()
    if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("OPENBLAS_L2_SIZE"):
        print("warning: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set; they slow OpenBLAS down "
              "(run under env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)", file=sys.stderr)
    shapes = [SHAPES[int(i)] for i in args.only.split(",")] if args.only else SHAPES
    if args.shapes:
        shapes = [tuple(int(x) for x in s.split(",")) for s in args.shapes.split(";")]
    jax_t = {}
    if args.jax and os.path.exists(JAX_PY):
        # the thread settings of bench/systems/jax_w.py: two threads for XLA's CPU client
        env = dict(os.environ, JAX_PLATFORMS="cpu",
                   XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=2")
        res = subprocess.run([JAX_PY, "-c", _JAX_CHILD, json.dumps(shapes), str(args.rounds)],
                             capture_output=True, text=True, env=env)
        if res.returncode == 0:
            jax_t = json.loads(res.stdout.strip().splitlines()[-1])
        else:
            print(f"jax failed: {res.stderr[-500:]}", file=sys.stderr)
    print(f"{'M,K,N,tA,tB':>24} {'blas':>8} {'native':>8} {'new/old':>8} {'spread b/n %':>13}"
          + (f" {'jax':>7} {'new/jax':>8}" if jax_t else ""))
    for shape in shapes:
        ts = measure(shape, args.rounds)
        flops = 2.0 * shape[0] * shape[1] * shape[2]
        med = {m: statistics.median(v) for m, v in ts.items()}
        gf = {m: flops / t / 1e9 for m, t in med.items()}
        spread = {m: 100 * (max(v) - min(v)) / med[m] for m, v in ts.items()}
        line = (f"{str(shape):>24} {gf['blas']:8.1f} {gf['native']:8.1f} {med['blas'] / med['native']:8.2f} "
                f"{spread['blas']:6.0f}/{spread['native']:<6.0f}")
        if jax_t:
            tj = jax_t.get(str(tuple(shape)))
            if tj:
                line += f" {flops / tj / 1e9:7.1f} {tj / med['native']:8.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
