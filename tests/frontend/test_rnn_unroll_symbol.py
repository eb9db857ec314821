"""Recurrent cells unrolled over `sym.Variable` inputs build the graph MXNet 1.9.1 builds: the
same arguments in the same order, shapes inferred from the data's, the same outputs and (through
an executor) the same gradients as MXNet recorded in tests/gluon/fixtures_rnn/unroll.npz; and the
same cells unrolled over NDArrays compute the same. Cases: rnn_cases.UNROLL_CASES (RNN/LSTM/GRU
cells, sequential, bidirectional, residual, zoneout and dropout cells; NTC/TNC; merged or listed
outputs; with and without valid_length)."""
import os
import re
import sys

import numpy as np
import pytest

import graphc as mx
from graphc import autograd

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gluon", "fixtures_rnn")
sys.path.insert(0, FIXTURES)
import rnn_cases as rc  # noqa: E402

EXPECTED = np.load(os.path.join(FIXTURES, "unroll.npz"))
CASES = sorted(rc.UNROLL_CASES)
_AUTO_NAME = re.compile(r"^[a-z_]+\d+_output\d*$")    # stack3_output: numbered by a global counter


def _expected_outputs(name):
    return [EXPECTED[f"{name}.out{i}"] for i in range(len([k for k in EXPECTED.files
                                                             if k.startswith(f"{name}.out") and k[len(name) + 4:].isdigit()]))]


def _bound(name):
    sym, cell = rc.unroll_symbol(mx, name)
    args = sym.list_arguments()
    arg_shapes, out_shapes, _ = sym.infer_shape(**rc.input_shapes(name))
    return sym, cell, args, rc.bind_values(args, arg_shapes), out_shapes


@pytest.mark.parametrize("name", CASES)
def test_symbolic_unroll_has_mxnets_arguments_shapes_and_outputs(name):
    sym, _, args, vals, out_shapes = _bound(name)
    assert args == list(EXPECTED[f"{name}.args"])
    want = _expected_outputs(name)
    assert [tuple(s) for s in out_shapes] == [w.shape for w in want]
    for ours, theirs in zip(sym.list_outputs(), EXPECTED[f"{name}.outputs"]):
        if not _AUTO_NAME.match(str(theirs)):        # names the cells give (lstm_t3_out) must agree
            assert ours == theirs
    got = sym.eval(ctx=mx.cpu(), **{k: mx.nd.array(v) for k, v in vals.items()})
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g.asnumpy(), w, rtol=1e-5, atol=1e-6, err_msg=f"{name}: output {i}")


@pytest.mark.parametrize("name", [c for c in CASES if rc.differentiable(c)])
def test_bound_symbolic_unroll_has_mxnets_gradients(name):
    sym, _, args, vals, out_shapes = _bound(name)
    exe = sym.simple_bind(mx.cpu(), grad_req={a: "null" if a == "valid_length" else "write" for a in args},
                          **rc.input_shapes(name))
    for a in args:
        exe.arg_dict[a][:] = vals[a]
    exe.forward(is_train=True)
    exe.backward([mx.nd.array(h) for h in rc.heads(name, [tuple(s) for s in out_shapes], sym.list_outputs())])
    for a in args:
        if a != "valid_length":
            np.testing.assert_allclose(exe.grad_dict[a].asnumpy(), EXPECTED[f"{name}.grad:{a}"], rtol=1e-5,
                                       atol=1e-6, err_msg=f"{name}: d/d{a}")


@pytest.mark.parametrize("name", CASES)
def test_ndarray_unroll_computes_what_mxnets_symbol_computed(name):
    build, layout, merge, valid = rc.UNROLL_CASES[name]
    _, _, args, vals, _ = _bound(name)
    cell = build(mx)
    cell.initialize()
    params = cell.collect_params()
    assert sorted(params.keys()) == sorted(a for a in args if a not in ("data", "valid_length"))
    x = mx.nd.array(vals["data"])
    for key, p in params.items():
        p.set_data(vals[key])
    kw = {"valid_length": mx.nd.array(vals["valid_length"])} if valid else {}
    out, states = cell.unroll(rc.T, x, layout=layout, merge_outputs=merge, **kw)
    got = ([out] if merge else list(out)) + list(states)
    want = _expected_outputs(name)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g.asnumpy(), w, rtol=1e-5, atol=1e-6, err_msg=f"{name}: output {i}")
    if rc.differentiable(name):      # autograd through the unrolled steps: MXNet's gradients again
        x.attach_grad()
        with autograd.record(train_mode=False):
            out, states = cell.unroll(rc.T, x, layout=layout, merge_outputs=merge, **kw)
            outs = ([out] if merge else list(out)) + list(states)
            heads = rc.heads(name, [o.shape for o in outs], list(EXPECTED[f"{name}.outputs"]))
            loss = sum((o * mx.nd.array(h)).sum() for o, h in zip(outs, heads))
        loss.backward()
        np.testing.assert_allclose(x.grad.asnumpy(), EXPECTED[f"{name}.grad:data"], rtol=1e-5, atol=1e-6)
        for key, p in params.items():
            np.testing.assert_allclose(p.grad().asnumpy(), EXPECTED[f"{name}.grad:{key}"], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name}: d/d{key}")


def test_unroll_over_a_list_of_step_variables_and_given_begin_states():
    """Steps given one Variable each, and begin states given as Variables: their shapes come
    from infer_shape like the data's."""
    cell = mx.gluon.rnn.GRUCell(4, prefix="g_")
    steps = [mx.sym.Variable(f"x{t}") for t in range(3)]
    h0 = mx.sym.Variable("h0")
    out, (h,) = cell.unroll(3, steps, begin_state=[h0], merge_outputs=True, layout="TNC")
    shapes = {f"x{t}": (2, 5) for t in range(3)}
    arg_shapes, out_shapes, _ = out.infer_shape(h0=(2, 4), **shapes)
    assert out_shapes == [(3, 2, 4)]
    assert dict(zip(out.list_arguments(), arg_shapes))["g_i2h_weight"] == (12, 5)
    rng = np.random.default_rng(0)
    args = {n: rng.normal(size=s).astype(np.float32) for n, s in zip(out.list_arguments(), arg_shapes)}
    got = out.eval(ctx=mx.cpu(), **{k: mx.nd.array(v) for k, v in args.items()})[0].asnumpy()
    cell2 = mx.gluon.rnn.GRUCell(4, prefix="g_")
    cell2.initialize()
    for key, p in cell2.collect_params().items():
        p.set_data(args[key])
    want, _ = cell2.unroll(3, [mx.nd.array(args[f"x{t}"]) for t in range(3)], begin_state=[mx.nd.array(args["h0"])],
                           merge_outputs=True, layout="TNC")
    np.testing.assert_allclose(got, want.asnumpy(), rtol=1e-6)


def test_symbol_of_unknown_shape_needs_the_length():
    cell = mx.gluon.rnn.LSTMCell(3)
    with pytest.raises(ValueError, match="needs the length"):
        cell.unroll(None, mx.sym.Variable("data"))


def test_initialized_cell_with_deferred_shapes_unrolls_over_a_variable():
    """initialize() before the input size is known leaves the parameters waiting; unrolling
    over a Variable must not try to finish them (MXNet's symbolic forward never does)."""
    cell = mx.gluon.rnn.LSTMCell(4, prefix="l_")
    cell.initialize()
    out, _ = cell.unroll(3, mx.sym.Variable("data"), merge_outputs=True)
    assert out.infer_shape(data=(2, 3, 5))[1] == [(2, 3, 4)]
    assert cell.i2h_weight.shape == (16, 0)


def test_layer_called_on_a_variable_builds_mxnets_graph():
    """A fused LSTMP layer on a Variable: MXNet 1.9.1's argument list (recorded from it), the
    begin states made inside, and the values the NDArray call computes."""
    layer = mx.gluon.rnn.LSTM(4, input_size=5, num_layers=2, bidirectional=True, projection_size=2, prefix="L_")
    out = layer(mx.sym.Variable("data"))
    weights = [f"L_{d}{i}_{g}_weight" for i in range(2) for d in "lr" for g in ("i2h", "h2h", "h2r")]
    biases = [f"L_{d}{i}_{g}_bias" for i in range(2) for d in "lr" for g in ("i2h", "h2h")]
    assert out.list_arguments() == ["data"] + weights + biases
    arg_shapes, out_shapes, _ = out.infer_shape(data=(3, 2, 5))
    assert out_shapes == [(3, 2, 4)]
    vals = rc.bind_values(out.list_arguments(), arg_shapes)
    got = out.eval(ctx=mx.cpu(), **{k: mx.nd.array(v) for k, v in vals.items()})[0].asnumpy()
    layer.initialize()
    for key, p in layer.collect_params().items():
        p.set_data(vals[key])
    np.testing.assert_allclose(got, layer(mx.nd.array(vals["data"])).asnumpy(), rtol=1e-6)
