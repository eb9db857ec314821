"""Custom operators (mx.operator.CustomOp) inside hybridized blocks and symbols: traced as a
`Custom` node that the compiled program runs as a host step, its backward as another; training
equals eager and MXNet 1.9.1's (recorded in mxnet_custom_op_reference.json by running
custom_op_cases.py under MXNet); exports as MXNet's Custom node and loads back."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import graphc as mx
from graphc.ops.errors import GraphcError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
sys.path.insert(0, HERE)
import custom_op_cases  # noqa: E402  (registers scaled_tanh, sum_diff, softmax_ce with graphc)

with open(os.path.join(HERE, "mxnet_custom_op_reference.json")) as f:
    RECORDED = json.load(f)


def _assert_close(path, expected, actual):
    if isinstance(expected, dict):
        assert sorted(expected) == sorted(actual), path
        for k in expected:
            _assert_close(f"{path}/{k}", expected[k], actual[k])
    elif isinstance(expected, str) or (isinstance(expected, list) and expected and isinstance(expected[0], str)):
        assert expected == actual, path
    else:
        np.testing.assert_allclose(np.array(actual, float), np.array(expected, float), rtol=1e-5, atol=1e-6,
                                   err_msg=path)


@pytest.fixture(scope="module")
def graphc_answers():
    return json.loads(json.dumps(custom_op_cases.all_cases()))


@pytest.mark.parametrize("case", ["eager", "hybrid", "symbol"])
def test_custom_ops_train_and_bind_as_mxnet_does(graphc_answers, case):
    _assert_close(case, RECORDED[case], graphc_answers[case])


def test_hybridized_training_equals_eager_exactly_enough(graphc_answers):
    _assert_close("hybrid vs eager", graphc_answers["eager"], graphc_answers["hybrid"])


def test_the_compiled_graph_holds_custom_nodes_and_exports_them_as_mxnet_does(tmp_path):
    net = custom_op_cases._net()
    net.hybridize()
    x, label = custom_op_cases._data()
    net(x, label)
    net.export(str(tmp_path / "net"))
    nodes = json.load(open(tmp_path / "net-symbol.json"))["nodes"]
    custom = [n for n in nodes if n["op"] == "Custom"]
    assert [n["attrs"] for n in custom] == [{"op_type": "scaled_tanh", "scale": "2.0"}, {"op_type": "sum_diff"},
                                            {"op_type": "softmax_ce"}]
    assert [len(n["inputs"]) for n in custom] == [1, 2, 2]


def test_an_exported_graph_with_custom_nodes_loads_back_with_the_registered_op(tmp_path):
    net = custom_op_cases._net()
    net.hybridize()
    x, label = custom_op_cases._data()
    expected = net(x, label).asnumpy()
    net.export(str(tmp_path / "net"))
    loaded = mx.gluon.SymbolBlock.imports(str(tmp_path / "net-symbol.json"), ["data0", "data1"],
                                          str(tmp_path / "net-0000.params"))
    np.testing.assert_allclose(loaded(x, label).asnumpy(), expected, rtol=1e-6)


class _Dropoutish(mx.operator.CustomOp):
    """Draws a mask in forward and keeps it on self for backward: the backward must run on the
    same instance, as in MXNet (one operator per node)."""

    def __init__(self, seed):
        self.rng = np.random.RandomState(seed)
        self.mask = None
        self.train_flags = []

    def forward(self, is_train, req, in_data, out_data, aux):
        self.train_flags.append(is_train)
        x = in_data[0].asnumpy()
        self.mask = (self.rng.uniform(size=x.shape) > 0.5).astype(x.dtype) if is_train else np.ones_like(x)
        self.assign(out_data[0], req[0], mx.nd.array(x * self.mask))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        self.assign(in_grad[0], req[0], mx.nd.array(out_grad[0].asnumpy() * self.mask))


_DROPOUT_OPS = []


@mx.operator.register("dropoutish_test")
class _DropoutishProp(mx.operator.CustomOpProp):
    def create_operator(self, ctx, shapes, dtypes):
        op = _Dropoutish(seed=len(_DROPOUT_OPS))
        _DROPOUT_OPS.append(op)
        return op


class _DropNet(mx.gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return F.Custom(x * 3, op_type="dropoutish_test") * 2


def test_state_kept_in_forward_reaches_backward_and_is_train_follows_the_mode():
    net = _DropNet()
    net.hybridize()
    x = mx.nd.array(np.arange(1, 13, dtype=np.float32).reshape(3, 4))
    x.attach_grad()
    with mx.autograd.record():
        y = net(x)
    y.backward()
    op = _DROPOUT_OPS[-1]
    assert op.train_flags == [True]
    np.testing.assert_allclose(y.asnumpy(), x.asnumpy() * 6 * op.mask)
    np.testing.assert_allclose(x.grad.asnumpy(), 6 * op.mask)
    assert 0 < op.mask.sum() < op.mask.size
    out = net(x)     # inference: is_train False, the mask is all ones
    # (inference is traced apart from training, so its node, and operator, are its own)
    assert _DROPOUT_OPS[-1].train_flags[-1] is False
    np.testing.assert_allclose(out.asnumpy(), x.asnumpy() * 6)


class _TwoDrops(mx.gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return F.Custom(x, op_type="dropoutish_test") + 10 * F.Custom(x * 2, op_type="dropoutish_test")


def test_each_call_site_keeps_its_own_operator_state():
    net = _TwoDrops()
    net.hybridize()
    x = mx.nd.ones((4, 5))
    x.attach_grad()
    before = len(_DROPOUT_OPS)
    with mx.autograd.record():
        y = net(x)
    y.backward()
    first, second = _DROPOUT_OPS[before:]
    assert not np.array_equal(first.mask, second.mask)
    np.testing.assert_allclose(y.asnumpy(), first.mask + 20 * second.mask)
    np.testing.assert_allclose(x.grad.asnumpy(), first.mask + 20 * second.mask)


class _Tanh(mx.gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return F.Custom(x, op_type="scaled_tanh", scale=1.5)


def test_compiled_custom_gradient_matches_finite_differences():
    net = _Tanh()
    net.hybridize()
    x0 = np.random.RandomState(5).uniform(-1, 1, (2, 3)).astype(np.float64)
    x = mx.nd.array(x0, dtype="float64")
    x.attach_grad()
    with mx.autograd.record():
        y = net(x)
    y.backward(mx.nd.ones((2, 3), dtype="float64"))
    eps = 1e-6
    numeric = (1.5 * np.tanh(x0 + eps) - 1.5 * np.tanh(x0 - eps)) / (2 * eps)
    np.testing.assert_allclose(x.grad.asnumpy(), numeric, rtol=1e-6)


class _HalfSquaredError(mx.operator.CustomOp):
    def forward(self, is_train, req, in_data, out_data, aux):
        d = in_data[0] - in_data[1]
        self.assign(out_data[0], req[0], 0.5 * d * d)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        self.assign(in_grad[0], req[0], in_data[0] - in_data[1])    # a loss: out_grad is not read
        self.assign(in_grad[1], req[1], in_data[1] - in_data[0])


@mx.operator.register("half_squared_error_test")
class _HalfSquaredErrorProp(mx.operator.CustomOpProp):
    def __init__(self):
        super().__init__(need_top_grad=False)

    def list_arguments(self):
        return ["pred", "label"]

    def create_operator(self, ctx, shapes, dtypes):
        return _HalfSquaredError()


class _Regress(mx.gluon.HybridBlock):
    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.fc = mx.gluon.nn.Dense(2, in_units=3)

    def hybrid_forward(self, F, x, y):
        return F.Custom(self.fc(x), y, op_type="half_squared_error_test")


def test_a_loss_without_top_gradient_trains_hybridized_as_eagerly():
    rng = np.random.RandomState(2)
    x, y = mx.nd.array(rng.uniform(size=(4, 3))), mx.nd.array(rng.uniform(size=(4, 2)))
    grads = []
    for hybrid in (False, True):
        net = _Regress(prefix="reg_")
        net.initialize(mx.init.Constant(0.3))
        if hybrid:
            net.hybridize()
        with mx.autograd.record():
            loss = net(x, y)
        loss.backward()
        grads.append(net.fc.weight.grad().asnumpy())
    pred = x.asnumpy() @ net.fc.weight.data().asnumpy().T + net.fc.bias.data().asnumpy()
    np.testing.assert_allclose(grads[0], (pred - y.asnumpy()).T @ x.asnumpy(), rtol=1e-5)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)


def test_an_unregistered_op_type_is_named_when_traced():
    class Bad(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.Custom(x, op_type="never_registered_op")
    net = Bad()
    net.hybridize()
    with pytest.raises(GraphcError, match="never_registered_op"):
        net(mx.nd.ones((2, 2)))


def test_custom_without_op_type_says_it_is_required():
    with pytest.raises(GraphcError, match="op_type"):
        mx.sym.Custom(mx.sym.var("x")).infer_shape(x=(2, 2))




@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_live_mxnet_gives_the_recorded_answers_and_loads_graphcs_export(tmp_path):
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "custom_op_cases.py"), "mxnet"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_close("recorded vs live", RECORDED, json.loads(proc.stdout))

    net = custom_op_cases._net()
    net.hybridize()
    x, label = custom_op_cases._data()
    ours = net(x, label).asnumpy()
    prefix = str(tmp_path / "net")
    net.export(prefix)
    script = (f"import sys; sys.argv = ['custom_op_cases.py', 'mxnet']; sys.path.insert(0, {HERE!r})\n"
              "import numpy as np, custom_op_cases as c\n"
              "mx = c.mx\n"
              f"blk = mx.gluon.SymbolBlock.imports({prefix + '-symbol.json'!r}, ['data0', 'data1'], "
              f"{prefix + '-0000.params'!r})\n"
              "x, label = c._data()\n"
              f"np.save({prefix + '-mxnet.npy'!r}, blk(x, label).asnumpy())\n"
              "mx.nd.waitall()\n")
    proc = subprocess.run([MXNET_PYTHON, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(prefix + "-mxnet.npy"), ours, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_a_file_mxnet_exports_with_custom_nodes_loads_in_graphc(tmp_path):
    prefix = str(tmp_path / "mxnet_net")
    script = (f"import sys; sys.argv = ['custom_op_cases.py', 'mxnet']; sys.path.insert(0, {HERE!r})\n"
              "import custom_op_cases as c\n"
              "net = c._net(); net.hybridize(); x, label = c._data(); net(x, label).asnumpy()\n"
              f"net.export({prefix!r})\n"
              # MXNet 1.9.1 can hang at exit while a custom operator's work is still queued
              "c.mx.nd.waitall()\n")
    proc = subprocess.run([MXNET_PYTHON, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    nodes = json.load(open(prefix + "-symbol.json"))["nodes"]
    assert [n["attrs"]["op_type"] for n in nodes if n["op"] == "Custom"] == ["scaled_tanh", "sum_diff", "softmax_ce"]
    loaded = mx.gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data0", "data1"], prefix + "-0000.params")
    x, label = custom_op_cases._data()
    expected = custom_op_cases._net()(x, label).asnumpy()
    np.testing.assert_allclose(loaded(x, label).asnumpy(), expected, rtol=1e-5, atol=1e-6)


class _Counter(mx.operator.CustomOp):
    """Adds its auxiliary state to the data; with count=True also bumps the state."""

    def __init__(self, count):
        self.count = count

    def forward(self, is_train, req, in_data, out_data, aux):
        self.assign(out_data[0], req[0], in_data[0] + aux[0])
        if self.count:
            aux[0][:] = aux[0] + 1


@mx.operator.register("aux_counter_test")
class _CounterProp(mx.operator.CustomOpProp):
    def __init__(self, count="False"):
        super().__init__()
        self.count = count == "True"

    def list_auxiliary_states(self):
        return ["seen"]

    def create_operator(self, ctx, shapes, dtypes):
        return _Counter(self.count)


def test_auxiliary_states_are_read_in_a_graph_and_a_write_to_them_is_refused_plainly():
    x, seen = mx.sym.var("x"), mx.sym.var("seen")
    reads = mx.sym.Custom(x, seen, op_type="aux_counter_test", name="c")
    assert reads.list_inputs() == ["x", "seen"]
    out = reads.eval(x=mx.nd.ones((2,)), seen=mx.nd.array([3, 4]))[0]
    np.testing.assert_array_equal(out.asnumpy(), [4, 5])
    writes = mx.sym.Custom(x, seen, op_type="aux_counter_test", count=True, name="c")
    with pytest.raises(GraphcError, match="wrote auxiliary state 'seen'.*not supported"):
        writes.eval(x=mx.nd.ones((2,)), seen=mx.nd.array([3, 4]))
    state = mx.nd.array([3, 4])      # eagerly the update is kept, as in MXNet
    mx.nd.Custom(mx.nd.ones((2,)), state, op_type="aux_counter_test", count=True)
    np.testing.assert_array_equal(state.asnumpy(), [4, 5])
