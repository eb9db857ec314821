"""Depth is not bounded by Python's recursion limit.

A chain of elementwise operators 100k long runs eagerly with autograd and compiled (fusion
splits it into kernels of bounded size; every walk over graphs and formulas is iterative); a
symbol file with a 10k-operator chain loads and runs; a file nested 100k deep is refused with a
FormatError naming the file, never a bare RecursionError. All of it at Python's default
recursion limit.

Measured on the shared 2-core development machine (float32, 8x8 input, forward + backward,
first call including compilation): eager 5000 ops 0.5 s, 100k ops 11 s; compiled 500 ops 1.4 s,
5000 ops 9 s, 20k ops 72 s (about 3.5 ms per operator, linear; the time goes to the passes and
the backward graph, not to a recursion or a quadratic walk). 20k and 100k compiled run only
with GRAPHC_TEST_DEPTH=full.
"""
import json
import os
import sys

import numpy as np
import pytest

import graphc as mx
from graphc import nd, autograd, gluon
from graphc.ops import scalar as S
from graphc.ops.builder import GraphBuilder
from graphc.ops.errors import FormatError
from graphc.ops.interpret import interpret
from graphc.ops.registry import get_op
from graphc.ops.types import TensorType
from graphc.passes import fuse

FULL = os.environ.get("GRAPHC_TEST_DEPTH", "") == "full"
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "mxnet")


@pytest.fixture(autouse=True)
def default_recursion_limit():
    """Nothing here may pass by raising the limit: run at CPython's default."""
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(saved)


# -- the chain -----------------------------------------------------------------------------------
# Pairs y + a*f(y), then y - a*f(y): each pair's derivative is 1 - O(a^2), so over 100k
# operators the value stays O(1) and the gradient neither vanishes nor explodes, yet every
# operator contributes to both. y has two users in each step (f and the add), so the graph is a
# chain of fan-outs, not just a linked list.
A = 0.01


def chain(F, y, n_ops):
    """n_ops elementwise operators on y (an NDArray, a Symbol, or a Dual)."""
    fs = (F.tanh, F.sigmoid, F.tanh, F.exp)
    for k in range(n_ops // 3):
        u = fs[(k // 2) % len(fs)](y) * A
        y = y + u if k % 2 == 0 else y - u
    if n_ops % 3 == 1:
        y = F.tanh(y)
    elif n_ops % 3 == 2:
        y = y + F.tanh(y)
    return y


class Dual:
    """value and d(value)/dx, elementwise, in float64: the reference for value and gradient."""

    def __init__(self, v, d):
        self.v, self.d = v, d

    def __mul__(self, c):
        return Dual(self.v * c, self.d * c)

    def __add__(self, o):
        return Dual(self.v + o.v, self.d + o.d)

    def __sub__(self, o):
        return Dual(self.v - o.v, self.d - o.d)

    @staticmethod
    def tanh(x):
        t = np.tanh(x.v)
        return Dual(t, (1 - t * t) * x.d)

    @staticmethod
    def sigmoid(x):
        s = 1 / (1 + np.exp(-x.v))
        return Dual(s, s * (1 - s) * x.d)

    @staticmethod
    def exp(x):
        e = np.exp(x.v)
        return Dual(e, e * x.d)


X = np.linspace(-1.5, 1.5, 64).reshape(8, 8).astype(np.float32)


def reference(n_ops):
    out = chain(Dual, Dual(X.astype(np.float64), np.ones(X.shape)), n_ops)
    return out.v, out.d


def check(value, grad, n_ops):
    ref_v, ref_d = reference(n_ops)
    assert np.isfinite(ref_d).all() and np.abs(ref_d).min() > 0.01   # the test means something
    np.testing.assert_allclose(value, ref_v, rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(grad, ref_d, rtol=2e-3, atol=2e-4)


def eager(n_ops):
    x = nd.array(X)
    x.attach_grad()
    with autograd.record():
        y = chain(nd, x, n_ops)
        loss = y.sum()
    loss.backward()
    return y.asnumpy(), x.grad.asnumpy()


class Chain(gluon.HybridBlock):
    def __init__(self, n_ops):
        super().__init__()
        self.n_ops = n_ops

    def hybrid_forward(self, F, x):
        return chain(F, x, self.n_ops)


def compiled(n_ops):
    net = Chain(n_ops)
    net.hybridize()
    x = nd.array(X)
    x.attach_grad()
    with autograd.record():
        y = net(x)
        loss = y.sum()
    loss.backward()
    return y.asnumpy(), x.grad.asnumpy()


@pytest.mark.parametrize("n_ops", [500, 5000])
def test_eager_chain_and_its_backward(n_ops):
    check(*eager(n_ops), n_ops)


@pytest.mark.slow
def test_eager_chain_of_100k_operators_and_its_backward():
    check(*eager(100_000), 100_000)


def test_compiled_chain_and_its_gradient():
    check(*compiled(500), 500)


@pytest.mark.slow
def test_compiled_chain_of_5000_operators_and_its_gradient():
    check(*compiled(5000), 5000)


@pytest.mark.slow
@pytest.mark.skipif(not FULL, reason="~70 s; set GRAPHC_TEST_DEPTH=full to run it")
def test_compiled_chain_of_20k_operators_and_its_gradient():
    check(*compiled(20_000), 20_000)


@pytest.mark.slow
@pytest.mark.skipif(not FULL, reason="minutes; set GRAPHC_TEST_DEPTH=full to run it")
def test_compiled_chain_of_100k_operators_and_its_gradient():
    check(*compiled(100_000), 100_000)


def test_one_kernel_renders_a_formula_thousands_of_operators_deep(monkeypatch):
    """With the fusion cap lifted, a 1500-operator chain is one formula 1500+ levels deep (more
    than the 1000 frames a recursive walk may use): the renderers, the kernel IR's printer and
    formula rewriting must walk it without recursing."""
    monkeypatch.setattr(fuse, "MAX_FUSED_OPS", 10**9)
    check(*compiled(1500), 1500)


def test_fusion_splits_a_long_chain_into_bounded_kernels():
    gb = GraphBuilder("long")
    x = gb.var("x", TensorType((8, 8)))
    g = gb.build([chain(gb.F, x, 1000)])
    fused = fuse.fuse_elementwise(g)
    sizes = [len(n.attrs["body"].graph.op_nodes()) for n in fused.op_nodes() if n.op.startswith("_fused")]
    assert sizes and max(sizes) <= fuse.MAX_FUSED_OPS
    assert len(fused.op_nodes()) >= 1000 // fuse.MAX_FUSED_OPS
    # the kernels together compute what the chain computes
    env = {id(fused.inputs[0]): X}
    for n in fused.op_nodes():
        args = [env[id(v.node)] for v in n.inputs]
        env[id(n)] = interpret(n.attrs["body"].graph, args)[0] if n.op.startswith("_fused") else \
            get_op(n.op).run(args, n.attrs)[0]
    np.testing.assert_allclose(env[id(fused.outputs[0].node)], reference(1000)[0], rtol=1e-5, atol=1e-6)


def test_scalar_formulas_30k_deep_evaluate_print_and_compare():
    def deep(last):
        e = S.arg(0)
        for i in range(30_000):
            e = S.tanh(e) if i % 3 == 0 else e * 0.5 + 0.25
        return e + last
    a, b, c = deep(1.0), deep(1.0), deep(2.0)
    assert a == b and a is not b and hash(a) == hash(b)
    assert a != c
    text = repr(a)
    assert text.startswith("add(add(mul(add(mul(tanh(add(mul(") and text.endswith("0.5), 0.25), 1.0)")
    assert text.count("tanh(") == 10_000
    x = np.linspace(-1, 1, 5).astype(np.float32)
    want = x.copy()
    for i in range(30_000):
        want = np.tanh(want) if i % 3 == 0 else want * np.float32(0.5) + np.float32(0.25)
    np.testing.assert_allclose(S.evaluate(a, [x]), want + 1, rtol=1e-6)


# -- symbol files ----------------------------------------------------------------------------------
def chain_symbol_json(n_ops):
    ops = ("tanh", "_mul_scalar", "sigmoid", "_plus_scalar", "negative", "relu")
    nodes = [{"op": "null", "name": "data", "inputs": []}]
    for i in range(n_ops):
        op = ops[i % len(ops)]
        node = {"op": op, "name": f"n{i}", "inputs": [[i, 0, 0]]}
        if op.endswith("_scalar"):
            node["attrs"] = {"scalar": "0.9" if op == "_mul_scalar" else "0.1"}
        nodes.append(node)
    return {"nodes": nodes, "arg_nodes": [0], "node_row_ptr": list(range(n_ops + 2)),
            "heads": [[n_ops, 0, 0]], "attrs": {"mxnet_version": ["int", 10901]}}


def chain_symbol_reference(x, n_ops):
    y = x.astype(np.float64)
    steps = (np.tanh, lambda v: v * 0.9, lambda v: 1 / (1 + np.exp(-v)), lambda v: v + 0.1,
             np.negative, lambda v: np.maximum(v, 0))
    for i in range(n_ops):
        y = steps[i % len(steps)](y)
    return y


def test_a_symbol_file_with_a_10k_operator_chain_loads_runs_and_round_trips(tmp_path):
    n = 10_000
    path = tmp_path / "chain-symbol.json"
    path.write_text(json.dumps(chain_symbol_json(n)))
    x = nd.array(X)
    want = chain_symbol_reference(X, n)
    block = gluon.SymbolBlock.imports(str(path), ["data"])
    np.testing.assert_allclose(block(x).asnumpy(), want, rtol=1e-5, atol=1e-6)
    sym = mx.sym.load(str(path))
    np.testing.assert_allclose(sym.eval(data=x)[0].asnumpy(), want, rtol=1e-5, atol=1e-6)
    again = mx.sym.load_json(sym.tojson())
    assert len(json.loads(again.tojson())["nodes"]) == n + 1


# -- nesting that no parser should follow ---------------------------------------------------------
DEEP = 100_000


def fixture_doc():
    if not os.path.isdir(FIXTURES):
        pytest.skip(f"MXNet's fixture files are not beside this checkout ({os.path.normpath(FIXTURES)})")
    with open(os.path.join(FIXTURES, "mlp-symbol.json")) as f:
        return json.load(f)


def write(tmp_path, doc_or_text):
    path = tmp_path / "deep-symbol.json"
    path.write_text(doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text))
    return str(path)


def refused(path, *patterns):
    """Both loaders refuse `path` with a FormatError that names it and matches the patterns."""
    for load in (lambda: mx.sym.load(path), lambda: gluon.SymbolBlock.imports(path, ["data"])):
        with pytest.raises(FormatError) as info:
            load()
        message = str(info.value)
        assert path in message
        for p in patterns:
            assert p in message, message


def test_a_json_document_nested_100k_deep_is_refused_naming_the_file(tmp_path):
    text = json.dumps(fixture_doc())[:-1] + ', "extra": ' + "[" * DEEP + "]" * DEEP + "}"
    refused(write(tmp_path, text), "nests JSON arrays/objects deeper than the parser takes")


def test_an_output_tree_nested_100k_deep_is_refused_naming_the_file(tmp_path):
    doc = fixture_doc()
    doc["attrs"]["graphc_output_tree"] = ["str", '["list", [' * DEEP + "0" + "]]" * DEEP]
    path = write(tmp_path, doc)
    with pytest.raises(FormatError, match="graphc_output_tree") as info:
        gluon.SymbolBlock.imports(path, ["data"])
    assert path in str(info.value)


def test_an_output_tree_deeper_than_the_limit_is_refused_naming_the_limit(tmp_path):
    from graphc.formats.mxnet_json import MAX_OUTPUT_TREE_DEPTH
    doc = fixture_doc()
    depth = MAX_OUTPUT_TREE_DEPTH + 1
    doc["attrs"]["graphc_output_tree"] = ["str", '["list", [' * depth + "0" + "]]" * depth]
    path = write(tmp_path, doc)
    with pytest.raises(FormatError, match=f"more than {MAX_OUTPUT_TREE_DEPTH} levels"):
        gluon.SymbolBlock.imports(path, ["data"])
    doc["attrs"]["graphc_output_tree"] = ["str", '["list", [' * 3 + "0" + "]]" * 3]
    block = gluon.SymbolBlock.imports(write(tmp_path, doc), ["data"], os.path.join(FIXTURES, "mlp-0000.params"))
    out = block(nd.ones((2, 64)))
    assert isinstance(out, list) and isinstance(out[0], list) and isinstance(out[0][0], list)


@pytest.mark.parametrize("value", ["-" * DEEP + "1", "(" * DEEP + ")" * DEEP, "[" * 900 + "]" * 900])
def test_an_attribute_nested_deep_is_refused_naming_the_file_and_node(tmp_path, value):
    doc = fixture_doc()
    node = next(n for n in doc["nodes"] if n["op"] == "FullyConnected")
    node["attrs"]["num_hidden"] = value
    refused(write(tmp_path, doc), f"{node['name']!r}", "num_hidden")


def test_a_shape_hint_nested_deep_is_refused_naming_the_file_and_variable(tmp_path):
    doc = fixture_doc()
    var = next(n for n in doc["nodes"] if n["op"] == "null" and n["name"] != "data")
    var.setdefault("attrs", {})["__shape__"] = "-" * DEEP + "1"
    refused(write(tmp_path, doc), f"{var['name']!r}", "__shape__")
