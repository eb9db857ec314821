"""Custom operators (mx.operator.CustomOp) run eagerly, hybridized and in a symbol, under MXNet
1.9.1 or graphc: `python custom_op_cases.py mxnet|graphc [out.json]` prints (or writes) every
case's result as JSON. test_custom_op_hybrid.py compares graphc's with the recorded MXNet ones
(mxnet_custom_op_reference.json, written by running this file under MXNet)."""
import json
import sys

import numpy as np

if len(sys.argv) > 1 and sys.argv[1] == "mxnet":
    import mxnet as mx
else:
    import graphc as mx


class ScaledTanh(mx.operator.CustomOp):
    def __init__(self, scale):
        self.scale = scale

    def forward(self, is_train, req, in_data, out_data, aux):
        self.assign(out_data[0], req[0], mx.nd.tanh(in_data[0]) * self.scale)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        y = out_data[0]
        self.assign(in_grad[0], req[0], out_grad[0] * (self.scale - y * y / self.scale))


@mx.operator.register("scaled_tanh")
class ScaledTanhProp(mx.operator.CustomOpProp):
    def __init__(self, scale=1.0):
        super().__init__(need_top_grad=True)
        self.scale = float(scale)

    def create_operator(self, ctx, shapes, dtypes):
        return ScaledTanh(self.scale)


class SumDiff(mx.operator.CustomOp):
    """Two inputs, two outputs; keeps state from forward for backward (a count of calls)."""

    def forward(self, is_train, req, in_data, out_data, aux):
        a, b = in_data
        self.assign(out_data[0], req[0], a + b)
        self.assign(out_data[1], req[1], a - 2 * b)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        g0, g1 = out_grad
        self.assign(in_grad[0], req[0], g0 + g1)
        self.assign(in_grad[1], req[1], g0 - 2 * g1)


@mx.operator.register("sum_diff")
class SumDiffProp(mx.operator.CustomOpProp):
    def list_arguments(self):
        return ["a", "b"]

    def list_outputs(self):
        return ["sum", "diff"]

    def infer_shape(self, in_shape):
        return in_shape, [in_shape[0], in_shape[0]], []

    def create_operator(self, ctx, shapes, dtypes):
        return SumDiff()


class SoftmaxCE(mx.operator.CustomOp):
    """MXNet's documented custom softmax: backward ignores out_grad. (The documented example
    declares need_top_grad=False; under autograd MXNet 1.9.1 then sometimes hands backward an
    uninitialised out_grad, "unknown storage type: -1", so this one keeps the dependency.)"""

    def forward(self, is_train, req, in_data, out_data, aux):
        x = in_data[0].asnumpy()
        y = np.exp(x - x.max(axis=1, keepdims=True))
        y /= y.sum(axis=1, keepdims=True)
        self.assign(out_data[0], req[0], mx.nd.array(y))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        label = in_data[1].asnumpy().ravel().astype("int64")
        y = out_data[0].asnumpy().copy()
        y[np.arange(label.shape[0]), label] -= 1.0
        self.assign(in_grad[0], req[0], mx.nd.array(y))
        self.assign(in_grad[1], req[1], mx.nd.zeros(in_data[1].shape))


@mx.operator.register("softmax_ce")
class SoftmaxCEProp(mx.operator.CustomOpProp):
    def __init__(self):
        super().__init__(need_top_grad=True)

    def list_arguments(self):
        return ["data", "label"]

    def infer_shape(self, in_shape):
        return [in_shape[0], (in_shape[0][0],)], [in_shape[0]], []

    def create_operator(self, ctx, shapes, dtypes):
        return SoftmaxCE()


class Net(mx.gluon.HybridBlock):
    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.fc1 = mx.gluon.nn.Dense(5, in_units=4)
            self.fc2 = mx.gluon.nn.Dense(5, in_units=4)
            self.out = mx.gluon.nn.Dense(3, in_units=5)

    def hybrid_forward(self, F, x, label):
        h = F.Custom(self.fc1(x), op_type="scaled_tanh", scale=2.0)
        s, d = F.Custom(h, self.fc2(x), op_type="sum_diff")
        return F.Custom(self.out(s * d), label, op_type="softmax_ce")


def _net():
    net = Net(prefix="net_")
    net.initialize()
    rng = np.random.RandomState(3)
    for name in sorted(net.collect_params()):
        p = net.collect_params()[name]
        p.set_data(mx.nd.array(rng.uniform(-0.5, 0.5, p.shape)))
    return net


def _data():
    rng = np.random.RandomState(7)
    return mx.nd.array(rng.uniform(-1, 1, (6, 4))), mx.nd.array([0, 2, 1, 1, 0, 2])


def train(hybridize):
    """Three SGD steps; the outputs of each and the weights after."""
    net = _net()
    if hybridize:
        net.hybridize()
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
    x, label = _data()
    outs = []
    for _ in range(3):
        with mx.autograd.record():
            y = net(x, label)
        y.backward()
        trainer.step(x.shape[0])
        outs.append(y.asnumpy().tolist())
    params = net.collect_params()
    return {"outputs": outs, "weights": {k[len("net_"):]: params[k].data().asnumpy().tolist() for k in sorted(params)}}


def symbol_case():
    a, b = mx.sym.var("a"), mx.sym.var("b")
    s = mx.sym.Custom(a, b, op_type="sum_diff", name="sd")
    t = mx.sym.Custom(s[1], op_type="scaled_tanh", scale=3, name="st")
    out = mx.sym.Group([s[0], t])
    arg_shapes, out_shapes, aux_shapes = out.infer_shape(a=(2, 3), b=(2, 3))
    ex = out.simple_bind(mx.cpu(), a=(2, 3), b=(2, 3))
    rng = np.random.RandomState(1)
    ex.arg_dict["a"][:] = rng.uniform(-1, 1, (2, 3))
    ex.arg_dict["b"][:] = rng.uniform(-1, 1, (2, 3))
    res = ex.forward(is_train=True)
    ex.backward([mx.nd.ones((2, 3)), mx.nd.ones((2, 3)) * 0.5])
    return {"arguments": out.list_arguments(), "outputs": out.list_outputs(),
            "attrs": {k: v for k, v in t.attr_dict().get("st", {}).items()},
            "arg_shapes": [list(x) for x in arg_shapes], "out_shapes": [list(x) for x in out_shapes],
            "forward": [r.asnumpy().tolist() for r in res],
            "grads": {k: ex.grad_dict[k].asnumpy().tolist() for k in ("a", "b")}}


def all_cases():
    return {"eager": train(False), "hybrid": train(True), "symbol": symbol_case()}


if __name__ == "__main__":
    result = json.dumps(all_cases(), indent=1, sort_keys=True)
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write(result + "\n")
    else:
        print(result)
