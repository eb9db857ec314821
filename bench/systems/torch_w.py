"""PyTorch CPU: eager, torch.compile, torch.jit.trace (W2); W0 torch matmul."""
import _common as C  # first: pins thread counts

import time

import numpy as np
import torch
import torch.nn as tnn

torch.set_num_threads(C.THREADS)
try:
    torch.set_num_interop_threads(C.THREADS)
except RuntimeError:
    pass

SYSTEM = "torch"


def f_w1(x):
    return torch.tanh(x * 0.5 + 1.0) * torch.sigmoid(x) + 0.1 * x


def f_w1b(x):
    return torch.relu(x * 0.5 + 1.0) * x - 0.25


def make_mlp():
    ws, bs = C.mlp_weights()
    layers = []
    for i, (w, b) in enumerate(zip(ws, bs)):
        lin = tnn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(ws) - 1:
            layers.append(tnn.ReLU())
    return tnn.Sequential(*layers)


def elementwise(wl, variant, quick):
    def body():
        x = torch.from_numpy(C.w1_input())
        fn = f_w1 if wl == "W1" else f_w1b
        t0 = time.perf_counter()
        if variant == "compile":
            fn = torch.compile(fn)
        with torch.inference_mode():
            y = fn(x)
        setup = time.perf_counter() - t0
        ref = (C.w1_reference if wl == "W1" else C.w1b_reference)(x.numpy())
        err = float(np.max(np.abs(y.numpy() - ref)))
        warm, reps = C.reps(wl, quick)

        def call():
            with torch.inference_mode():
                fn(x)
        samples = C.time_calls(call, warm, reps)
        return C.record(SYSTEM, variant, wl, samples, check=C.check_value(y.numpy()),
                        max_abs_err=err, setup_s=setup)
    return body


def w2(variant, quick):
    def body():
        net = make_mlp().eval()
        x = torch.from_numpy(C.mlp_inputs(1)[0])
        t0 = time.perf_counter()
        with torch.inference_mode():
            if variant == "jit.trace":
                fn = torch.jit.trace(net, x)
            elif variant == "compile":
                fn = torch.compile(net)
            else:
                fn = net
            out = fn(x)
        setup = time.perf_counter() - t0
        warm, reps = C.reps("W2", quick)

        def call():
            with torch.inference_mode():
                fn(x)
        samples = C.time_blocks(call, C.W2_BLOCK, warm, reps)
        return C.record(SYSTEM, variant, "W2", samples, check=C.check_value(out.numpy()),
                        setup_s=setup)
    return body


def w3(variant, quick):
    def body():
        net = make_mlp().train()
        xn, yn = C.mlp_inputs(C.BATCH_W3)
        x, y = torch.from_numpy(xn), torch.from_numpy(yn)
        opt = torch.optim.SGD(net.parameters(), lr=C.LR)
        loss_fn = tnn.CrossEntropyLoss()
        model = torch.compile(net) if variant == "compile" else net

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return loss
        t0 = time.perf_counter()
        first = float(step().item())
        setup = time.perf_counter() - t0
        warm, reps = C.reps("W3", quick)
        samples = C.time_blocks(lambda: step().item(), C.W3_BLOCK, warm, reps)
        return C.record(SYSTEM, variant, "W3", samples, first_loss=first, setup_s=setup)
    return body


def sgemm(n, quick):
    def body():
        g = torch.Generator().manual_seed(C.SEED)
        a = torch.randn(n, n, generator=g)
        b = torch.randn(n, n, generator=g)
        out = torch.empty(n, n)
        reps = (3 if quick else 7) if n >= 4096 else (5 if quick else 15)
        samples = C.time_calls(lambda: torch.matmul(a, b, out=out), 1, reps)
        med = C.median(samples)
        return {"system": SYSTEM, "variant": f"matmul{n}", "workload": "W0", "unit": "GFLOP/s",
                "median": 2.0 * n ** 3 / med / 1e9, "n_samples": reps,
                "samples": [2.0 * n ** 3 / s / 1e9 for s in samples],
                "threads": torch.get_num_threads()}
    return body


def main():
    a = C.parse_args()
    wl = a.workload
    plan = {
        "W0": [("matmul2048", sgemm(2048, a.quick)), ("matmul4096", sgemm(4096, a.quick))],
        "W1": [(v, elementwise("W1", v, a.quick)) for v in ("eager", "compile")],
        "W1b": [(v, elementwise("W1b", v, a.quick)) for v in ("eager", "compile")],
        "W2": [(v, w2(v, a.quick)) for v in ("eager", "jit.trace", "compile")],
        "W3": [(v, w3(v, a.quick)) for v in ("eager", "compile")],
    }.get(wl, [])
    for variant, body in plan:
        if C.wanted(a, variant):
            C.run_variant(SYSTEM, variant, wl, body)


if __name__ == "__main__":
    main()
