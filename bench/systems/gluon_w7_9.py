"""W7, W8a, W8b and W9 through the Gluon API, one source for graphc and MXNet 1.9.1.

`plan(mx, system, wl, quick)` returns [(variant, body)] for the system whose package is `mx`
(graphc imported as mx, or mxnet); each body returns a result record. graphc's records are also
checked against numpy references (_w7_9); MXNet's are compared with the others in the report.
"""
from __future__ import annotations

import time

import numpy as np

import _common as C
import _transformer as T
import _w7_9 as W


def _arr(mx, a, dtype=np.float32):
    return mx.nd.array(np.asarray(a, dtype=dtype))


def _mlp(mx):
    nn = mx.gluon.nn
    net = nn.HybridSequential()
    net.add(nn.Dense(512, activation="relu", in_units=784),
            nn.Dense(512, activation="relu", in_units=512), nn.Dense(10, in_units=512))
    net.initialize(mx.init.Xavier())
    ws, bs = C.mlp_weights()
    for blk, w, b in zip(list(net), ws, bs):
        blk.weight.set_data(_arr(mx, w.T))
        blk.bias.set_data(_arr(mx, b))
    return net


def w7(mx, system, variant, quick, check):
    """Imperative step: the net is never hybridized, every operator dispatched one by one."""
    def body():
        ag, gluon = mx.autograd, mx.gluon
        net = _mlp(mx)
        xn, yn = C.mlp_inputs(W.W7_BATCH)
        x, y = _arr(mx, xn), _arr(mx, yn)
        trainer = gluon.Trainer(net.collect_params(), "sgd",
                                {"learning_rate": W.W7_LR, "momentum": W.W7_MOMENTUM})
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        trace = W.LossTrace()

        def step():
            with ag.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(W.W7_BATCH)
            trace.add(loss.mean().asscalar())
        t0 = time.perf_counter()
        step()
        setup = time.perf_counter() - t0
        if check:
            want = W.w7_losses_np(1)[0]
            if not abs(trace.values[0] - want) < 1e-4:
                raise AssertionError(f"W7 first loss {trace.values[0]:.6g}, numpy {want:.6g}")
        warm, reps = W.reps("W7", quick)
        samples = C.time_blocks(step, W.W7_BLOCK, warm, reps)
        if check:
            want = W.w7_losses_np(min(len(trace.values), 30))
            bad = [i for i, (a, b) in enumerate(zip(trace.values, want))
                   if not abs(a - b) <= 1e-3 + 1e-3 * abs(b)]
            if bad:
                i = bad[0]
                raise AssertionError(f"W7 step {i} loss {trace.values[i]:.6g}, numpy "
                                     f"(float64) {want[i]:.6g}")
        return W.record(system, variant, "W7", samples, setup_s=setup, **trace.fields())
    return body


def _encoder(mx):
    cfg = W.W8A
    _, Encoder, _ = T.blocks(mx.gluon)
    net = Encoder(cfg["layers"], cfg["units"], cfg["heads"], cfg["ffn"], cfg["eps"])
    net.initialize(mx.init.Normal(0.02))
    T.load_flat(net, W.w8a_params(), mx.nd, "W8a encoder")
    return net


def w8a(mx, system, variant, quick, check):
    def body():
        net = _encoder(mx)
        xn = W.w8a_input()
        x = _arr(mx, xn)
        t0 = time.perf_counter()
        net.hybridize(static_alloc=True, static_shape=True)
        if variant == "hybrid+oneDNN":
            net.optimize_for(x, backend="MKLDNN", static_alloc=True, static_shape=True)
        out = net(x)
        out.wait_to_read()
        setup = time.perf_counter() - t0
        yn = out.asnumpy()
        extra = {}
        if check:
            ref = W.encoder_np(xn, W.w8a_params(), W.W8A["layers"], W.W8A["heads"],
                               W.W8A["eps"])
            err = float(np.max(np.abs(yn - ref)))
            if not err < 2e-3:
                raise AssertionError(f"W8a output differs from numpy's float64 forward: max "
                                     f"abs error {err:g}")
            extra["max_abs_err"] = err

        def call():
            net(x).wait_to_read()
        warm, reps = W.reps("W8a", quick)
        samples = C.time_blocks(call, W.W8A_BLOCK, warm, reps)
        return W.record(system, variant, "W8a", samples, check=C.check_weighted(yn),
                        setup_s=setup, weights="seeded", **extra)
    return body


def w8b(mx, system, variant, quick, check):
    def body():
        cfg = W.W8B
        gluon = mx.gluon
        _, _, LM = T.blocks(gluon)
        net = LM(cfg["layers"], cfg["units"], cfg["heads"], cfg["ffn"], cfg["vocab"],
                 cfg["seq"], cfg["eps"])
        net.initialize(mx.init.Normal(0.02))
        flat = W.w8b_params()
        T.load_flat(net, flat, mx.nd, "W8b LM")
        tn, yn = W.w8b_data()
        tokens, y = _arr(mx, tn), _arr(mx, yn.reshape(-1))
        mask = _arr(mx, W.causal_mask(cfg["seq"]))
        net.hybridize(static_alloc=True, static_shape=True)
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        loss_fn.hybridize(static_alloc=True, static_shape=True)
        trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": W.W8B_LR})
        n_tok = cfg["batch"] * cfg["seq"]
        trace = W.LossTrace()

        def step():
            with mx.autograd.record():
                loss = loss_fn(net(tokens, mask).reshape((-3, -1)), y)
            loss.backward()
            trainer.step(n_tok)
            trace.add(loss.mean().asscalar())
        t0 = time.perf_counter()
        step()
        setup = time.perf_counter() - t0
        if check:
            want = W.w8b_loss_np(flat, tn, yn)
            if not abs(trace.values[0] - want) < 1e-3:
                raise AssertionError(f"W8b first loss {trace.values[0]:.6g}, numpy {want:.6g}")
        warm, reps = W.reps("W8b", quick)
        samples = C.time_blocks(step, W.W8B_BLOCK, warm, reps)
        return W.record(system, variant, "W8b", samples, setup_s=setup, weights="seeded",
                        **trace.fields())
    return body


def w9(mx, system, variant, quick, check):
    def body():
        gluon = mx.gluon
        net = gluon.model_zoo.vision.get_model("resnet18_v1")
        net.initialize(mx.init.Xavier())
        net(mx.nd.zeros((1, 3, W.W9_IMAGE, W.W9_IMAGE))).wait_to_read()     # deferred shapes
        T.load_flat(net, C.resnet18_params(), mx.nd, "W9 ResNet-18")
        xn, yn = W.w9_data()
        x, y = _arr(mx, xn), _arr(mx, yn)
        net.hybridize(static_alloc=True, static_shape=True)
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        loss_fn.hybridize(static_alloc=True, static_shape=True)
        trainer = gluon.Trainer(net.collect_params(), "sgd",
                                {"learning_rate": W.W9_LR, "momentum": W.W9_MOMENTUM,
                                 "wd": W.W9_WD})
        trace = W.LossTrace()

        def step():
            with mx.autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(W.W9_BATCH)
            trace.add(loss.mean().asscalar())
        t0 = time.perf_counter()
        step()
        setup = time.perf_counter() - t0
        warm, reps = W.reps("W9", quick)
        samples = C.time_blocks(step, W.W9_BLOCK, warm, reps)
        return W.record(system, variant, "W9", samples, setup_s=setup, weights="seeded",
                        peak_rss_mib=W.peak_rss_mib(), **trace.fields())
    return body


def plan(mx, system, wl, quick, check=False):
    """[(variant, body)] of workload `wl`; `check`: compare with the numpy references."""
    if wl == "W7":
        return [("imperative", w7(mx, system, "imperative", quick, check))]
    if wl == "W8a":
        vs = ["hybrid"] + (["hybrid+oneDNN"] if system == "mxnet" else [])
        return [(v, w8a(mx, system, v, quick, check)) for v in vs]
    if wl == "W8b":
        return [("hybrid", w8b(mx, system, "hybrid", quick, check))]
    if wl == "W9":
        return [("hybrid", w9(mx, system, "hybrid", quick, check))]
    return []
