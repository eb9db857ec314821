"""fuse_attention: which graphs it rewrites, and that a rewritten graph computes what the
original did (the fused node evaluated by its numpy reference, so this file needs no compiler).
The compiled kernel is checked in tests/runtime/test_attention_kernel.py."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from graphc.ops.builder import GraphBuilder
from graphc.ops.fused_attention import FUSED_ATTENTION, attention_reference
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.ops.registry import get_op
from graphc.ops.types import TensorType
from graphc.passes.fuse_attention import MAX_KEYS, fuse_attention


def evaluate(graph, inputs):
    """interpret(), plus `_fused_attention` nodes through attention_reference."""
    env = {(id(n), 0): np.asarray(a) for n, a in zip(graph.inputs, inputs)}
    for node in graph.nodes:
        if node.is_var:
            continue
        if node.is_const:
            env[(id(node), 0)] = node.attrs["value"]
            continue
        args = [env[(id(v.node), v.index)] for v in node.inputs]
        if node.op == FUSED_ATTENTION:
            a = node.attrs
            res = [attention_reference(*args[:3], args[3] if a["has_mask"] else None, scale=a["scale"],
                                       mask_scale=a["mask_scale"], trans_q=a["trans_q"], trans_k=a["trans_k"],
                                       trans_v=a["trans_v"])]
            if a["keep_probs"]:     # the probabilities: the reference against an identity V
                eye = np.broadcast_to(np.eye(node.types[1].shape[2], dtype=args[0].dtype),
                                      (args[0].shape[0],) + (node.types[1].shape[2],) * 2)
                res.append(attention_reference(*args[:2], eye, args[3] if a["has_mask"] else None,
                                               scale=a["scale"], mask_scale=a["mask_scale"], trans_q=a["trans_q"],
                                               trans_k=a["trans_k"]))
        else:
            res = get_op(node.op).run(args, node.attrs, rng=np.random.default_rng(0))
        for i, r in enumerate(res):
            env[(id(node), i)] = np.asarray(r)
    return [env[(id(v.node), v.index)] for v in graph.outputs]


def attention_graph(n=2, tq=5, tk=7, d=3, dv=4, *, trans=(False, True, False), mask_shape=(1, 5, 7),
                    chain=("scale", "mask"), temperature=None, dtype="float32", fill=-1e9):
    """batch_dot -> chain of 'scale' (x 0.5), 'div' (/ 4) and 'mask' (+ mask, either side) ->
    softmax -> batch_dot, and arrays for it (30% of the mask is `fill`)."""
    tq_, tk_ = tq, tk
    b = GraphBuilder("attn")
    F = b.F
    qs = (n, d, tq_) if trans[0] else (n, tq_, d)
    ks = (n, tk_, d) if trans[1] else (n, d, tk_)
    vs = (n, dv, tk_) if trans[2] else (n, tk_, dv)
    q, k, v = (b.var(name, TensorType(s, dtype)) for name, s in (("q", qs), ("k", ks), ("v", vs)))
    shapes = [qs, ks, vs]
    s = F.batch_dot(q, k, transpose_a=trans[0], transpose_b=trans[1])
    for step in chain:
        if step == "scale":
            s = s * 0.5
        elif step == "div":
            s = s / 4.0
        elif step == "mask":
            m = b.var("mask", TensorType(mask_shape, dtype))
            shapes.append(mask_shape)
            s = F.broadcast_add(s, m)
        elif step == "mask_left":
            m = b.var("mask", TensorType(mask_shape, dtype))
            shapes.append(mask_shape)
            s = F.broadcast_add(m, s)
    p = F.softmax(s, axis=-1, temperature=temperature)
    out = F.batch_dot(p, v, transpose_b=trans[2])
    g = b.build([out])
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(sh).astype(dtype) for sh in shapes[:3]]
    if len(shapes) > 3:
        arrays.append(np.where(rng.random(shapes[3]) < 0.3, fill, rng.standard_normal(shapes[3])).astype(dtype))
    return g, arrays


def fused_nodes(g):
    return [n for n in g.nodes if n.op == FUSED_ATTENTION]


def test_the_transformer_pattern_becomes_one_node_with_the_original_operators_as_its_body():
    g, arrays = attention_graph()
    f = fuse_attention(g)
    verify(f)
    (node,) = fused_nodes(f)
    assert [n.op for n in f.op_nodes()] == [FUSED_ATTENTION]
    assert repr(node.attrs["body"]) == "[batch_dot, _mul_scalar, broadcast_add, softmax, batch_dot]"
    assert node.attrs["scale"] == 0.5 and node.attrs["mask_scale"] == 1.0 and node.attrs["has_mask"]
    np.testing.assert_allclose(evaluate(f, arrays)[0], interpret(g, arrays)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chain, temperature, scale, mask_scale", [
    (("mask", "scale"), None, 0.5, 0.5),          # (QK + mask) * 0.5: the scale applies to both
    (("scale", "mask", "div"), 2.0, 0.5 / 4 / 2, 1 / 4 / 2),
    (("mask_left",), None, 1.0, 1.0),
    ((), 0.5, 2.0, 1.0),
])
def test_scales_and_temperature_fold_into_the_two_scales(chain, temperature, scale, mask_scale):
    g, arrays = attention_graph(chain=chain, temperature=temperature)
    f = fuse_attention(g)
    (node,) = fused_nodes(f)
    assert node.attrs["scale"] == pytest.approx(scale) and node.attrs["has_mask"] == any("mask" in c for c in chain)
    if node.attrs["has_mask"]:
        assert node.attrs["mask_scale"] == pytest.approx(mask_scale)
    np.testing.assert_allclose(evaluate(f, arrays)[0], interpret(g, arrays)[0], rtol=1e-5, atol=1e-6)


def test_returned_probabilities_become_the_second_output():
    """A training forward returns the softmax's output for its gradient: the fused node keeps it."""
    g, arrays = attention_graph(chain=("mask", "scale"))
    out = g.outputs[0]
    p = out.node.inputs[0]
    g = g.with_outputs([out, p])
    f = fuse_attention(g)
    verify(f)
    (node,) = fused_nodes(f)
    assert node.attrs["keep_probs"] and len(node.types) == 2 and len(f.op_nodes()) == 1
    assert [(v.node, v.index) for v in f.outputs] == [(node, 0), (node, 1)]
    for got, want in zip(evaluate(f, arrays), interpret(g, arrays)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_probabilities_or_scores_used_by_other_operators_are_not_fused():
    b = GraphBuilder("kept")
    F = b.F
    q, k, v = (b.var(x, TensorType((2, 4, 3), "float32")) for x in "qkv")
    p = F.softmax(F.batch_dot(q, k, transpose_b=True), axis=-1)
    out = F.batch_dot(p, v) + F.sum(p)
    assert not fused_nodes(fuse_attention(b.build([out])))           # p feeds another operator
    s = F.batch_dot(q, k, transpose_b=True)
    out2 = F.batch_dot(F.softmax(s, axis=-1), v)
    assert not fused_nodes(fuse_attention(b.build([out2, s])))       # the scores are returned


@pytest.mark.parametrize("why, build", [
    ("softmax over another axis", lambda F, s, v: F.batch_dot(F.softmax(s, axis=1), v)),
    ("transposed probabilities", lambda F, s, v: F.batch_dot(F.softmax(s, axis=-1), v, transpose_a=True)),
    ("log_softmax", lambda F, s, v: F.batch_dot(F.log_softmax(s, axis=-1), v)),
    ("a non-scalar op between", lambda F, s, v: F.batch_dot(F.softmax(F.tanh(s), axis=-1), v)),
])
def test_other_shapes_of_graph_are_left_alone(why, build):
    b = GraphBuilder("other")
    F = b.F
    q, k, v = (b.var(x, TensorType((2, 4, 4), "float32")) for x in "qkv")
    g = b.build([build(F, F.batch_dot(q, k, transpose_b=True), v)])
    assert not fused_nodes(fuse_attention(g)), why


def test_two_products_added_are_not_a_mask_and_a_mask_that_grows_the_scores_is_refused():
    b = GraphBuilder("two")
    F = b.F
    q, k, v = (b.var(x, TensorType((2, 4, 4), "float32")) for x in "qkv")
    s = F.broadcast_add(F.batch_dot(q, k, transpose_b=True), F.batch_dot(k, q, transpose_b=True))
    assert not fused_nodes(fuse_attention(b.build([F.batch_dot(F.softmax(s, axis=-1), v)])))
    b = GraphBuilder("grow")
    F = b.F
    q = b.var("q", TensorType((1, 1, 4), "float32"))        # one query row ...
    k, v = (b.var(x, TensorType((1, 4, 4), "float32")) for x in "kv")
    m = b.var("m", TensorType((1, 4, 4), "float32"))        # ... broadcast to 4 by the mask
    s = F.broadcast_add(F.batch_dot(q, k, transpose_b=True), m)
    g = b.build([F.batch_dot(F.softmax(s, axis=-1), v)])
    assert g.outputs[0].type.shape == (1, 4, 4)
    assert not fused_nodes(fuse_attention(g))


def test_division_by_zero_and_zero_temperature_stay_as_written():
    b = GraphBuilder("zero")
    F = b.F
    q, k, v = (b.var(x, TensorType((1, 3, 3), "float32")) for x in "qkv")
    g = b.build([F.batch_dot(F.softmax(F.batch_dot(q, k, transpose_b=True) / 0.0, axis=-1), v)])
    assert not fused_nodes(fuse_attention(g))
    g = b.build([F.batch_dot(F.softmax(F.batch_dot(q, k, transpose_b=True), axis=-1, temperature=0.0), v)])
    assert not fused_nodes(fuse_attention(g))


def test_keys_past_the_stack_bound_stay_unfused():
    g, _ = attention_graph(n=1, tq=1, tk=MAX_KEYS + 1, d=1, dv=1, chain=())
    assert not fused_nodes(fuse_attention(g))


def test_integer_attention_is_left_alone():
    g, _ = attention_graph(dtype="int32", chain=())
    assert not fused_nodes(fuse_attention(g))


def test_switched_off_by_the_environment(monkeypatch):
    g, _ = attention_graph()
    monkeypatch.setenv("GRAPHC_FUSE_ATTENTION", "0")
    assert fuse_attention(g) is g


def test_it_runs_in_the_lower_pipeline_before_softmax_is_decomposed():
    from graphc.passes.pipeline import lower_pipeline
    g, _ = attention_graph()
    lowered = lower_pipeline(False)(g)
    assert [n.op for n in lowered.op_nodes()] == [FUSED_ATTENTION]


MASKS = [None, (1, 1, 1), (1, 1, "k"), (1, "q", "k"), ("n", "q", "k"), ("n", 1, "k"), ("q", "k"), ("k",)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), tq=st.integers(1, 6), tk=st.integers(1, 6), d=st.integers(1, 4), dv=st.integers(1, 4),
       trans=st.tuples(st.booleans(), st.booleans(), st.booleans()), mask=st.sampled_from(MASKS),
       chain=st.lists(st.sampled_from(["scale", "div"]), max_size=2), mask_at=st.integers(0, 2),
       left=st.booleans(), temperature=st.sampled_from([None, 1.0, 0.7]), dtype=st.sampled_from(["float32", "float64"]),
       keep=st.booleans())
def test_property_the_rewritten_graph_computes_the_original(n, tq, tk, d, dv, trans, mask, chain, mask_at, left,
                                                          temperature, dtype, keep):
    """Any attention graph the generator draws (transposes, broadcast masks on either side of the
    add, scales above and below the mask, a temperature, the probabilities returned or not) is
    fused and computes the same."""
    chain = list(chain)
    size = {"n": n, "q": tq, "k": tk}
    mask_shape = None
    if mask is not None:
        mask_shape = tuple(size[x] if isinstance(x, str) else x for x in mask)
        chain.insert(min(mask_at, len(chain)), "mask_left" if left else "mask")
    # holes of -30, not -1e9: a mask constant along a row shifts it by the fill, and at 1e9 the
    # spacing of doubles (1e-7) decides the comparison, in the original graph as in the fused one
    g, arrays = attention_graph(n, tq, tk, d, dv, trans=trans, mask_shape=mask_shape, chain=tuple(chain),
                                temperature=temperature, dtype=dtype, fill=-30.0)
    if keep:
        g = g.with_outputs([g.outputs[0], g.outputs[0].node.inputs[0]])
    f = fuse_attention(g)
    verify(f)
    assert len(fused_nodes(f)) == 1 and len(f.op_nodes()) == 1
    tol = 1e-5 if dtype == "float32" else 1e-12
    for got, want in zip(evaluate(f, arrays), interpret(g, arrays), strict=True):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
