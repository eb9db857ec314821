"""Apache MXNet 1.9.1 Gluon, hybridized with static_alloc=True, static_shape=True."""
import _common as C  # first: pins thread counts

import time
import warnings

warnings.filterwarnings("ignore")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon, nd  # noqa: E402
from mxnet.gluon import nn  # noqa: E402

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

        def step():
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(C.BATCH_W3)
            loss.wait_to_read()
            return loss
        t0 = time.perf_counter()
        first = float(step().mean().asscalar())
        setup = time.perf_counter() - t0
        warm, reps = C.reps("W3", quick)
        samples = C.time_blocks(step, C.W3_BLOCK, warm, reps)
        nd.waitall()
        return C.record(SYSTEM, VARIANT, "W3", samples, first_loss=first, setup_s=setup)
    return body


def main():
    a = C.parse_args()
    wl = a.workload
    plan = {"W1": elementwise("W1", a.quick), "W1b": elementwise("W1b", a.quick),
            "W2": w2(a.quick), "W3": w3(a.quick)}.get(wl)
    if plan is not None and C.wanted(a, VARIANT):
        C.run_variant(SYSTEM, VARIANT, wl, plan)


if __name__ == "__main__":
    main()
