"""numpy, hand-written: W0 (SGEMM through numpy/OpenBLAS), W1, W1b, W2."""
import _common as C  # first: pins thread counts

import numpy as np

SYSTEM = "numpy"


def blas_info() -> dict:
    try:
        from threadpoolctl import threadpool_info
        for d in threadpool_info():
            if d.get("user_api") == "blas":
                return {"blas": d.get("internal_api"), "blas_version": d.get("version"),
                        "blas_core": d.get("architecture"), "blas_threads": d.get("num_threads")}
    except Exception as e:  # noqa: BLE001
        return {"blas": f"unknown ({type(e).__name__})"}
    return {}


def sgemm(n: int, quick: bool):
    def body():
        rng = np.random.default_rng(C.SEED)
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        out = np.empty((n, n), dtype=np.float32)
        reps = (3 if quick else 7) if n >= 4096 else (5 if quick else 15)
        samples = C.time_calls(lambda: np.matmul(a, b, out=out), 1, reps)
        med = C.median(samples)
        return {"system": SYSTEM, "variant": f"sgemm{n}", "workload": "W0", "unit": "GFLOP/s",
                "median": 2.0 * n ** 3 / med / 1e9,
                "samples": [2.0 * n ** 3 / s / 1e9 for s in samples], "n_samples": reps,
                "check": float(out[0, :8].sum()), **blas_info()}
    return body


def w1(x, y=None, s=None):
    # tanh(x*0.5 + 1) * sigmoid(x) + 0.1*x, written to avoid needless temporaries; given y and
    # s (the "out=" variant) it allocates nothing and so pays no page faults, as graphc
    y = np.multiply(x, np.float32(0.5), out=y)
    y += np.float32(1.0)
    np.tanh(y, out=y)
    s = np.negative(x, out=s)
    np.exp(s, out=s)
    s += np.float32(1.0)
    y /= s
    np.multiply(x, np.float32(0.1), out=s)
    y += s
    return y


def w1b(x, y=None, s=None):
    # relu(x*0.5 + 1) * x - 0.25 (s unused: the signature of w1)
    y = np.multiply(x, np.float32(0.5), out=y)
    y += np.float32(1.0)
    np.maximum(y, np.float32(0.0), out=y)
    y *= x
    y -= np.float32(0.25)
    return y


def main():
    a = C.parse_args()
    wl = a.workload
    if wl == "W0":
        for n in (2048, 4096):
            if C.wanted(a, f"sgemm{n}"):
                C.run_variant(SYSTEM, f"sgemm{n}", wl, sgemm(n, a.quick))
    elif wl in ("W1", "W1b"):
        fn, ref = (w1, C.w1_reference) if wl == "W1" else (w1b, C.w1b_reference)

        def body(variant):
            x = C.w1_input()
            bufs = (np.empty_like(x), np.empty_like(x)) if variant.endswith("out=") else ()
            y = fn(x, *bufs)
            err = float(np.max(np.abs(y - ref(x))))
            warm, reps = C.reps(wl, a.quick)
            samples = C.time_calls(lambda: fn(x, *bufs), warm, reps)
            return C.record(SYSTEM, variant, wl, samples, check=C.check_value(y),
                            max_abs_err=err)
        for v in ("hand-written", "hand-written, out="):
            if C.wanted(a, v):
                C.run_variant(SYSTEM, v, wl, lambda v=v: body(v))
    elif wl == "W2":
        def body():
            ws, bs = C.mlp_weights()
            x, _ = C.mlp_inputs(1)
            w1_, w2_, w3_ = ws
            b1, b2, b3 = bs

            def fwd():
                h = x @ w1_
                h += b1
                np.maximum(h, 0, out=h)
                h2 = h @ w2_
                h2 += b2
                np.maximum(h2, 0, out=h2)
                o = h2 @ w3_
                o += b3
                return o
            out = fwd()
            warm, reps = C.reps(wl, a.quick)
            samples = C.time_blocks(fwd, C.W2_BLOCK, warm, reps)
            return C.record(SYSTEM, "hand-written", wl, samples, check=C.check_value(out))
        C.run_variant(SYSTEM, "hand-written", wl, body)
    else:
        C.emit({"system": SYSTEM, "variant": "-", "workload": wl, "skip": "not defined for numpy"})


if __name__ == "__main__":
    main()
