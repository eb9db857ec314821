"""runtime/sort_kernels.py: sort, argsort and topk compile to a bitonic network whose results
equal the numpy references (ops/declarations/sorting.py) exactly: stable on ties, NaN last,
every ret_typ, ascending and descending, any axis or the flattened input, row lengths that are
and are not powers of two, float and integer keys."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.runtime.lower import HostStep, KernelStep

RNG = np.random.default_rng(14)


def _compiled(op, x, attrs):
    gb = GraphBuilder(op)
    v = gb.var("x", TensorType(x.shape, str(x.dtype)))
    out = getattr(gb.F, op)(v, **attrs)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    g = gb.build(outs)
    prog = compile_graph(g, cache=False)
    host = [s.node.op for s in prog.steps if isinstance(s, HostStep)]
    assert host == [], f"{op} {attrs} on {x.dtype}{x.shape}: host steps {host}"
    return prog, g


def _check(op, x, attrs):
    prog, g = _compiled(op, x, attrs)
    got, want = prog([x]), interpret(g, [x])
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want)):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{op} {attrs} output {k}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        np.testing.assert_array_equal(a, b, err_msg=f"{op} {attrs} output {k} on {x.dtype}{x.shape}")


def _data(shape, dtype, rng):
    """Few distinct values (many ties), with NaNs in float data."""
    x = rng.integers(-4, 5, shape).astype(dtype)
    if dtype.startswith("float") and x.size > 2:
        flat = x.reshape(-1)
        flat[rng.integers(0, x.size, max(1, x.size // 7))] = np.nan
        flat[rng.integers(0, x.size, max(1, x.size // 9))] = -0.0
    return x


CASES = []
for seed in range(12):
    r = np.random.default_rng(seed)
    ndim = int(r.integers(1, 4))
    shape = tuple(int(d) for d in r.integers(1, 9, ndim))
    dtype = ["float32", "float64", "int32", "int64"][seed % 4]
    axis = [None, -1, 0, ndim - 1][int(r.integers(0, 4))]
    CASES.append((seed, shape, dtype, axis))


@pytest.mark.parametrize("seed,shape,dtype,axis", CASES)
def test_random_shapes_axes_dtypes_with_ties_and_nans(seed, shape, dtype, axis):
    rng = np.random.default_rng(100 + seed)
    x = _data(shape, dtype, rng)
    n = x.size if axis is None else shape[axis]
    asc = seed % 3 == 0
    _check("sort", x, {"axis": axis, "is_ascend": not asc})
    _check("argsort", x, {"axis": axis, "is_ascend": asc, "dtype": "int32" if seed % 2 else "float32"})
    ret = ("value", "indices", "mask", "both")[(seed + seed // 4) % 4]
    k = int(rng.integers(0, n + 2))          # 0 and k > n mean the whole row
    _check("topk", x, {"axis": axis, "k": k, "ret_typ": ret, "is_ascend": asc})


@pytest.mark.parametrize("n", [1, 2, 3, 16, 17, 100])
def test_row_lengths_around_powers_of_two(n):
    x = RNG.standard_normal((3, n)).astype("float32")
    _check("sort", x, {"axis": 1})
    _check("topk", x, {"axis": 1, "k": 2, "ret_typ": "both"})


def test_extreme_integer_keys_and_infinities():
    i = np.array([[np.iinfo("int32").max, 0, np.iinfo("int32").min + 1, np.iinfo("int32").max, -1]], "int32")
    _check("sort", i, {"axis": 1, "is_ascend": False})
    _check("argsort", i, {"axis": 1, "dtype": "int64"})
    f = np.array([np.inf, np.nan, -np.inf, 0.0, np.nan, np.inf, -0.0], "float32")
    for asc in (True, False):
        _check("argsort", f, {"axis": 0, "is_ascend": asc})
        _check("topk", f, {"axis": 0, "k": 4, "ret_typ": "both", "is_ascend": asc})


def test_large_rows_split_across_threads():
    x = RNG.integers(-1000, 1000, (64, 1000)).astype("float32")
    prog, _ = _compiled("topk", x, {"axis": 1, "k": 5, "ret_typ": "both"})
    assert any(isinstance(s, KernelStep) and s.kernel.parallel_loop is not None for s in prog.steps)
    _check("topk", x, {"axis": 1, "k": 5, "ret_typ": "both"})
    _check("sort", x.T.copy(), {"axis": 0, "is_ascend": False})


@pytest.mark.parametrize("op,attrs", [("sort", {"axis": 1, "is_ascend": False}),
                                      ("topk", {"axis": 0, "k": 2, "ret_typ": "value"}),
                                      ("topk", {"axis": None, "k": 4, "ret_typ": "both", "is_ascend": True})])
def test_gradient_scatters_to_the_sorted_positions(op, attrs):
    """d sum(w * f(x)) / dx in a hybridized block: w's entries land where the values came from
    (the numpy reference's positions), so ties take the stable order's position."""
    from graphc import autograd, nd
    from graphc.gluon import nn

    class Block(nn.HybridBlock):
        def hybrid_forward(self, F, x):
            out = getattr(F, op)(x, **attrs)
            return out[0] if isinstance(out, (list, tuple)) else out

    x = RNG.integers(-2, 3, (4, 5)).astype("float32")
    net = Block()
    net.hybridize()
    xs = nd.array(x)
    xs.attach_grad()
    with autograd.record():
        y = net(xs)
        w = nd.array(RNG.standard_normal(y.shape).astype("float32"))
        (y * w).sum().backward()
    axis = attrs["axis"]
    flat, a = (x.reshape(-1), 0) if axis is None else (x, axis)
    order = np.argsort(flat if attrs.get("is_ascend", op == "sort") else -flat, axis=a, kind="stable")
    idx = np.take(order, np.arange(y.shape[a if axis is not None else 0]), axis=a)
    want = np.zeros_like(flat)
    np.put_along_axis(want, idx, w.asnumpy(), axis=a)
    np.testing.assert_array_equal(xs.grad.asnumpy(), want.reshape(x.shape))
    assert not [s for p in net._cached_op.last.train.values() for prog in p[:2] for s in prog.steps
                if isinstance(s, HostStep)], f"{op}: host steps in its training programs"
