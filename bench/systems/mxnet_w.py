"""Apache MXNet 1.9.1 Gluon, hybridized with static_alloc=True, static_shape=True."""
import _common as C  # first: pins thread counts

import time
import warnings

warnings.filterwarnings("ignore")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon, nd  # noqa: E402
from mxnet.gluon import nn  # noqa: E402

import gluon_lm  # noqa: E402

SYSTEM = "mxnet"
VARIANT = "hybrid"


class W1Block(gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return F.tanh(x * 0.5 + 1.0) * F.sigmoid(x) + 0.1 * x


class W1bBlock(gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return F.relu(x * 0.5 + 1.0) * x - 0.25


def make_mlp():
    net = nn.HybridSequential()
    net.add(nn.Dense(512, activation="relu", in_units=784),
            nn.Dense(512, activation="relu", in_units=512),
            nn.Dense(10, in_units=512))
    net.initialize(mx.init.Xavier())
    ws, bs = C.mlp_weights()
    dense = [blk for blk in net]
    for blk, w, b in zip(dense, ws, bs):
        blk.weight.set_data(nd.array(w.T))
        blk.bias.set_data(nd.array(b))
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def elementwise(wl, quick):
    def body():
        xn = C.w1_input()
        x = nd.array(xn)
        net = W1Block() if wl == "W1" else W1bBlock()
        t0 = time.perf_counter()
        net.hybridize(static_alloc=True, static_shape=True)
        y = net(x)
        y.wait_to_read()
        setup = time.perf_counter() - t0
        yn = y.asnumpy()
        ref = (C.w1_reference if wl == "W1" else C.w1b_reference)(xn)

        def call():
            net(x).wait_to_read()
        warm, reps = C.reps(wl, quick)
        samples = C.time_calls(call, warm, reps)
        return C.record(SYSTEM, VARIANT, wl, samples, check=C.check_value(yn),
                        max_abs_err=float(np.max(np.abs(yn - ref))), setup_s=setup)
    return body


def w2(quick):
    def body():
        net = make_mlp()
        x = nd.array(C.mlp_inputs(1)[0])
        t0 = time.perf_counter()
        out = net(x)
        out.wait_to_read()
        setup = time.perf_counter() - t0

        def call():
            net(x).wait_to_read()
        warm, reps = C.reps("W2", quick)
        samples = C.time_blocks(call, C.W2_BLOCK, warm, reps)
        return C.record(SYSTEM, VARIANT, "W2", samples, check=C.check_value(out.asnumpy()),
                        setup_s=setup)
    return body


def w3(quick):
    def body():
        net = make_mlp()
        xn, yn = C.mlp_inputs(C.BATCH_W3)
        x, y = nd.array(xn), nd.array(yn.astype(np.float32))
        trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": C.LR})
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        loss_fn.hybridize(static_alloc=True, static_shape=True)   # the loss is a HybridBlock too

        losses = []     # every step's loss, compared across systems in the report

        def step():
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(C.BATCH_W3)
            losses.append(float(loss.asnumpy().mean()))
            return loss
        t0 = time.perf_counter()
        first = float(step().mean().asscalar())
        setup = time.perf_counter() - t0
        warm, reps = C.reps("W3", quick)
        samples = C.time_blocks(step, C.W3_BLOCK, warm, reps)
        nd.waitall()
        return C.record(SYSTEM, VARIANT, "W3", samples, first_loss=first, setup_s=setup,
                        losses=losses[:400], n_steps=len(losses))
    return body


# ------------------------------------------------------------------ W4: ResNet-18 v1
def make_resnet(seeded=True):
    """MXNet's own model zoo; deferred shapes are inferred by one imperative call before the
    seeded weights are set (in collect_params() order)."""
    from mxnet.gluon.model_zoo import vision
    net = vision.get_model("resnet18_v1")
    net.initialize(mx.init.Xavier())
    if seeded:
        net(nd.zeros(C.W4_SHAPE)).wait_to_read()

        def put(p, a, i):
            if tuple(p.shape) != a.shape:
                raise ValueError(f"parameter {i} {p.name}: shape {p.shape} vs seeded {a.shape}")
            p.set_data(nd.array(a))
        C.assign_flat(net.collect_params().values(), C.resnet18_params(), put,
                      "ResNet-18 parameters")
    return net


def w4(quick, variant=VARIANT):
    def body():
        net = make_resnet()
        x = nd.array(C.w4_input())
        t0 = time.perf_counter()
        net.hybridize(static_alloc=True, static_shape=True)
        if variant == "hybrid+oneDNN":
            net.optimize_for(x, backend="MKLDNN", static_alloc=True, static_shape=True)
        out = net(x)
        out.wait_to_read()
        setup = time.perf_counter() - t0
        yn = out.asnumpy()

        def call():
            net(x).wait_to_read()
        warm, reps = C.reps("W4", quick)
        samples = C.time_blocks(call, C.W4_BLOCK, warm, reps)
        return C.record(SYSTEM, variant, "W4", samples, check=C.check_weighted(yn),
                        argmax=int(yn.argmax()), setup_s=setup, weights="seeded")
    return body


# ------------------------------------------------------------------ W5: LSTM LM
def make_lm(dropout=0.0):
    return gluon_lm.make_lm(mx, dropout)


def w5(quick, wl="W5"):
    def body():
        net = make_lm(C.W5B_DROPOUT if wl == "W5b" else 0.0)
        step, losses = gluon_lm.lm_stepper(mx, net)
        n_tok = C.W5_SEQ * C.W5_BATCH
        t0 = time.perf_counter()
        loss, norm = step()
        first = float(loss.mean().asscalar())
        setup = time.perf_counter() - t0
        warm, reps = C.reps(wl, quick)
        samples = C.time_blocks(step, C.W5_BLOCK, warm, reps)
        nd.waitall()
        if wl == "W5b":     # own dropout masks: neither the losses nor the norm compare
            return C.record(SYSTEM, VARIANT, wl, samples, first_loss=first, setup_s=setup,
                            weights="seeded", dropout=C.W5B_DROPOUT, n_steps=len(losses))
        return C.record(SYSTEM, VARIANT, "W5", samples, first_loss=first,
                        grad_norm=float(norm) / n_tok, setup_s=setup, weights="seeded",
                        losses=losses[:400], n_steps=len(losses))
    return body


# ------------------------------------------------------------------ W6: first call, fresh process
def w6_child(variant):
    def body():
        import_s = time.perf_counter() - C.T_START
        t0 = time.perf_counter()
        net = make_resnet(seeded=False)
        x = nd.array(C.w4_input())
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        net.hybridize(static_alloc=True, static_shape=True)
        y = net(x)
        y.wait_to_read()
        first = time.perf_counter() - t0
        return {"system": SYSTEM, "variant": variant, "workload": "W6", "first_call_s": first,
                "import_s": import_s, "build_s": build, "check": C.check_weighted(y.asnumpy())}
    return body


def main():
    a = C.parse_args()
    wl = a.workload
    if wl == "W6":
        if a.child:
            C.run_variant(SYSTEM, VARIANT, "W6", w6_child(VARIANT))
        else:
            _, n = C.reps("W6", a.quick)
            runs, errors = C.w6_children(__file__, [(VARIANT, {})] * n, a.quick)
            C.w6_emit(SYSTEM, runs, errors, [VARIANT],
                      note="hybridize + first call (deferred shape inference, graph build)")
        return
    if wl in ("W7", "W8a", "W8b", "W9"):
        import gluon_w7_9
        for variant, body in gluon_w7_9.plan(mx, SYSTEM, wl, a.quick):
            if C.wanted(a, variant):
                C.run_variant(SYSTEM, variant, wl, body)
        return
    plan = {"W1": elementwise("W1", a.quick), "W1b": elementwise("W1b", a.quick),
            "W2": w2(a.quick), "W3": w3(a.quick), "W4": w4(a.quick),
            "W5": w5(a.quick), "W5b": w5(a.quick, "W5b")}.get(wl)
    if plan is not None and C.wanted(a, VARIANT):
        C.run_variant(SYSTEM, VARIANT, wl, plan)
    if wl == "W4" and C.wanted(a, "hybrid+oneDNN"):
        C.run_variant(SYSTEM, "hybrid+oneDNN", wl, w4(a.quick, "hybrid+oneDNN"))


if __name__ == "__main__":
    main()
