"""tinygrad on the CPU (issue 14: W1, W1b, W2, W3, W4), every function under TinyJit.

tinygrad's CPU backend compiles its kernels with clang. This machine has none, so setup_envs.py
installs the `ziglang` wheel into this venv and writes a `clang` wrapper beside its python that
runs `zig cc` (a clang); CC points tinygrad at it. Compiled kernels are cached in
bench/.work/tinygrad_cache.db (not the user's ~/.cache), so a broken compiler of an earlier
setup cannot leave unloadable objects behind for this one.

TinyJit replays the captured kernels into the same buffers, so tinygrad reuses its output
(as graphc does) and pays no page faults for a fresh 64 MiB result in W1/W1b.
"""
import os
import sys
from pathlib import Path

import _common as C  # first: pins thread counts

_BIN = Path(sys.executable).parent
# set, not defaulted: a CC=gcc of the caller's environment would not compile tinygrad's C
os.environ["CC"] = str(_BIN / "clang")
os.environ["DEV"] = "CPU"
os.environ["NUM_CPU_THREADS"] = str(C.THREADS)
os.environ.setdefault("CACHEDB", str(Path(__file__).resolve().parents[1] / ".work"
                                     / "tinygrad_cache.db"))

import time  # noqa: E402

import numpy as np  # noqa: E402
from tinygrad import Device, Tensor, TinyJit  # noqa: E402
from tinygrad.helpers import Context  # noqa: E402
from tinygrad.nn.optim import SGD  # noqa: E402

SYSTEM = "tinygrad"
VARIANT = "TinyJit"
BN_EPS = 1e-5       # MXNet's and PyTorch's BatchNorm default


def sync():
    Device[Device.DEFAULT].synchronize()


def elementwise(wl, quick):
    def body():
        xn = C.w1_input()
        x = Tensor(xn).realize()
        if wl == "W1":
            f = TinyJit(lambda t: ((t * 0.5 + 1.0).tanh() * t.sigmoid() + 0.1 * t).realize())
        else:
            f = TinyJit(lambda t: ((t * 0.5 + 1.0).relu() * t - 0.25).realize())
        t0 = time.perf_counter()
        y = f(x).numpy()
        setup = time.perf_counter() - t0
        ref = (C.w1_reference if wl == "W1" else C.w1b_reference)(xn)

        def call():
            f(x)
            sync()
        warm, reps = C.reps(wl, quick)
        samples = C.time_calls(call, max(warm, 3), reps)    # TinyJit captures on call 2
        return C.record(SYSTEM, VARIANT, wl, samples, check=C.check_value(y),
                        max_abs_err=float(np.max(np.abs(y - ref))), setup_s=setup)
    return body


def mlp_params():
    ws, bs = C.mlp_weights()
    return [(Tensor(w), Tensor(b)) for w, b in zip(ws, bs)]     # tinygrad: parameters by default


def mlp(p, x):
    h = x
    for i, (w, b) in enumerate(p):
        h = h.matmul(w) + b
        if i < len(p) - 1:
            h = h.relu()
    return h


def w2(quick):
    def body():
        p = mlp_params()
        x = Tensor(C.mlp_inputs(1)[0]).is_param_(False).realize()
        f = TinyJit(lambda t: mlp(p, t).realize())
        t0 = time.perf_counter()
        out = f(x).numpy()
        setup = time.perf_counter() - t0
        ws, bs = C.mlp_weights()
        err = float(np.max(np.abs(out - C.mlp_forward_np(C.mlp_inputs(1)[0], ws, bs))))

        def call():
            f(x)
            sync()
        warm, reps = C.reps("W2", quick)
        samples = C.time_blocks(call, C.W2_BLOCK, warm, reps)
        return C.record(SYSTEM, VARIANT, "W2", samples, check=C.check_value(out),
                        max_abs_err=err, setup_s=setup)
    return body


def w3(quick):
    def body():
        p = mlp_params()
        params = [t for pair in p for t in pair]
        opt = SGD(params, lr=C.LR)
        xn, yn = C.mlp_inputs(C.BATCH_W3)
        x = Tensor(xn).is_param_(False).realize()
        y = Tensor(yn.astype(np.int32)).is_param_(False).realize()

        @TinyJit
        def step(x, y):
            with Context(TRAINING=1):
                opt.zero_grad()
                loss = mlp(p, x).sparse_categorical_crossentropy(y).backward()
                # one schedule with the update: realized after it, the loss would read the
                # already-updated weights (the updates are in place)
                Tensor.realize(loss, *opt.schedule_step())
            return loss
        losses = []     # every step's loss, compared across systems in the report

        def one():
            losses.append(float(step(x, y).item()))
        t0 = time.perf_counter()
        one()
        setup = time.perf_counter() - t0
        ws, bs = C.mlp_weights()
        want = C.softmax_ce_np(C.mlp_forward_np(xn, ws, bs), yn)
        if abs(losses[0] - want) > 1e-3 + 1e-3 * abs(want):
            raise AssertionError(f"W3 first loss {losses[0]:.6g}, numpy {want:.6g}")
        warm, reps = C.reps("W3", quick)
        samples = C.time_blocks(one, C.W3_BLOCK, warm, reps)
        return C.record(SYSTEM, VARIANT, "W3", samples, first_loss=losses[0], setup_s=setup,
                        losses=losses[:400], n_steps=len(losses))
    return body


# ------------------------------------------------------------------ W4: ResNet-18 v1
def resnet18(flat):
    """MXNet model-zoo ResNet-18 v1 over the seeded flat parameter list (same order as
    C.resnet18_shapes()); BatchNorm in inference mode from its running statistics."""
    tensors = [Tensor(a).realize() for a in flat]
    if len(flat) != sum({"conv": 1, "bn": 4, "dense": 2}[k] for k, _ in C.resnet18_shapes()):
        raise ValueError(f"ResNet-18: {len(flat)} seeded arrays for its parameter list")
    it = iter(())

    def conv(x, stride, pad):
        return x.conv2d(next(it), stride=stride, padding=pad)

    def bn(x):
        g, b, m, v = next(it), next(it), next(it), next(it)
        return x.batchnorm(g, b, m, (v + BN_EPS).rsqrt())

    def forward(x):
        nonlocal it
        it = iter(tensors)      # parameters in model-zoo order, consumed as the net runs
        x = bn(conv(x, 2, 3)).relu().max_pool2d((3, 3), stride=2, padding=1)
        cin = 64
        for ch, stride in C.RESNET18_STAGES:
            for b in range(2):
                s = stride if b == 0 else 1
                h = bn(conv(x, s, 1)).relu()
                h = bn(conv(h, 1, 1))
                sc = bn(conv(x, s, 0)) if (b == 0 and ch != cin) else x
                x = (h + sc).relu()
                cin = ch
        x = x.mean(axis=(2, 3))
        w, bias = next(it), next(it)
        return x.matmul(w.T) + bias
    return forward


def w4(quick):
    def body():
        forward = resnet18(C.resnet18_params())
        x = Tensor(C.w4_input()).is_param_(False).realize()
        f = TinyJit(lambda t: forward(t).realize())
        t0 = time.perf_counter()
        out = f(x).numpy()
        setup = time.perf_counter() - t0

        def call():
            f(x)
            sync()
        warm, reps = C.reps("W4", quick)
        samples = C.time_blocks(call, C.W4_BLOCK, warm, reps)
        return C.record(SYSTEM, VARIANT, "W4", samples, check=C.check_weighted(out),
                        argmax=int(out.argmax()), setup_s=setup, weights="seeded")
    return body


def main():
    a = C.parse_args()
    plan = {"W1": lambda: elementwise("W1", a.quick), "W1b": lambda: elementwise("W1b", a.quick),
            "W2": lambda: w2(a.quick), "W3": lambda: w3(a.quick),
            "W4": lambda: w4(a.quick)}.get(a.workload)
    if plan is not None and C.wanted(a, VARIANT):
        C.run_variant(SYSTEM, VARIANT, a.workload, plan())


if __name__ == "__main__":
    main()
