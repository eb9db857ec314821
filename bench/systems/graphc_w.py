"""graphc through its public (MXNet Gluon 1.x compatible) API, in graphc's own .venv.

Robust to an incomplete graphc: an import failure or a failing workload is reported as an
error record ("graphc: failed: <message>") and the harness goes on.
"""
import _common as C  # first: pins thread counts

import time

import numpy as np

SYSTEM = "graphc"
VARIANT = "hybrid"

try:
    import graphc as mx
    from graphc import autograd, gluon, nd
    from graphc.gluon import nn
    IMPORT_ERROR = None
except BaseException as e:  # noqa: BLE001
    IMPORT_ERROR = f"import graphc failed: {type(e).__name__}: {e}"


def make_blocks():
    class W1Block(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.tanh(x * 0.5 + 1.0) * F.sigmoid(x) + 0.1 * x

    class W1bBlock(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.relu(x * 0.5 + 1.0) * x - 0.25
    return W1Block, W1bBlock


def make_mlp():
    net = nn.HybridSequential()
    net.add(nn.Dense(512, activation="relu"), nn.Dense(512, activation="relu"), nn.Dense(10))
    net.initialize(mx.init.Xavier())
    weights = "xavier"
    # Use the same seeded weights as the other systems where the API allows it (needs the
    # parameter shapes, so in_units are inferred by one forward first). Timing does not
    # depend on it; the check values do.
    try:
        net(nd.array(np.zeros((1, C.MLP[0]), dtype=np.float32))).wait_to_read()
        ws, bs = C.mlp_weights()
        for blk, w, b in zip(list(net), ws, bs):
            blk.weight.set_data(nd.array(np.ascontiguousarray(w.T)))
            blk.bias.set_data(nd.array(b))
        weights = "seeded"
    except BaseException as e:  # noqa: BLE001
        weights = f"xavier (seeded set_data failed: {type(e).__name__}: {e})"[:200]
    net.hybridize(static_alloc=True, static_shape=True)
    return net, weights


def elementwise(wl, quick):
    def body():
        W1Block, W1bBlock = make_blocks()
        xn = C.w1_input()
        x = nd.array(xn)
        net = W1Block() if wl == "W1" else W1bBlock()
        t0 = time.perf_counter()
        net.hybridize(static_alloc=True, static_shape=True)
        y = net(x)
        y.wait_to_read()
        setup = time.perf_counter() - t0
        yn = y.asnumpy()
        ref_fn = C.w1_reference if wl == "W1" else C.w1b_reference
        err = float(np.max(np.abs(yn - ref_fn(xn))))
        if not err < 1e-3:
            raise AssertionError(f"wrong result: max abs error {err:g} vs float64 reference")

        def call():
            net(x).wait_to_read()
        warm, reps = C.reps(wl, quick)
        samples = C.time_calls(call, warm, reps)
        # Guard against a stale (cached / reused) output: a new input must give a new result.
        x2n = (xn * np.float32(-0.75)).astype(np.float32)
        y2 = net(nd.array(x2n))
        y2.wait_to_read()
        err2 = float(np.max(np.abs(y2.asnumpy() - ref_fn(x2n))))
        if not err2 < 1e-3:
            raise AssertionError(f"wrong result on a second input: max abs error {err2:g}")
        return C.record(SYSTEM, VARIANT, wl, samples, check=C.check_value(yn),
                        max_abs_err=err, setup_s=setup)
    return body


def w2(quick):
    def body():
        net, weights = make_mlp()
        xn = C.mlp_inputs(1)[0]
        x = nd.array(xn)
        t0 = time.perf_counter()
        out = net(x)
        out.wait_to_read()
        setup = time.perf_counter() - t0
        extra = {}
        if weights == "seeded":
            ws, bs = C.mlp_weights()
            err = float(np.max(np.abs(out.asnumpy() - C.mlp_forward_np(xn, ws, bs))))
            if not err < 1e-3:
                raise AssertionError(f"wrong result: max abs error {err:g} vs numpy forward")
            extra["max_abs_err"] = err

        def call():
            net(x).wait_to_read()
        warm, reps = C.reps("W2", quick)
        samples = C.time_blocks(call, C.W2_BLOCK, warm, reps)
        return C.record(SYSTEM, VARIANT, "W2", samples, check=C.check_value(out.asnumpy()),
                        setup_s=setup, weights=weights, **extra)
    return body


def w3(quick):
    def body():
        net, weights = make_mlp()
        xn, yn = C.mlp_inputs(C.BATCH_W3)
        x, y = nd.array(xn), nd.array(yn.astype(np.float32))
        trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": C.LR})
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        loss_fn.hybridize(static_alloc=True, static_shape=True)   # the loss is a HybridBlock too

        def step():
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(C.BATCH_W3)
            loss.wait_to_read()
            return loss
        t0 = time.perf_counter()
        first = float(np.mean(step().asnumpy()))
        if weights == "seeded":
            ws, bs = C.mlp_weights()
            want = C.softmax_ce_np(C.mlp_forward_np(xn, ws, bs), yn)
            if not abs(first - want) < 1e-3:
                raise AssertionError(f"wrong first-step loss {first:.6g}, expected {want:.6g}")
        setup = time.perf_counter() - t0
        warm, reps = C.reps("W3", quick)
        samples = C.time_blocks(step, C.W3_BLOCK, warm, reps)
        return C.record(SYSTEM, VARIANT, "W3", samples, first_loss=first, setup_s=setup,
                        weights=weights)
    return body


def main():
    a = C.parse_args()
    wl = a.workload
    bodies = {"W1": lambda: elementwise("W1", a.quick), "W1b": lambda: elementwise("W1b", a.quick),
              "W2": lambda: w2(a.quick), "W3": lambda: w3(a.quick)}
    if wl not in bodies or not C.wanted(a, VARIANT):
        return
    if IMPORT_ERROR is not None:
        C.emit({"system": SYSTEM, "variant": VARIANT, "workload": wl, "error": IMPORT_ERROR[:500]})
        return
    C.run_variant(SYSTEM, VARIANT, wl, bodies[wl]())


if __name__ == "__main__":
    main()
