"""PyTorch on the same GPU: the CPU harness's models (torch_w.py, torch_w7_9.py builders and
seeded weights) moved to CUDA, timed with the CPU harness's method plus device synchronization.

Settings, as a skilled user would set them for float32 work and as the report prints them:
TF32 off for matmuls and convolutions (graphc computes in float32; TF32 would be other work),
cuDNN's autotuner on (`cudnn.benchmark`), inference under `torch.inference_mode`, channels_last
tried for the CNNs. torch.compile variants: the default mode and mode="reduce-overhead" (CUDA
graphs, PyTorch's best for launch-bound small batches); max-autotune modes only on request
(their autotuning compiles for minutes, past a lease's budget). W5's nn.LSTM runs cuDNN's fused
kernel in eager mode; the CPU harness runs it eager only, and so does this file.
Without CUDA (--smoke) the same code runs on the CPU.
"""
from __future__ import annotations

import gpu_common as G  # first: sys.path, thread pins

import time

import numpy as np
import torch
import torch.nn.functional as Fn

import torch_w as T
import torch_w7_9 as T79

C, W = G.C, G.W
SYSTEM = "torch"
DEV = "cuda" if torch.cuda.is_available() else "cpu"
EAGER_VARIANTS = {"W4": ("eager", "eager+channels_last"), "W9": ("eager", "eager+channels_last")}
# the compile modes each workload is run with (besides the default mode): CUDA graphs where a
# step is many small launches; W1/W1b are one kernel, W9 a batch-16 CNN step of large kernels
CUDAGRAPH_WORKLOADS = {"W2", "W3", "W4", "W8a", "W8b"}
CHANNELS_LAST = {"W4", "W9"}     # compiled CNNs are run channels_last (the CPU harness's best)


def sync() -> None:
    if DEV == "cuda":
        torch.cuda.synchronize()


def settings() -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    info = {"torch": torch.__version__, "torch_device": DEV,
            "torch_settings": "float32 (TF32 off), cudnn.benchmark"}
    if DEV == "cuda":
        p = torch.cuda.get_device_properties(0)
        info.update(device=p.name, multiprocessors=p.multi_processor_count,
                    memory_gib=round(p.total_memory / 2 ** 30, 1),
                    cuda=torch.version.cuda)
    return info


def variants(wl: str, group: str, modes) -> list:
    """The variant names of workload `wl` for the process `group` ('eager' or 'compile')."""
    if group == "eager":
        return list(EAGER_VARIANTS.get(wl, ("eager",)))
    if wl == "W5":
        return []
    cl = "+channels_last" if wl in CHANNELS_LAST else ""
    out = []
    for mode in modes:
        if mode == "default":
            out.append("compile" + cl)
        elif mode == "reduce-overhead" and wl in CUDAGRAPH_WORKLOADS and DEV == "cuda":
            out.append("compile cudagraphs" + cl)
        elif mode.startswith("max-autotune"):
            out.append(f"compile {mode}{cl}")
    return out


def compiled(model, variant: str):
    if not variant.startswith("compile"):
        return model
    if "cudagraphs" in variant:
        return torch.compile(model, mode="reduce-overhead")
    for mode in ("max-autotune-no-cudagraphs", "max-autotune"):
        if mode in variant:
            return torch.compile(model, mode=mode)
    return torch.compile(model)


def _tensor(a, **kw):
    return torch.from_numpy(np.ascontiguousarray(a)).to(DEV, **kw)


def _layout(net, x, variant):
    if "channels_last" in variant:
        return (net.to(memory_format=torch.channels_last),
                x.contiguous(memory_format=torch.channels_last))
    return net, x


# ------------------------------------------------------------------ limits
def copy_bandwidth(quick: bool):
    """A device-to-device copy's rate, counting bytes read and written: the ceiling W1/W1b are
    compared with (the GPU's STREAM)."""
    def body():
        n = C.N_W1 * 4              # 256 MiB on a GPU: several times any L2
        src = torch.randn(n, device=DEV)
        dst = torch.empty_like(src)
        warm, reps = C.reps("W1", quick)
        samples = G.time_throughput(lambda: dst.copy_(src), sync, G.W1_BLOCK_GPU, warm, reps)
        if not torch.equal(dst, src):
            raise AssertionError("the copy's destination differs from its source")
        return {"system": SYSTEM, "variant": "copy", "workload": "W0", "unit": "GB/s",
                "median": 8.0 * n / C.median(samples) / 1e9, "n_samples": len(samples),
                "samples": [8.0 * n / s / 1e9 for s in samples], "bytes": 8 * n}
    return body


def sgemm_rate(quick: bool):
    """float32 matmul (TF32 off) at 4096^3: the ceiling of the GEMM-bound workloads."""
    def body():
        n = 4096 if DEV == "cuda" else 256
        g = torch.Generator(device=DEV).manual_seed(C.SEED)
        a = torch.randn(n, n, device=DEV, generator=g)
        b = torch.randn(n, n, device=DEV, generator=g)
        out = torch.empty(n, n, device=DEV)
        samples = G.time_throughput(lambda: torch.matmul(a, b, out=out), sync, 5, 1,
                                    5 if quick else 10)
        return {"system": SYSTEM, "variant": f"matmul{n} fp32", "workload": "W0",
                "unit": "GFLOP/s", "median": 2.0 * n ** 3 / C.median(samples) / 1e9,
                "n_samples": len(samples), "samples": [2.0 * n ** 3 / s / 1e9 for s in samples]}
    return body


# ------------------------------------------------------------------ workloads
def elementwise(wl, variant, quick):
    def body():
        xn = C.w1_input()
        x = _tensor(xn)
        t0 = time.perf_counter()
        fn = compiled(T.f_w1 if wl == "W1" else T.f_w1b, variant)
        with torch.inference_mode():
            y = fn(x).cpu().numpy()
        setup = time.perf_counter() - t0
        err = G.check_w1(wl, xn, y)

        def call():
            with torch.inference_mode():
                fn(x)
        warm, reps = C.reps(wl, quick)
        samples = G.time_throughput(call, sync, G.W1_BLOCK_GPU, warm, reps)
        return G.w1_record(SYSTEM, variant, wl, samples, check=C.check_value(y),
                           max_abs_err=err, setup_s=setup)
    return body


def _inference(wl, variant, quick, net, xn, block, reps, record, check):
    """Build, check and time batch-1 inference: each call synchronized (a latency, as the CPU
    harness's blocking calls are)."""
    net, x = _layout(net.to(DEV).eval(), _tensor(xn), variant)
    t0 = time.perf_counter()
    fn = compiled(net, variant)
    with torch.inference_mode():
        out = fn(x).float().cpu().numpy()       # a copy: CUDA-graph outputs are overwritten
    setup = time.perf_counter() - t0

    def call():
        with torch.inference_mode():
            fn(x)
        sync()
    warm, n = reps
    samples = C.time_blocks(call, block, warm, n)
    return record(SYSTEM, variant, wl, samples, setup_s=setup, **check(out))


def w2(variant, quick):
    def body():
        xn = C.mlp_inputs(1)[0]
        ws, bs = C.mlp_weights()

        def check(out):
            err = float(np.max(np.abs(out - C.mlp_forward_np(xn, ws, bs))))
            if not err < 1e-3:
                raise AssertionError(f"W2: wrong result, max abs error {err:g} vs numpy")
            return {"check": C.check_value(out), "max_abs_err": err}
        return _inference("W2", variant, quick, T.make_mlp(), xn, C.W2_BLOCK,
                          C.reps("W2", quick), C.record, check)
    return body


def w4(variant, quick):
    def body():
        def check(out):
            return {"check": C.check_weighted(out), "argmax": int(out.argmax()),
                    "weights": "seeded"}
        return _inference("W4", variant, quick, T.make_resnet(), C.w4_input(), C.W4_BLOCK,
                          C.reps("W4", quick), C.record, check)
    return body


def w8a(variant, quick):
    def body():
        def check(out):
            return {"check": C.check_weighted(out), "weights": "seeded"}
        return _inference("W8a", variant, quick, T79.make_encoder(), W.w8a_input(),
                          W.W8A_BLOCK, W.reps("W8a", quick), W.record, check)
    return body


def w3(variant, quick):
    def body():
        net = T.make_mlp().to(DEV).train()
        xn, yn = C.mlp_inputs(C.BATCH_W3)
        x, y = _tensor(xn), _tensor(yn)
        opt = torch.optim.SGD(net.parameters(), lr=C.LR)
        model = compiled(net, variant)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = Fn.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        losses = []
        t0 = time.perf_counter()
        losses.append(step().item())
        setup = time.perf_counter() - t0
        ws, bs = C.mlp_weights()
        want = C.softmax_ce_np(C.mlp_forward_np(xn, ws, bs), yn)
        if not abs(losses[0] - want) < 1e-3:
            raise AssertionError(f"W3: first-step loss {losses[0]:.6g}, numpy {want:.6g}")
        warm, reps = C.reps("W3", quick)
        samples = C.time_blocks(lambda: losses.append(step().item()), C.W3_BLOCK, warm, reps)
        return C.record(SYSTEM, variant, "W3", samples, first_loss=losses[0], setup_s=setup,
                        losses=losses[:400], n_steps=len(losses))
    return body


def w5(variant, quick):
    def body():
        net = T.make_lm().to(DEV).train()
        xn, yn = C.lstm_lm_data()
        x, y = _tensor(xn), _tensor(yn).reshape(-1)
        opt = torch.optim.SGD(net.parameters(), lr=C.W5_LR)
        params = list(net.parameters())

        def step():
            opt.zero_grad(set_to_none=True)
            loss = Fn.cross_entropy(net(x).reshape(-1, C.W5_VOCAB), y)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, C.W5_CLIP)
            opt.step()
            return loss, norm
        t0 = time.perf_counter()
        loss, norm = step()
        losses = [float(loss.item())]
        gnorm = float(norm.item())
        setup = time.perf_counter() - t0
        warm, reps = C.reps("W5", quick)
        samples = C.time_blocks(lambda: losses.append(step()[0].item()), C.W5_BLOCK, warm,
                                reps)
        return C.record(SYSTEM, variant, "W5", samples, first_loss=losses[0], grad_norm=gnorm,
                        setup_s=setup, weights="seeded", losses=losses[:400],
                        n_steps=len(losses))
    return body


def w8b(variant, quick):
    def body():
        cfg = W.W8B
        net = T79.TransformerLM(cfg["layers"], cfg["units"], cfg["heads"], cfg["ffn"],
                                cfg["vocab"], cfg["seq"], cfg["eps"])
        T79._load(net, W.w8b_params(), "W8b LM")
        net = net.to(DEV).train()
        tn, yn = W.w8b_data()
        tokens, y = _tensor(tn), _tensor(yn).reshape(-1)
        mask = _tensor(W.causal_mask(cfg["seq"]))
        model = compiled(net, variant)
        opt = torch.optim.Adam(net.parameters(), lr=W.W8B_LR)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = Fn.cross_entropy(model(tokens, mask).reshape(-1, cfg["vocab"]), y)
            loss.backward()
            opt.step()
            return loss
        return T79._train_loop(SYSTEM, variant, "W8b", step, quick, W.W8B_BLOCK)
    return body


def w9(variant, quick):
    def body():
        xn, yn = W.w9_data()
        net, x = _layout(T.make_resnet().to(DEV).train(), _tensor(xn), variant)
        y = _tensor(yn)
        model = compiled(net, variant)
        opt = torch.optim.SGD(net.parameters(), lr=W.W9_LR, momentum=W.W9_MOMENTUM,
                              weight_decay=W.W9_WD)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = Fn.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        if DEV == "cuda":
            torch.cuda.reset_peak_memory_stats()
        rec = T79._train_loop(SYSTEM, variant, "W9", step, quick, W.W9_BLOCK)
        rec["peak_rss_mib"] = W.peak_rss_mib()
        if DEV == "cuda":
            rec["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
            rec["gpu_peak_scope"] = "this variant (reset_peak_memory_stats before it)"
        return rec
    return body


BODIES = {"W1": lambda v, q: elementwise("W1", v, q), "W1b": lambda v, q: elementwise("W1b", v, q),
          "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W8a": w8a, "W8b": w8b, "W9": w9}


def run(group: str, workloads, quick: bool, modes=("default", "reduce-overhead")) -> None:
    """One process: group 'eager' (the limits first, then every eager variant) or 'compile'
    (the default mode over every workload first, then each further mode: a budget that runs
    out leaves each workload its default-mode figure before any second mode)."""
    C.emit({"info": settings(), "system": SYSTEM})
    name = "torch" if group == "eager" else "torch.compile"
    if group == "eager":
        for label, body in (("copy", copy_bandwidth(quick)), ("matmul", sgemm_rate(quick))):
            C.run_variant(SYSTEM, label, "W0", body)
        passes = [None]
    else:
        passes = [(m,) for m in modes]
        if "W5" in workloads:
            C.emit({"system": SYSTEM, "variant": "compile", "workload": "W5",
                    "skip": "not run: nn.LSTM runs cuDNN's fused kernel (eager only, as in "
                            "the CPU harness)"})
    for pass_modes in passes:
        for wl in workloads:
            vs = variants(wl, group, pass_modes) if wl in BODIES else []
            if vs:
                G.start(SYSTEM, wl)
            for v in vs:
                if G.skip_for_budget(SYSTEM, v, wl, need_s=5.0 if group == "eager" else 30.0):
                    continue
                C.run_variant(SYSTEM, v, wl, BODIES[wl](v, quick), fields={"process": name})
