"""PyTorch CPU: eager, torch.compile, torch.jit.trace (W2); W0 torch matmul.

W4/W6: ResNet-18 v1 written by hand with MXNet's model-zoo structure (torchvision does not
install beside this torch); `torch_w.py --export-onnx PATH` writes it, with the seeded
weights, as the ONNX file the onnxruntime system runs. W5: nn.Embedding -> nn.LSTM -> Linear.
"""
import _common as C  # first: pins thread counts

import json
import sys
import time

import numpy as np
import torch
import torch.nn as tnn
from _torch_seed import assign_seeded

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


# ------------------------------------------------------------------ W4: ResNet-18 v1
def _conv3x3(cin, ch, stride):
    return tnn.Conv2d(cin, ch, 3, stride, 1, bias=False)


class BasicBlockV1(tnn.Module):
    """MXNet's BasicBlockV1: body conv3x3-BN-relu-conv3x3-BN; 1x1 conv + BN shortcut when the
    channel count changes; relu(body + shortcut)."""

    def __init__(self, cin, ch, stride):
        super().__init__()
        self.body = tnn.Sequential(_conv3x3(cin, ch, stride), tnn.BatchNorm2d(ch), tnn.ReLU(),
                                   _conv3x3(ch, ch, 1), tnn.BatchNorm2d(ch))
        self.downsample = (tnn.Sequential(tnn.Conv2d(cin, ch, 1, stride, bias=False),
                                          tnn.BatchNorm2d(ch)) if ch != cin else None)

    def forward(self, x):
        residual = self.downsample(x) if self.downsample is not None else x
        return torch.relu(self.body(x) + residual)


class ResNet18V1(tnn.Module):
    def __init__(self):
        super().__init__()
        layers = [tnn.Conv2d(3, 64, 7, 2, 3, bias=False), tnn.BatchNorm2d(64), tnn.ReLU(),
                  tnn.MaxPool2d(3, 2, 1)]
        cin = 64
        for ch, stride in C.RESNET18_STAGES:
            layers += [BasicBlockV1(cin, ch, stride), BasicBlockV1(ch, ch, 1)]
            cin = ch
        layers.append(tnn.AdaptiveAvgPool2d(1))
        self.features = tnn.Sequential(*layers)
        self.output = tnn.Linear(512, C.W4_CLASSES)

    def forward(self, x):
        return self.output(torch.flatten(self.features(x), 1))


def make_resnet(seeded=True):
    net = ResNet18V1().eval()
    if seeded:
        assign_seeded(net, C.resnet18_params(), "ResNet-18 parameters")
    return net


def export_onnx(path):
    net = make_resnet()
    x = torch.from_numpy(C.w4_input())
    with torch.no_grad():
        torch.onnx.export(net, (x,), path, dynamo=False, opset_version=17,
                          input_names=["data"], output_names=["output"])
        y = net(x).numpy()
    print(C.PREFIX + json.dumps({"check": C.check_weighted(y)}), flush=True)


def export_w2_onnx(path):
    """W2's MLP (seeded weights, batch 1) as ONNX for onnxruntime."""
    net = make_mlp().eval()
    x = torch.from_numpy(C.mlp_inputs(1)[0])
    with torch.no_grad():
        torch.onnx.export(net, (x,), path, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
        y = net(x).numpy()
    print(C.PREFIX + json.dumps({"check": C.check_value(y)}), flush=True)


def compiled(net, variant):
    """torch.compile as the variant name says: '+freezing' turns on inductor's freezing (weights
    folded as constants, for inference), 'max-autotune' picks the mode
    max-autotune-no-cudagraphs; otherwise the default mode."""
    import torch._inductor.config as ic
    ic.freezing = "freezing" in variant      # a process-wide setting: set for every variant
    if "max-autotune" in variant:
        return torch.compile(net, mode="max-autotune-no-cudagraphs")
    return torch.compile(net)


def w4(variant, quick):
    def body():
        net = make_resnet()
        x = torch.from_numpy(C.w4_input())
        if "channels_last" in variant:
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        with torch.inference_mode():
            fn = compiled(net, variant) if variant.startswith("compile") else net
            out = fn(x)
        setup = time.perf_counter() - t0
        warm, reps = C.reps("W4", quick)

        def call():
            with torch.inference_mode():
                fn(x)
        samples = C.time_blocks(call, C.W4_BLOCK, warm, reps)
        return C.record(SYSTEM, variant, "W4", samples, check=C.check_weighted(out.numpy()),
                        argmax=int(out.argmax()), setup_s=setup, weights="seeded")
    return body


# ------------------------------------------------------------------ W5: LSTM LM
class LstmLM(tnn.Module):
    """W5's LM; dropout > 0 gives W5b (word_language_model: on the embedding output, between
    the LSTM layers, before the decoder)."""

    def __init__(self, dropout=0.0):
        super().__init__()
        self.encoder = tnn.Embedding(C.W5_VOCAB, C.W5_EMBED)
        self.rnn = tnn.LSTM(C.W5_EMBED, C.W5_HIDDEN, C.W5_LAYERS, dropout=dropout)
        self.decoder = tnn.Linear(C.W5_HIDDEN, C.W5_VOCAB)
        self.drop = tnn.Dropout(dropout) if dropout else tnn.Identity()   # W5: no kernel

    def forward(self, x):
        h, _ = self.rnn(self.drop(self.encoder(x)))
        return self.decoder(self.drop(h))


def make_lm(dropout=0.0):
    net = LstmLM(dropout)
    p = C.lstm_lm_params()
    pairs = [(net.encoder.weight, p["embedding.weight"]),
             (net.decoder.weight, p["decoder.weight"]), (net.decoder.bias, p["decoder.bias"])]
    for layer in range(C.W5_LAYERS):
        for tk, mk in (("weight_ih", "i2h_weight"), ("weight_hh", "h2h_weight"),
                       ("bias_ih", "i2h_bias"), ("bias_hh", "h2h_bias")):
            pairs.append((getattr(net.rnn, f"{tk}_l{layer}"), p[f"l{layer}_{mk}"]))
    with torch.no_grad():
        for t, a in pairs:
            if tuple(t.shape) != a.shape:
                raise ValueError(f"shape {tuple(t.shape)} vs seeded {a.shape}")
            t.copy_(torch.from_numpy(a))
    return net


def w5(variant, quick, wl="W5"):
    def body():
        net = make_lm(C.W5B_DROPOUT if wl == "W5b" else 0.0).train()
        xn, yn = C.lstm_lm_data()
        x, y = torch.from_numpy(xn), torch.from_numpy(yn).reshape(-1)
        opt = torch.optim.SGD(net.parameters(), lr=C.W5_LR)
        loss_fn = tnn.CrossEntropyLoss()     # mean over the seq*batch positions
        params = list(net.parameters())

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x).reshape(-1, C.W5_VOCAB), y)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, C.W5_CLIP)
            opt.step()
            return loss, norm
        t0 = time.perf_counter()
        loss, norm = step()
        first, gnorm = float(loss.item()), float(norm.item())
        losses = [first]    # every step's loss, compared across systems in the report
        setup = time.perf_counter() - t0
        warm, reps = C.reps(wl, quick)
        samples = C.time_blocks(lambda: losses.append(step()[0].item()), C.W5_BLOCK, warm, reps)
        if wl == "W5b":     # own dropout masks: neither the losses nor the norm compare
            return C.record(SYSTEM, variant, wl, samples, first_loss=first, setup_s=setup,
                            weights="seeded", dropout=C.W5B_DROPOUT, n_steps=len(losses))
        return C.record(SYSTEM, variant, "W5", samples, first_loss=first, grad_norm=gnorm,
                        setup_s=setup, weights="seeded", losses=losses[:400],
                        n_steps=len(losses))
    return body


# ------------------------------------------------------------------ W6: first call, fresh process
def w6_child(variant):
    def body():
        import_s = time.perf_counter() - C.T_START
        t0 = time.perf_counter()
        net = make_resnet(seeded=False)
        x = torch.from_numpy(C.w4_input())
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.inference_mode():
            fn = torch.compile(net)
            y = fn(x)
        first = time.perf_counter() - t0
        return {"system": SYSTEM, "variant": variant, "workload": "W6", "first_call_s": first,
                "import_s": import_s, "build_s": build, "check": C.check_weighted(y.numpy())}
    return body


def w6_parent(quick):
    import tempfile
    _, n = C.reps("W6", quick)
    order = ["compile-cold", "compile-warm"]
    pairs = []
    for _ in range(n):
        d = tempfile.mkdtemp(prefix="bench-inductor-")
        pairs += [("compile-cold", {"TORCHINDUCTOR_CACHE_DIR": d}),
                  ("compile-warm", {"TORCHINDUCTOR_CACHE_DIR": d})]
    runs, errors = C.w6_children(__file__, pairs, quick)
    C.w6_emit(SYSTEM, runs, errors, order,
              note="cold: empty TORCHINDUCTOR_CACHE_DIR; warm: a second fresh process with "
                   "that cache dir")


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
            elif variant == "jit.freeze":
                fn = torch.jit.freeze(torch.jit.trace(net, x))
            elif variant.startswith("compile"):
                fn = compiled(net, variant)
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
        model = compiled(net, variant) if variant.startswith("compile") else net

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return loss
        losses = []     # every step's loss, compared across systems in the report
        t0 = time.perf_counter()
        losses.append(step().item())
        first = losses[0]
        setup = time.perf_counter() - t0
        warm, reps = C.reps("W3", quick)
        samples = C.time_blocks(lambda: losses.append(step().item()), C.W3_BLOCK, warm, reps)
        return C.record(SYSTEM, variant, "W3", samples, first_loss=first, setup_s=setup,
                        losses=losses[:400], n_steps=len(losses))
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
    if len(sys.argv) == 3 and sys.argv[1] == "--export-onnx":
        export_onnx(sys.argv[2])
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--export-onnx-w8a":
        import torch_w7_9
        torch_w7_9.export_w8a_onnx(sys.argv[2])
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--export-onnx-w2":
        export_w2_onnx(sys.argv[2])
        return
    a = C.parse_args()
    wl = a.workload
    if wl in ("W7", "W8a", "W8b", "W9"):
        import torch_w7_9
        todo = [(v, b) for v, b in torch_w7_9.plan(SYSTEM, wl, a.quick, make_resnet)
                if C.wanted(a, v)]
        if wl == "W9" and len(todo) > 1:
            # peak RSS is per process: one fresh process per variant
            C.variants_in_children(__file__, wl, [v for v, _ in todo], a.quick)
            return
        for variant, body in todo:
            C.run_variant(SYSTEM, variant, wl, body)
        return
    if wl == "W10":
        import torch_w10
        if a.child:
            torch_w10.child(a.variants, a.quick)
        else:
            torch_w10.parent(a.quick)
        return
    if wl == "W6":
        if a.child:
            v = a.variants
            C.run_variant(SYSTEM, v, "W6", w6_child(v))
        else:
            w6_parent(a.quick)
        return
    plan = {
        "W0": [("matmul2048", sgemm(2048, a.quick)), ("matmul4096", sgemm(4096, a.quick))],
        "W1": [(v, elementwise("W1", v, a.quick)) for v in ("eager", "compile")],
        "W1b": [(v, elementwise("W1b", v, a.quick)) for v in ("eager", "compile")],
        "W2": [(v, w2(v, a.quick)) for v in ("eager", "jit.trace", "jit.freeze", "compile",
                                             "compile+freezing", "compile max-autotune")],
        "W3": [(v, w3(v, a.quick)) for v in ("eager", "compile", "compile max-autotune")],
        "W4": [(v, w4(v, a.quick)) for v in ("eager", "eager+channels_last", "compile",
                                             "compile+freezing+channels_last",
                                             "compile max-autotune")],
        "W5": [("eager", w5("eager", a.quick))],
        "W5b": [("eager", w5("eager", a.quick, "W5b"))],
    }.get(wl, [])
    for variant, body in plan:
        if not C.wanted(a, variant):
            continue
        if a.quick and "max-autotune" in variant and not a.variants:
            C.emit({"system": SYSTEM, "variant": variant, "workload": wl,
                    "skip": "not run with --quick (its autotuning compiles for minutes)"})
            continue
        C.run_variant(SYSTEM, variant, wl, body)


if __name__ == "__main__":
    main()
