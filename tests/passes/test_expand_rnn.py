"""expand_rnn: the unrolled graph computes what the fused RNN op computes, in the interpreter and
compiled; autodiff of it gives the gradients of _backward_RNN; it is made of primitive ops with
one input-projection GEMM per layer and direction; dropout between layers in training becomes
Dropout nodes drawing the fused op's masks."""
import os
from collections import Counter

import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops import has_op
from graphc.ops.builder import GraphBuilder
from graphc.ops.declarations.rnn import param_size
from graphc.ops.graph import Value, verify
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.autodiff import differentiate
from graphc.passes.expand_rnn import expand_rnn
from graphc.runtime.lower import HostStep

LSTM_FIXTURE = "/work/shared/fixtures/mxnet/lstm-symbol.json"
MODES = ["rnn_relu", "rnn_tanh", "lstm", "gru"]
GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}


def _inputs(mode, layers, dirs, seq=4, batch=3, feat=5, hidden=3, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1, 1, (seq, batch, feat)),
              rng.uniform(-0.6, 0.6, (param_size(mode, layers, dirs, feat, hidden),)),
              rng.uniform(-1, 1, (layers * dirs, batch, hidden))]
    if mode == "lstm":
        arrays.append(rng.uniform(-1, 1, (layers * dirs, batch, hidden)))
    return [a.astype(dtype) for a in arrays]


def _rnn_graph(arrays, **attrs):
    b = GraphBuilder("rnn")
    xs = [b.var(f"x{i}", TensorType(a.shape, a.dtype)) for i, a in enumerate(arrays)]
    outs = b.invoke("RNN", xs, attrs)
    return b.build(list(outs) if isinstance(outs, tuple) else [outs])


def _attrs(mode, layers, bidirectional, hidden=3, **extra):
    return dict(mode=mode, state_size=hidden, num_layers=layers, bidirectional=bidirectional,
                state_outputs=True, **extra)


def _assert_all_close(got, want, rtol=1e-10, atol=1e-12):
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype, (k, g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"output {k}")


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_unrolled_graph_computes_what_the_fused_op_computes(mode, bidirectional):
    arrays = _inputs(mode, 2, 2 if bidirectional else 1)
    graph = _rnn_graph(arrays, **_attrs(mode, 2, bidirectional))
    expanded = verify(expand_rnn(graph))
    _assert_all_close(interpret(expanded, arrays), interpret(graph, arrays))


@pytest.mark.parametrize("attrs", [
    dict(mode="gru", state_size=3, num_layers=1),                                     # out only
    dict(mode="lstm", state_size=3, num_layers=3, bidirectional=True, state_outputs=True,
         lstm_state_clip_min=-0.2, lstm_state_clip_max=0.25),
    dict(mode="rnn_tanh", state_size=3, num_layers=2, p=0.3),                         # not training
], ids=["no-state-outputs", "lstm-clipped", "dropout-at-inference"])
def test_unrolled_graph_matches_for_other_attributes(attrs):
    dirs = 2 if attrs.get("bidirectional") else 1
    arrays = _inputs(attrs["mode"], attrs["num_layers"], dirs, seq=1 if attrs["mode"] == "gru" else 4)
    graph = _rnn_graph(arrays, **attrs)
    _assert_all_close(interpret(verify(expand_rnn(graph)), arrays), interpret(graph, arrays))


def test_clip_nan_turns_a_nan_cell_into_the_lower_bound_like_the_fused_op():
    arrays = _inputs("lstm", 1, 1)
    arrays[3][0, 1, 2] = np.nan
    graph = _rnn_graph(arrays, **_attrs("lstm", 1, False, lstm_state_clip_min=-0.5, lstm_state_clip_max=0.5,
                                        lstm_state_clip_nan=True))
    want = interpret(graph, arrays)
    assert not any(np.isnan(w).any() for w in want)
    _assert_all_close(interpret(expand_rnn(graph), arrays), want)


@pytest.mark.parametrize("mode", MODES)
def test_unrolled_graph_is_primitive_ops_with_one_input_gemm_per_layer_and_direction(mode):
    seq, layers, dirs = 4, 2, 2
    arrays = _inputs(mode, layers, dirs, seq=seq)
    expanded = expand_rnn(_rnn_graph(arrays, **_attrs(mode, layers, True)))
    ops = Counter(n.op for n in expanded.op_nodes())
    assert "RNN" not in ops and "_backward_RNN" not in ops
    assert set(ops) <= {"slice_axis", "Reshape", "FullyConnected", "transpose", "split", "dot", "sigmoid",
                        "tanh", "relu", "broadcast_add", "broadcast_sub", "broadcast_mul", "_rminus_scalar",
                        "zeros_like", "Concat", "stack"}, ops
    assert ops["FullyConnected"] == layers * dirs
    assert ops["dot"] == layers * dirs * seq * GATES[mode]
    # W_h2h is transposed once per gate, not read transposed by every step's GEMM
    assert not any(n.attrs["transpose_b"] for n in expanded.op_nodes() if n.op == "dot")


@pytest.mark.parametrize("mode,layers,bidirectional", [("lstm", 3, True), ("gru", 2, False)])
def test_training_dropout_between_layers_is_unrolled_as_dropout_nodes(mode, layers, bidirectional):
    """In training each gap between layers is a Dropout node; drawing from the same numpy stream,
    the interpreted unrolled graph applies the masks the fused op draws (one (T, N, D*H) block
    per gap, in layer order), so forward and autodiff's gradients equal the fused op's."""
    arrays = _inputs(mode, layers, 2 if bidirectional else 1)
    graph = _rnn_graph(arrays, **_attrs(mode, layers, bidirectional, p=0.5))
    expanded = verify(expand_rnn(graph, training=True))
    ops = Counter(n.op for n in expanded.op_nodes())
    assert "RNN" not in ops and ops["Dropout"] == layers - 1, ops
    _assert_all_close(interpret(expanded, arrays, rng=np.random.default_rng(4), training=True),
                      interpret(graph, arrays, rng=np.random.default_rng(4), training=True))
    no_drop = interpret(graph, arrays, training=False)
    assert not np.allclose(interpret(expanded, arrays, rng=np.random.default_rng(4), training=True)[0], no_drop[0])
    rng = np.random.default_rng(1)
    heads = [rng.standard_normal(v.type.shape) for v in graph.outputs]
    unrolled = verify(differentiate(expanded).graph)
    assert not {"RNN", "_backward_RNN"} & {n.op for n in unrolled.op_nodes()}
    _assert_all_close(interpret(unrolled, arrays + heads, rng=np.random.default_rng(4), training=True),
                      interpret(differentiate(graph).graph, arrays + heads, rng=np.random.default_rng(4),
                                training=True))


def test_unrolled_mask_output_is_the_stacked_dropout_masks_and_ones_outside_training():
    arrays = _inputs("lstm", 3, 1)
    b = GraphBuilder("rnn")
    xs = [b.var(f"x{i}", TensorType(a.shape, a.dtype)) for i, a in enumerate(arrays)]
    b.invoke("RNN", xs, _attrs("lstm", 3, False, p=0.3))
    rnn = b.nodes[-1]
    graph = b.build([Value(rnn, 0), Value(rnn, len(rnn.types) - 1)])      # out and the hidden masks
    for training in (True, False):
        got = interpret(expand_rnn(graph, training=training), arrays, rng=np.random.default_rng(6), training=training)
        want = interpret(graph, arrays, rng=np.random.default_rng(6), training=training)
        _assert_all_close(got, want)
    assert set(np.unique(want[1]).tolist()) == {1.0}


def test_compiled_training_rnn_with_dropout_has_no_host_step_and_its_gradient_matches_its_forward():
    """Compiled, the masks come from the kernel generator (not numpy's): the gradient is checked
    against central differences of the compiled forward drawing the same masks (same rng seed)."""
    arrays = _inputs("lstm", 2, 2, seq=3, batch=2, feat=4, hidden=3)
    graph = _rnn_graph(arrays, **_attrs("lstm", 2, True, p=0.4))
    expanded = expand_rnn(graph, training=True)
    forward = compile_graph(expanded, training=True, cache=False)
    rng = np.random.default_rng(2)
    heads = [rng.standard_normal(v.type.shape) for v in graph.outputs]
    joint = compile_graph(differentiate(expanded).graph, training=True, cache=False)
    for program in (forward, joint):
        assert not [s.node.op for s in program.steps if isinstance(s, HostStep)]
    n_out = len(graph.outputs)
    got = joint(arrays + heads, rng=np.random.default_rng(9))
    _assert_all_close(got[:n_out], forward(arrays, rng=np.random.default_rng(9)))
    unmasked = compile_graph(expand_rnn(graph), cache=False)(arrays)[0]
    assert not np.allclose(got[0], unmasked), "no dropout was applied"

    def f(arrs):
        return sum(float(np.sum(y * h)) for y, h in zip(forward(arrs, rng=np.random.default_rng(9)), heads))

    for k in (0, 1):                                     # data, the packed parameters
        v = rng.standard_normal(arrays[k].shape)
        eps = 1e-6
        up = [a + eps * v if i == k else a for i, a in enumerate(arrays)]
        down = [a - eps * v if i == k else a for i, a in enumerate(arrays)]
        fd = (f(up) - f(down)) / (2 * eps)
        np.testing.assert_allclose(float(np.sum(got[n_out + k] * v)), fd, rtol=1e-6, atol=1e-8)


def test_graph_without_rnn_comes_back_unchanged():
    b = GraphBuilder("mlp")
    x = b.var("x", TensorType((2, 3)))
    graph = b.build([b.F.tanh(x) * 2.0])
    assert [n for n in expand_rnn(graph).nodes] == graph.nodes


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_autodiff_of_the_unrolled_graph_gives_backward_rnn_gradients(mode, bidirectional):
    arrays = _inputs(mode, 2, 2 if bidirectional else 1)
    graph = _rnn_graph(arrays, **_attrs(mode, 2, bidirectional))
    rng = np.random.default_rng(1)
    heads = [rng.standard_normal(v.type.shape) for v in graph.outputs]
    fused = differentiate(graph).graph
    assert "_backward_RNN" in {n.op for n in fused.op_nodes()}
    unrolled = verify(differentiate(expand_rnn(graph)).graph)
    assert not {"RNN", "_backward_RNN"} & {n.op for n in unrolled.op_nodes()}
    _assert_all_close(interpret(unrolled, arrays + heads), interpret(fused, arrays + heads))


@pytest.mark.parametrize("mode", MODES)
def test_compiled_unrolled_forward_and_backward_match_the_fused_op(mode):
    arrays = _inputs(mode, 2, 2, seq=2, batch=2, feat=4, hidden=3)
    graph = _rnn_graph(arrays, **_attrs(mode, 2, True))
    rng = np.random.default_rng(2)
    heads = [rng.standard_normal(v.type.shape) for v in graph.outputs]
    joint = differentiate(expand_rnn(graph)).graph
    program = compile_graph(joint)
    _assert_all_close(program(arrays + heads), interpret(differentiate(graph).graph, arrays + heads),
                      rtol=1e-9, atol=1e-11)


def test_compiled_unrolled_lstm_in_float32_matches_the_fused_op():
    arrays = _inputs("lstm", 2, 1, seq=5, batch=4, feat=6, hidden=8, dtype="float32")
    graph = _rnn_graph(arrays, **_attrs("lstm", 2, False, hidden=8))
    program = compile_graph(expand_rnn(graph))
    _assert_all_close(program(arrays), interpret(graph, arrays), rtol=1e-5, atol=1e-6)


def _mxnet_lstm_fixture():
    """(typed graph, input values, MXNet's output) for the lstm fixture, or a skip. The file's
    begin-state `_zeros` nodes say shape (2, 0, 24): 0 is the batch, which MXNet's shape
    inference fills in from RNN's data; graphc's loader does not infer backwards (yet), so the
    batch is written in here."""
    from graphc.formats.mxnet_json import bind_types, load_symbol_json, read_symbol_json
    from graphc.formats.mxnet_params import load_params, split_arg_aux
    base = os.path.dirname(LSTM_FIXTURE)
    if not os.path.exists(os.path.join(base, "lstm-io.npz")):
        pytest.skip("lstm fixture is missing")
    with open(LSTM_FIXTURE) as f:
        text = f.read()
    missing = sorted({raw.op for raw in read_symbol_json(text, LSTM_FIXTURE).nodes if raw.op != "null" and not has_op(raw.op)})
    if missing:
        pytest.skip(f"operators not declared yet: {missing}")
    io = np.load(os.path.join(base, "lstm-io.npz"))
    assert text.count('"shape": "(2, 0, 24)"') == 2
    text = text.replace('"shape": "(2, 0, 24)"', f'"shape": "(2, {io["input0"].shape[0]}, 24)"')
    args, auxs = split_arg_aux(load_params(os.path.join(base, "lstm-0000.params")))
    values = {**args, **auxs, "data": io["input0"]}
    graph = load_symbol_json(text, LSTM_FIXTURE, data_names=["data"])
    typed = bind_types(graph, {k: TensorType(v.shape, v.dtype) for k, v in values.items()})
    return typed, values, io["output0"]


def test_mxnet_lstm_fixture_fused_and_unrolled_compute_what_mxnet_computed():
    graph, values, want = _mxnet_lstm_fixture()
    np.testing.assert_allclose(interpret(graph, values)[0], want, rtol=1e-5, atol=1e-6)
    expanded = expand_rnn(graph)
    assert "RNN" not in {n.op for n in expanded.op_nodes()}
    got = compile_graph(expanded)([values[n.name] for n in expanded.inputs])[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
