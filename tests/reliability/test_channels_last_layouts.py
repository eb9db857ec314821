"""Channels-last layouts (MXNet's layout='NWC'/'NHWC'/'NDHWC') for Convolution, Deconvolution and
Pooling: each is the channels-first operator on transposed data, eagerly, differentiated,
hybridized (compiled natively through passes/channels_last.py), exported and imported back;
layouts MXNet 1.9 refuses are refused; one network is checked against MXNet itself."""
import json
import os
import subprocess
import textwrap

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.compiler import compile_graph
from graphc.gluon import nn
from graphc.ops.builder import GraphBuilder
from graphc.ops.errors import OpAttributeError
from graphc.ops.fused import conv_geometry
from graphc.ops.types import TensorType
from graphc.ops.interpret import interpret
from graphc.passes.channels_last import lower_channels_last
from graphc.passes.fold_batchnorm import fold_batchnorm
from graphc.runtime.executor import HostStep

RNG = np.random.default_rng(7)
MXNET_PYTHON = os.path.join(os.path.dirname(__file__), "..", "..", "bench", ".venvs", "mxnet", "bin", "python")

FIRST = {1: (0, 2, 1), 2: (0, 3, 1, 2), 3: (0, 4, 1, 2, 3)}        # channels last -> first
LAST = {1: (0, 2, 1), 2: (0, 2, 3, 1), 3: (0, 2, 3, 4, 1)}         # channels first -> last
LAYOUT = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


def _r(*shape):
    return RNG.normal(size=shape).astype(np.float32)


def _distinct(*shape):
    """No ties: max pooling's choice is unambiguous and stable under small steps."""
    n = int(np.prod(shape))
    return (RNG.permutation(n) * 0.37 - n * 0.15).reshape(shape).astype(np.float32)


# (op, channels-last data, weight (channels-last order) or None, attrs); the bias, when the op has
# one, is a third input
OP_CASES = [
    ("Convolution", (2, 5, 6, 4), (6, 3, 3, 2),
     dict(kernel=(3, 3), num_filter=6, num_group=2, stride=(2, 1), pad=(1, 1), dilate=(1, 2))),
    ("Convolution", (1, 4, 5, 3, 3), (4, 2, 2, 2, 3), dict(kernel=(2, 2, 2), num_filter=4, pad=(1, 0, 1))),
    ("Deconvolution", (2, 3, 4, 4), (4, 3, 3, 3),
     dict(kernel=(3, 3), num_filter=6, num_group=2, stride=(2, 1), pad=(1, 0), adj=(1, 0), no_bias=False)),
    ("Deconvolution", (1, 2, 3, 2, 2), (2, 2, 2, 2, 3), dict(kernel=(2, 2, 2), num_filter=3, stride=(2, 1, 1))),
    ("Pooling", (2, 7, 3), None, dict(kernel=(3,), stride=(2,), pool_type="max")),
    ("Pooling", (2, 5, 6, 3), None, dict(kernel=(3, 2), stride=(2, 1), pad=(1, 0), pool_type="avg",
                                         count_include_pad=False, pooling_convention="full")),
    ("Pooling", (1, 5, 4, 2), None, dict(kernel=(2, 2), pool_type="sum")),
    ("Pooling", (1, 4, 4, 2), None, dict(kernel=(2, 2), pool_type="lp", p_value=2)),
    ("Pooling", (2, 3, 4, 5), None, dict(kernel=(1, 1), global_pool=True, pool_type="max")),
    ("Pooling", (1, 3, 4, 4, 2), None, dict(kernel=(2, 2, 2), stride=(1, 2, 2), pool_type="avg")),
]


def _operands(op, xshape, wshape, attrs):
    x = _distinct(*xshape) if op == "Pooling" else _r(*xshape)
    if attrs.get("pool_type") == "lp":
        x = np.abs(x) + 0.5
    arrays = [x]
    if wshape is not None:
        arrays.append(_r(*wshape))
        if not attrs.get("no_bias", op == "Deconvolution"):
            arrays.append(_r(attrs["num_filter"]))
    return arrays


def _to_first(arrays, nd_):
    """Data and weight transposed to channels first; the bias as it is."""
    return [np.ascontiguousarray(a.transpose(FIRST[nd_])) if i < 2 else a for i, a in enumerate(arrays)]


def _eager(op, arrays, attrs, head):
    """The output and the input gradients of sum(output * head)."""
    xs = [nd.array(a) for a in arrays]
    for v in xs:
        v.attach_grad()
    with autograd.record():
        y = getattr(nd, op)(*xs, **attrs)
        loss = (y * nd.array(head)).sum()
    loss.backward()
    return y.asnumpy(), [v.grad.asnumpy() for v in xs]


def _case_id(c):
    return f"{c[0]}-{len(c[1]) - 2}d-{c[3].get('pool_type', '')}"


@pytest.mark.parametrize("case", OP_CASES, ids=_case_id)
def test_channels_last_op_is_the_channels_first_op_on_transposed_data(case):
    op, xshape, wshape, attrs = case
    nd_ = len(xshape) - 2
    first, last = LAYOUT[nd_]
    arrays = _operands(op, xshape, wshape, attrs)
    y_last = getattr(nd, op)(*[nd.array(a) for a in arrays], layout=last, **attrs).asnumpy()
    y_first = getattr(nd, op)(*[nd.array(a) for a in _to_first(arrays, nd_)], layout=first, **attrs).asnumpy()
    np.testing.assert_allclose(y_last, y_first.transpose(LAST[nd_]), rtol=1e-5, atol=1e-5)

    head = _r(*y_last.shape)
    _, g_last = _eager(op, arrays, {**attrs, "layout": last}, head)
    _, g_first = _eager(op, _to_first(arrays, nd_), {**attrs, "layout": first},
                        np.ascontiguousarray(head.transpose(FIRST[nd_])))
    for i, (a, b) in enumerate(zip(g_last, g_first)):
        want = b.transpose(LAST[nd_]) if i < 2 else b
        np.testing.assert_allclose(a, want, rtol=1e-4, atol=1e-4, err_msg=f"gradient of input {i}")


def _fd_check(op, arrays, attrs, eps=1e-6):
    """Autograd's input gradients of sum(op(...) * head) against central differences, in float64."""
    arrays = [a.astype(np.float64) for a in arrays]
    f = getattr(nd, op)
    head = RNG.normal(size=f(*[nd.array(a, dtype="float64") for a in arrays], **attrs).shape)
    xs = [nd.array(a, dtype="float64") for a in arrays]
    for v in xs:
        v.attach_grad()
    with autograd.record():
        loss = (f(*xs, **attrs) * nd.array(head, dtype="float64")).sum()
    loss.backward()

    def value(arrs):
        return float((f(*[nd.array(a, dtype="float64") for a in arrs], **attrs).asnumpy() * head).sum())

    for i, a in enumerate(arrays):
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [b.copy() for b in arrays]
            minus = [b.copy() for b in arrays]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            numeric[idx] = (value(plus) - value(minus)) / (2 * eps)
        np.testing.assert_allclose(xs[i].grad.asnumpy(), numeric, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{op} input {i}")


def test_channels_last_gradients_match_finite_differences():
    _fd_check("Convolution", [_r(1, 4, 3, 2), _r(3, 2, 2, 2), _r(3)],
              dict(kernel=(2, 2), num_filter=3, stride=(2, 1), pad=(1, 0), layout="NHWC"))
    _fd_check("Deconvolution", [_r(1, 2, 3, 2), _r(2, 2, 2, 2)],
              dict(kernel=(2, 2), num_filter=2, stride=(2, 1), layout="NHWC"))
    _fd_check("Pooling", [_distinct(1, 4, 5, 2)], dict(kernel=(2, 3), stride=(2, 1), pool_type="max", layout="NHWC"))
    _fd_check("Pooling", [_r(1, 5, 2)], dict(kernel=(3,), pad=(1,), pool_type="avg", layout="NWC"))


# -- Gluon layers ------------------------------------------------------------------------------------
LAYER_CASES = [
    (nn.Conv2D, (2, 7, 6, 4), dict(channels=6, kernel_size=(3, 2), strides=(2, 1), padding=1, groups=2,
                                   activation="relu")),
    (nn.Conv3D, (1, 4, 5, 3, 2), dict(channels=3, kernel_size=2, padding=(1, 0, 0))),
    (nn.Conv2DTranspose, (1, 3, 4, 4), dict(channels=2, kernel_size=3, strides=2, padding=1, output_padding=1)),
    (nn.Conv3DTranspose, (1, 2, 3, 2, 2), dict(channels=2, kernel_size=2, strides=(2, 1, 1))),
    (nn.MaxPool1D, (2, 7, 3), dict(pool_size=3, strides=2, padding=1)),
    (nn.AvgPool2D, (2, 5, 6, 3), dict(pool_size=3, strides=2, padding=1, ceil_mode=True, count_include_pad=False)),
    (nn.MaxPool3D, (1, 4, 4, 4, 2), dict(pool_size=2)),
    (nn.GlobalAvgPool1D, (2, 5, 3), {}),
    (nn.GlobalMaxPool2D, (2, 3, 4, 5), {}),
    (nn.GlobalAvgPool3D, (1, 2, 3, 4, 3), {}),
]


def _layer_pair(cls, kw, nd_):
    """The same layer in channels-last and channels-first layout, with equal (transposed) weights."""
    first, last = LAYOUT[nd_]
    a, b = cls(layout=last, **kw), cls(layout=first, **kw)
    return a, b


def _run_layer(layer, x, hybridize):
    """Output and input gradient (and weight gradient, if any) of sum(layer(x) * head)."""
    if hybridize:
        layer.hybridize()
    xv = nd.array(x)
    xv.attach_grad()
    with autograd.record():
        y = layer(xv)
        loss = (y * y).sum()
    loss.backward()
    weight = getattr(layer, "weight", None)
    return y.asnumpy(), xv.grad.asnumpy(), (weight.grad().asnumpy() if weight is not None else None)


@pytest.mark.parametrize("hybridize", [False, True], ids=["eager", "hybridized"])
@pytest.mark.parametrize("cls,shape,kw", LAYER_CASES, ids=[c[0].__name__ for c in LAYER_CASES])
def test_channels_last_layer_equals_channels_first_layer(cls, shape, kw, hybridize):
    nd_ = len(shape) - 2
    last_layer, first_layer = _layer_pair(cls, kw, nd_)
    x = _distinct(*shape)
    for layer in (last_layer, first_layer):
        layer.initialize(mx.init.Normal(0.5))
    last_layer(nd.array(x))                                        # deferred in_channels from the C axis
    first_layer(nd.array(x.transpose(FIRST[nd_])))
    if hasattr(last_layer, "weight"):
        w = last_layer.weight.data().asnumpy()
        assert w.shape == tuple(first_layer.weight.shape[i] for i in LAST[nd_])
        first_layer.weight.set_data(nd.array(w.transpose(FIRST[nd_])))
        first_layer.bias.set_data(last_layer.bias.data())
    y_l, gx_l, gw_l = _run_layer(last_layer, x, hybridize)
    y_f, gx_f, gw_f = _run_layer(first_layer, np.ascontiguousarray(x.transpose(FIRST[nd_])), hybridize)
    np.testing.assert_allclose(y_l, y_f.transpose(LAST[nd_]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gx_l, gx_f.transpose(LAST[nd_]), rtol=1e-4, atol=1e-4)
    if gw_l is not None:
        np.testing.assert_allclose(gw_l, gw_f.transpose(LAST[nd_]), rtol=1e-4, atol=1e-3)


def test_conv_layer_infers_in_channels_from_the_last_axis_and_prints_them():
    conv = nn.Conv2D(8, 3, layout="NHWC", groups=2)
    conv.initialize()
    assert conv(nd.ones((1, 5, 5, 6))).shape == (1, 3, 3, 8)
    assert conv.weight.shape == (8, 3, 3, 3)
    assert "6 -> 8" in repr(conv)
    tconv = nn.Conv3DTranspose(4, 2, layout="NDHWC")
    tconv.initialize()
    assert tconv(nd.ones((1, 2, 3, 2, 5))).shape == (1, 3, 4, 3, 4)
    assert tconv.weight.shape == (5, 2, 2, 2, 4)


# -- compilation ----------------------------------------------------------------------------------------
def _nhwc_chain():
    b = GraphBuilder("chain")
    F = b.F
    x = b.var("x", TensorType((2, 8, 8, 3), "float32"))
    w1 = b.var("w1", TensorType((4, 3, 3, 3), "float32"))
    w2 = b.var("w2", TensorType((5, 2, 2, 4), "float32"))
    y = F.Convolution(x, w1, kernel=(3, 3), pad=(1, 1), num_filter=4, no_bias=True, layout="NHWC")
    y = F.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type="max", layout="NHWC")
    y = F.Convolution(y, w2, kernel=(2, 2), num_filter=5, no_bias=True, layout="NHWC")
    return b.build([y]), [_r(2, 8, 8, 3), _r(4, 3, 3, 3), _r(5, 2, 2, 4)]


def test_lowering_leaves_only_channels_first_nodes_and_cancels_transpose_pairs():
    graph, _ = _nhwc_chain()
    lowered = lower_channels_last(graph)
    ops = [n.op for n in lowered.nodes if not n.is_var]
    layouts = {n.attrs["layout"] for n in lowered.nodes if n.op in ("Convolution", "Pooling")}
    assert layouts == {"NCHW"}, str(lowered)
    # data in, two weights in, one result out: the transposes between the three ops cancel
    assert ops.count("transpose") == 4, str(lowered)
    assert all(conv_geometry(n) is not None for n in lowered.nodes if n.op == "Convolution")


@pytest.mark.parametrize("axes", [(0, 2, 3, 1), (0, 2, 1, 3), (0, 3, 2, 1)])
def test_only_a_transpose_the_lowering_inverts_is_cancelled(axes):
    b = GraphBuilder("t")
    x = b.var("x", TensorType((1, 3, 4, 5), "float32"))
    w = b.var("w", TensorType((2, 2, 2, (1, 3, 4, 5)[axes[3]]), "float32"))
    xt = b.F.transpose(x, axes=axes)
    y = b.F.Convolution(xt, w, kernel=(2, 2), num_filter=2, no_bias=True, layout="NHWC")
    graph = b.build([y])
    lowered = lower_channels_last(graph)
    transposes = [n for n in lowered.nodes if n.op == "transpose"]
    # the weight's and the result's transposes always; the data's two only when they do not cancel
    assert len(transposes) == (2 if axes == (0, 2, 3, 1) else 4), str(lowered)
    arrays = [_r(1, 3, 4, 5), _r(*w.shape)]
    want = nd.Convolution(nd.array(arrays[0]).transpose(axes), nd.array(arrays[1]), kernel=(2, 2), num_filter=2,
                          no_bias=True, layout="NHWC").asnumpy()
    got = compile_graph(graph, cache=False)(arrays)
    np.testing.assert_allclose(np.asarray(got[0] if isinstance(got, (list, tuple)) else got), want,
                               rtol=1e-5, atol=1e-5)


def test_compiled_channels_last_chain_runs_natively_and_matches_eager():
    graph, arrays = _nhwc_chain()
    program = compile_graph(graph, cache=False)
    assert [s.node.op for s in program.steps if isinstance(s, HostStep)] == []
    got = program(arrays)
    got = got[0] if isinstance(got, (list, tuple)) else got
    y = nd.Convolution(nd.array(arrays[0]), nd.array(arrays[1]), kernel=(3, 3), pad=(1, 1), num_filter=4,
                       no_bias=True, layout="NHWC")
    y = nd.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type="max", layout="NHWC")
    y = nd.Convolution(y, nd.array(arrays[2]), kernel=(2, 2), num_filter=5, no_bias=True, layout="NHWC")
    np.testing.assert_allclose(np.asarray(got), y.asnumpy(), rtol=1e-4, atol=1e-4)


def _host_ops(program):
    return {s.node.op for s in program.steps if isinstance(s, HostStep)}


def test_hybridized_channels_last_network_trains_and_infers_without_host_steps():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(6, 3, padding=1, layout="NHWC", activation="relu"), nn.MaxPool2D(layout="NHWC"),
            nn.Conv2DTranspose(3, 2, strides=2, layout="NHWC"), nn.AvgPool2D(layout="NHWC"),
            nn.GlobalMaxPool2D(layout="NHWC"))
    net.initialize()
    net.hybridize()
    x = nd.array(_r(2, 8, 8, 4))
    x.attach_grad()
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    programs = [p for fwd, bwd, *_ in net._cached_op.last.train.values() for p in (fwd, bwd)]
    net(x)
    programs.append(net._cached_op.last.forward[1])
    assert len(programs) == 3 and all(_host_ops(p) == set() for p in programs), [_host_ops(p) for p in programs]


@pytest.mark.parametrize("fold_weights", [True, False, None])
def test_inference_batchnorm_is_not_folded_into_a_channels_last_convolution(fold_weights):
    # BatchNorm over axis 1 of an NHWC result normalises rows (H), not filters: scaling the filters
    # by it would be wrong, here even though H equals the number of filters
    b = GraphBuilder("bn")
    F = b.F
    x = b.var("x", TensorType((2, 4, 5, 3), "float32"))
    w = b.var("w", TensorType((4, 3, 3, 3), "float32"))
    stats = [b.var(n, TensorType((4,), "float32")) for n in ("gamma", "beta", "mean", "var")]
    y = F.Convolution(x, w, kernel=(3, 3), pad=(1, 1), num_filter=4, no_bias=True, layout="NHWC")
    out = F.BatchNorm(y, *stats, axis=1, fix_gamma=False)
    graph = b.build([out[0] if isinstance(out, tuple) else out])
    arrays = [_r(2, 4, 5, 3), _r(4, 3, 3, 3), _r(4), _r(4), _r(4), np.abs(_r(4)) + 0.5]
    folded = fold_batchnorm(graph, training=False, fold_weights=fold_weights)
    np.testing.assert_allclose(interpret(folded, arrays)[0], interpret(graph, arrays)[0], rtol=1e-5, atol=1e-5)


# -- files -------------------------------------------------------------------------------------------
def test_channels_last_network_exports_with_its_layouts_and_imports_back(tmp_path):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(6, 3, padding=1, layout="NHWC", activation="relu"), nn.MaxPool2D(layout="NHWC"),
            nn.Conv2DTranspose(3, 2, strides=2, layout="NHWC"), nn.GlobalAvgPool2D(layout="NHWC"))
    net.initialize(mx.init.Normal(0.3))
    net.hybridize()
    x = nd.array(_r(2, 8, 8, 4))
    want = net(x).asnumpy()
    sym_file, params_file = net.export(str(tmp_path / "nhwc"))
    nodes = json.load(open(sym_file))["nodes"]
    layouts = {n["op"]: n["attrs"]["layout"] for n in nodes if n["op"] in ("Convolution", "Deconvolution", "Pooling")}
    assert layouts == {"Convolution": "NHWC", "Deconvolution": "NHWC", "Pooling": "NHWC"}
    weights = mx.nd.load(params_file)
    assert weights["arg:" + net[0].weight.name].shape == (6, 3, 3, 4)
    back = gluon.SymbolBlock.imports(sym_file, ["data"], params_file)
    np.testing.assert_allclose(back(x).asnumpy(), want, rtol=1e-5, atol=1e-5)
    back.hybridize()
    np.testing.assert_allclose(back(x).asnumpy(), want, rtol=1e-5, atol=1e-5)


# the -symbol.json MXNet 1.9.1 writes for Convolution(data, kernel=(3, 3), num_filter=4, layout='NHWC')
MXNET_NHWC_JSON = textwrap.dedent("""\
    {"nodes": [
      {"op": "null", "name": "data", "inputs": []},
      {"op": "null", "name": "c_weight", "attrs": {"kernel": "(3, 3)", "layout": "NHWC", "num_filter": "4"},
       "inputs": []},
      {"op": "null", "name": "c_bias", "attrs": {"kernel": "(3, 3)", "layout": "NHWC", "num_filter": "4"},
       "inputs": []},
      {"op": "Convolution", "name": "c", "attrs": {"kernel": "(3, 3)", "layout": "NHWC", "num_filter": "4"},
       "inputs": [[0, 0, 0], [1, 0, 0], [2, 0, 0]]}],
     "arg_nodes": [0, 1, 2], "node_row_ptr": [0, 1, 2, 3, 4], "heads": [[3, 0, 0]],
     "attrs": {"mxnet_version": ["int", 10901]}}""")


def test_mxnet_written_channels_last_symbol_loads_and_runs(tmp_path):
    sym_file = tmp_path / "c-symbol.json"
    sym_file.write_text(MXNET_NHWC_JSON)
    w, b = _r(4, 3, 3, 2), _r(4)
    mx.nd.save(str(tmp_path / "c-0000.params"), {"arg:c_weight": nd.array(w), "arg:c_bias": nd.array(b)})
    block = gluon.SymbolBlock.imports(str(sym_file), ["data"], str(tmp_path / "c-0000.params"))
    x = _r(1, 5, 6, 2)
    want = nd.Convolution(nd.array(x.transpose(0, 3, 1, 2)), nd.array(w.transpose(0, 3, 1, 2)), nd.array(b),
                          kernel=(3, 3), num_filter=4).asnumpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(block(nd.array(x)).asnumpy(), want, rtol=1e-5, atol=1e-5)


# -- what MXNet 1.9 refuses ----------------------------------------------------------------------------------
def test_layouts_mxnet_refuses_are_refused_with_the_accepted_ones_named():
    with pytest.raises(ValueError, match="Conv1D: layout='NWC' is not supported.*'NCW'"):
        nn.Conv1D(4, 3, layout="NWC")
    with pytest.raises(ValueError, match="Conv1DTranspose: layout='NWC'"):
        nn.Conv1DTranspose(4, 3, layout="NWC")
    with pytest.raises(ValueError, match="Conv2D: layout='NCDHW'.*'NCHW' or 'NHWC'"):
        nn.Conv2D(4, 3, layout="NCDHW")
    with pytest.raises(OpAttributeError, match="Convolution: layout='NWC' is not supported for 1-D"):
        nd.Convolution(nd.ones((1, 5, 3)), nd.ones((4, 3, 3)), kernel=(3,), num_filter=4, no_bias=True, layout="NWC")
    with pytest.raises(OpAttributeError, match="Deconvolution: layout='NWC'"):
        nd.Deconvolution(nd.ones((1, 5, 3)), nd.ones((3, 3, 4)), kernel=(3,), num_filter=4, layout="NWC")
    with pytest.raises(OpAttributeError, match="Pooling: layout='NDHWC' does not fit 2-D data"):
        nd.Pooling(nd.ones((1, 4, 4, 2)), kernel=(2, 2), layout="NDHWC")
    with pytest.raises(OpAttributeError, match="_pooling_grad: layout='NHWC'"):
        nd._pooling_grad(nd.ones((1, 2, 2, 2)), nd.ones((1, 4, 4, 2)), nd.ones((1, 2, 2, 2)), kernel=(2, 2),
                         stride=(2, 2), layout="NHWC")


def test_channels_last_weight_of_the_wrong_order_is_refused_with_both_shapes():
    with pytest.raises(mx.ShapeError, match=r"weight has shape \(4, 2, 3, 3\), expected \(4, 3, 3, 2\).*NHWC"):
        nd.Convolution(nd.ones((1, 5, 5, 2)), nd.ones((4, 2, 3, 3)), kernel=(3, 3), num_filter=4, no_bias=True,
                       layout="NHWC")


# -- MXNet 1.9.1 as the oracle --------------------------------------------------------------------------------
MXNET_SCRIPT = textwrap.dedent("""\
    import sys
    import numpy as np
    import mxnet as mx
    io = dict(np.load(sys.argv[1]))
    d = mx.sym.var("data")
    conv = mx.sym.Convolution(d, kernel=(3, 3), pad=(1, 1), num_filter=5, layout="NHWC", name="c")
    args, _, _ = conv.infer_shape(data=io["x"].shape)
    # MXNet's CPU Convolution refuses NHWC (oneDNN and its native kernel are channels first); the
    # convolution runs channels first on transposed data, the pooling runs channels last natively
    y = mx.nd.Convolution(mx.nd.array(io["x"].transpose(0, 3, 1, 2)), mx.nd.array(io["w"].transpose(0, 3, 1, 2)),
                          mx.nd.array(io["b"]), kernel=(3, 3), pad=(1, 1), num_filter=5)
    y = mx.nd.Pooling(mx.nd.transpose(y, axes=(0, 2, 3, 1)), kernel=(2, 2), stride=(2, 2), pool_type="max",
                      layout="NHWC")
    np.savez(sys.argv[2], y=y.asnumpy(), wshape=np.array(args[1]))
""")


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 is not installed under bench/.venvs/mxnet")
def test_conv2d_and_maxpool2d_nhwc_match_mxnet(tmp_path):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(5, 3, padding=1, layout="NHWC"), nn.MaxPool2D(layout="NHWC"))
    net.initialize(mx.init.Normal(0.5))
    x = _r(2, 6, 8, 2)                 # 2 channels: (5, 3, 3, 2) cannot pass for channels first
    ours = net(nd.array(x)).asnumpy()
    w, b = net[0].weight.data().asnumpy(), net[0].bias.data().asnumpy()
    np.savez(tmp_path / "in.npz", x=x, w=w, b=b)
    script = tmp_path / "mxnet_side.py"
    script.write_text(MXNET_SCRIPT)
    env = {**os.environ, "MXNET_STORAGE_FALLBACK_LOG_VERBOSE": "0"}
    done = subprocess.run([MXNET_PYTHON, str(script), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = np.load(tmp_path / "out.npz")
    assert tuple(theirs["wshape"]) == w.shape == (5, 3, 3, 2)
    np.testing.assert_allclose(ours, theirs["y"], rtol=1e-4, atol=1e-4)
    net.hybridize()
    np.testing.assert_allclose(net(nd.array(x)).asnumpy(), theirs["y"], rtol=1e-4, atol=1e-4)
