"""fuse_softmax_ce: a log_softmax becomes a `_fused_softmax_ce` node (row max and log-sum) whose
consumers read the logits: the rewritten graph computes what the original did (interpreted and
compiled, sparse and dense labels, every axis, float32 and float64, extreme rows), and no
log-probabilities are stored when only pick and the gradient read them."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.fused import body_of
from graphc.ops.fused_softmax_ce import FUSED_SOFTMAX_CE
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.ops.registry import get_op
from graphc.ops.types import TensorType
from graphc.passes.autodiff import differentiate
from graphc.passes.fuse_softmax_ce import fuse_softmax_ce
from graphc.passes.pipeline import SIMPLIFY, lower_pipeline


def evaluate(graph, inputs):
    """interpret(), with each fused node run as the operators of its body."""
    env = {(id(n), 0): np.asarray(a) for n, a in zip(graph.inputs, inputs)}
    for node in graph.nodes:
        if node.is_var:
            continue
        if node.is_const:
            env[(id(node), 0)] = node.attrs["value"]
            continue
        args = [env[(id(v.node), v.index)] for v in node.inputs]
        if node.op.startswith("_fused"):
            res = interpret(body_of(node), args)
        else:
            res = get_op(node.op).run(args, node.attrs, rng=np.random.default_rng(0))
        for i, r in enumerate(res):
            env[(id(node), i)] = np.asarray(r)
    return [env[(id(v.node), v.index)] for v in graph.outputs]


def ce_graph(shape, axis, dtype="float32", *, dense=False, keepdims=True, mode="clip", label_dtype=None,
             return_logp=False):
    """SoftmaxCrossEntropyLoss's forward: -pick(log_softmax(x), label) or -sum(label * logp)."""
    b = GraphBuilder("ce")
    F = b.F
    x = b.var("x", TensorType(shape, dtype))
    a = axis % len(shape)
    logp = F.log_softmax(x, axis=axis)
    if dense:
        label = b.var("label", TensorType(shape, dtype))
        loss = -F.sum(logp * label, axis=axis, keepdims=keepdims)
    else:
        lshape = shape[:a] + shape[a + 1:] or (1,)
        label = b.var("label", TensorType(lshape, label_dtype or dtype))
        loss = -F.pick(logp, label, axis=axis, keepdims=keepdims, mode=mode)
    return b.build([loss] + ([logp] if return_logp else []))


def inputs_for(g, rng, extreme=False):
    x_t, l_t = g.inputs[0].types[0], g.inputs[1].types[0]
    x = rng.standard_normal(x_t.shape) * 3
    if extreme and x.ndim == 2 and x.shape[0] >= 4 and x.shape[1] >= 2:
        x[0] *= 1e4                      # huge logits
        x[1] *= 1e-6                     # tiny logits: nearly uniform
        x[2, 0] = 80.0                   # one logit dominates
        x[3, 1:] = -1e9                  # masked classes
    x = x.astype(x_t.dtype)
    axis = next(n for n in g.op_nodes() if n.op == "log_softmax").attrs["axis"]
    if l_t.shape == x_t.shape:           # dense labels: rows of probabilities
        lab = rng.random(x_t.shape)
        lab = lab / lab.sum(axis=axis, keepdims=True)
    else:
        n = x_t.shape[axis]
        lab = rng.integers(-1, n + 1, l_t.shape) + rng.choice([0.0, 0.4], l_t.shape)   # out of range, fractions
    return [x, lab.astype(l_t.dtype)]


def fused(g):
    return [n for n in g.op_nodes() if n.op == FUSED_SOFTMAX_CE]


def test_pick_reads_the_logits_and_the_log_probabilities_are_gone():
    g = ce_graph((6, 11), -1)
    f = fuse_softmax_ce(g)
    verify(f)
    assert len(fused(f)) == 1 and not fused(f)[0].attrs["keep_logp"]
    assert not any(n.op == "log_softmax" for n in f.nodes)
    pick = next(n for n in f.op_nodes() if n.op == "pick")
    assert pick.inputs[0].node.is_var            # pick(x, label)
    xs = inputs_for(g, np.random.default_rng(0), extreme=True)
    np.testing.assert_allclose(evaluate(f, xs)[0], interpret(g, xs)[0], rtol=1e-6, atol=1e-6)


def test_returned_log_probabilities_are_the_third_output():
    g = ce_graph((5, 7), -1, return_logp=True)
    f = fuse_softmax_ce(g)
    node, = fused(f)
    assert node.attrs["keep_logp"] and f.outputs[1].node is node and f.outputs[1].index == 2
    xs = inputs_for(g, np.random.default_rng(1))
    for got, want in zip(evaluate(f, xs), interpret(g, xs)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, axis, dense, keepdims, mode", [
    ((37, 1000), -1, False, True, "clip"), ((37, 1000), -1, False, False, "wrap"), ((4, 9, 6), 1, False, True, "clip"),
    ((7, 5), 0, False, False, "clip"), ((9,), 0, False, True, "clip"), ((12, 30), -1, True, True, "clip"),
    ((3, 8, 5), 1, True, False, "clip"), ((8, 1), -1, False, True, "clip")])
def test_compiled_fused_loss_matches_numpy_and_the_unfused_program(shape, axis, dense, keepdims, mode, dtype,
                                                                   monkeypatch):
    g = ce_graph(shape, axis, dtype, dense=dense, keepdims=keepdims, mode=mode, return_logp=True)
    xs = inputs_for(g, np.random.default_rng(2), extreme=True)
    assert len(fused(lower_pipeline(False)(g))) == 1
    got = compile_graph(g)(xs)
    monkeypatch.setenv("GRAPHC_FUSE_SOFTMAX_CE", "0")
    unfused = compile_graph(g)(xs)
    g64 = ce_graph(shape, axis, "float64", dense=dense, keepdims=keepdims, mode=mode, return_logp=True)
    want = interpret(g64, [xs[0].astype(np.float64), xs[1].astype(np.float64)])     # numpy, float64
    tol = 1e-5 if dtype == "float32" else 1e-12
    for o, u, w in zip(got, unfused, want):
        assert o.dtype == np.dtype(dtype) and o.shape == w.shape
        scale = np.abs(w[np.isfinite(w)]).max(initial=1.0)
        np.testing.assert_allclose(o, w, rtol=tol, atol=tol * scale)
        np.testing.assert_allclose(o, u, rtol=tol, atol=tol * scale)


def test_a_row_of_minus_infinity_gives_nan_as_the_decomposition_does():
    g = ce_graph((3, 4), -1, return_logp=True)
    x = np.array([[0, 1, 2, 3], [-np.inf] * 4, [np.inf, 0, 0, 0]], np.float32)
    lab = np.array([1, 2, 0], np.float32)
    got = compile_graph(g)([x, lab])
    with np.errstate(all="ignore"):
        want = interpret(g, [x, lab])
        for o, w in zip(got, want):
            np.testing.assert_array_equal(np.isnan(o), np.isnan(w))
            np.testing.assert_allclose(o[~np.isnan(o)], w[~np.isnan(w)], rtol=1e-6)


def test_the_joint_training_graph_stores_no_log_probabilities():
    """Forward and backward in one program: pick reads x, the gradient recomputes exp((x - m) - ls)
    inside its own pass, and no data-sized value but the gradient is left."""
    n, c = 64, 1000
    g = ce_graph((n, c), -1)
    joint = differentiate(g, wrt=[g.inputs[0]]).graph
    lowered = lower_pipeline(True)(SIMPLIFY(joint))
    big = [node.op for node in lowered.op_nodes() if any(t.size == n * c for t in node.types)]
    assert big == ["_fused_elementwise"], big          # the gradient only
    xs = inputs_for(g, np.random.default_rng(3), extreme=True)
    head = np.linspace(0.5, 1.5, n).astype(np.float32).reshape(n, 1)
    got = compile_graph(joint, training=True)(xs + [head])
    want = interpret(joint, xs + [head])
    for o, w in zip(got, want):
        np.testing.assert_allclose(o, w, rtol=1e-5, atol=1e-5 * np.abs(w).max())


def test_other_softmaxes_and_temperatures_are_left_alone(monkeypatch):
    b = GraphBuilder("s")
    x = b.var("x", TensorType((4, 6), "float32"))
    g = b.build([b.F.log_softmax(x, axis=-1, temperature=2.0), b.F.softmax(x, axis=-1)])
    assert not fused(fuse_softmax_ce(g))
    monkeypatch.setenv("GRAPHC_FUSE_SOFTMAX_CE", "0")
    assert not fused(fuse_softmax_ce(ce_graph((4, 6), -1)))


@settings(max_examples=40, deadline=None)
@given(rank=st.integers(1, 3), data=st.data(), dense=st.booleans(), keepdims=st.booleans(),
       mode=st.sampled_from(["clip", "wrap"]), dtype=st.sampled_from(["float32", "float64"]),
       label_int=st.booleans(), ret=st.booleans())
def test_property_the_rewritten_graph_computes_the_original(rank, data, dense, keepdims, mode, dtype, label_int,
                                                            ret):
    shape = tuple(data.draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank)))
    axis = data.draw(st.integers(-rank, rank - 1))
    g = ce_graph(shape, axis, dtype, dense=dense, keepdims=keepdims, mode=mode,
                 label_dtype="int32" if label_int and not dense else None, return_logp=ret)
    f = fuse_softmax_ce(g)
    verify(f)
    assert len(fused(f)) == 1 and fused(f)[0].attrs["keep_logp"] == ret
    xs = inputs_for(g, np.random.default_rng(data.draw(st.integers(0, 2 ** 16))))
    with np.errstate(all="ignore"):
        for got, want in zip(evaluate(f, xs), interpret(g, xs)):
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis, dense", [(-1, False), (1, False), (-1, True)])
def test_rewritten_before_the_split_the_forward_saves_only_row_statistics(axis, dense):
    """Run on the joint gradient graph before split_forward_backward (as a training CachedOp can),
    the forward saves m and ls, the backward reads x itself, and the two separately compiled
    programs give the original loss and gradient."""
    import dataclasses
    from graphc.passes.autodiff import split_forward_backward
    shape = (6, 40) if axis == -1 else (3, 40, 2)
    g = ce_graph(shape, axis, "float64", dense=dense)
    gg = differentiate(g, wrt=[g.inputs[0]])
    split = split_forward_backward(dataclasses.replace(gg, graph=fuse_softmax_ce(gg.graph)), g.inputs)
    saved = split.forward.outputs[split.num_outputs:]
    assert saved and all(v.type.size * shape[axis] == g.inputs[0].types[0].size for v in saved)   # rows only
    xs = inputs_for(g, np.random.default_rng(6), extreme=True)
    fwd = compile_graph(SIMPLIFY(split.forward), training=True)(xs)
    head = np.linspace(0.5, 1.5, fwd[0].size).reshape(fwd[0].shape)
    feed = [head if kind == "head_grad" else xs[k] if kind == "input" else fwd[split.num_outputs + k]
            for kind, k in split.backward_inputs]
    grad = compile_graph(SIMPLIFY(split.backward), training=True)(feed)[0]
    want = interpret(gg.graph, xs + [head])
    np.testing.assert_allclose(fwd[0], want[0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(grad, want[1], rtol=1e-10, atol=1e-12)
