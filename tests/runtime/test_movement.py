"""Movement operators (slices, joins, splits, transposes) run as native copy kernels: compiled
results equal the numpy references, no host step remains, and equal pieces share a kernel."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from graphc.compiler import compile_graph
from graphc.ops import layout as L
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.registry import Movement, get_op
from graphc.ops.types import TensorType
from graphc.runtime.lower import HostStep


def build(op, shapes, dtype="float32", through_exp=True, **attrs):
    b = GraphBuilder(op)
    xs = [b.var(f"x{i}", TensorType(s, dtype), "input") for i, s in enumerate(shapes)]
    if through_exp and dtype.startswith("float"):
        xs = [b.F.exp(x) for x in xs]          # the op then reads arena values, not inputs
    out = getattr(b.F, op)(*xs, **attrs)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    return b.build([o.value for o in outs])


def run_both(graph, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [(rng.normal(size=n.types[0].shape) * 3).astype(n.types[0].dtype) for n in graph.inputs]
    prog = compile_graph(graph)
    return prog, prog(arrays), interpret(graph, arrays)


CASES = [
    ("slice", [(4, 5, 6)], dict(begin=(1, None, 0), end=(3, None, 6), step=(1, None, 2))),
    ("slice", [(4, 5, 6)], dict(begin=(3, 4), end=(0, None), step=(-1, -2))),
    ("slice", [(7,)], dict(begin=(2,), end=(2,), step=())),                    # empty
    ("slice_axis", [(4, 5, 6)], dict(axis=1, begin=1, end=4)),
    ("slice_axis", [(4, 5, 6)], dict(axis=-1, begin=-3, end=None)),
    ("Concat", [(2, 3), (2, 5), (2, 1)], dict(dim=1, num_args=3)),
    ("Concat", [(2, 3, 4), (1, 3, 4)], dict(dim=0, num_args=2)),
    ("stack", [(2, 3), (2, 3), (2, 3)], dict(axis=1, num_args=3)),
    ("stack", [(5,), (5,)], dict(axis=-1, num_args=2)),
    ("split", [(4, 6)], dict(num_outputs=3, axis=1)),
    ("split", [(3, 4, 2)], dict(num_outputs=3, axis=0, squeeze_axis=True)),
    ("transpose", [(2, 3, 4)], dict(axes=(2, 0, 1))),
    ("transpose", [(300, 500)], {}),
    ("SwapAxis", [(2, 3, 4)], dict(dim1=0, dim2=2)),
    ("_slice_assign", [(4, 5), (2, 5)], dict(begin=(1,), end=(3,), step=())),
    ("_slice_assign", [(6, 5), (2, 3)], dict(begin=(5, 0), end=(1, 5), step=(-3, 2))),
    ("_slice_assign_scalar", [(4, 5)], dict(scalar=3.0, begin=(1, 0), end=(3, 5), step=(1, 2))),
    # replicating copies (graphc/ops/copy_pieces.py): stride-0 and negative source strides
    ("broadcast_like", [(3, 1, 2), (5, 4, 7)], dict(lhs_axes=(1,), rhs_axes=(1,))),
    ("tile", [(2, 3)], dict(reps=(2, 1, 3))),
    ("repeat", [(2, 3, 2)], dict(repeats=3, axis=1)),
    ("repeat", [(2, 3)], dict(repeats=2)),
    ("slice_like", [(4, 5, 3), (2, 3, 3)], dict(axes=(0, 1))),
    ("reverse", [(3, 4, 2)], dict(axis=(0, 2))),
    ("Pad", [(1, 2, 3, 4)], dict(mode="constant", pad_width=(0, 0, 1, 0, 2, 1, 0, 3), constant_value=-2.0)),
    ("Pad", [(1, 2, 3, 4)], dict(mode="edge", pad_width=(0, 0, 0, 0, 2, 2, 3, 1))),
    ("Pad", [(1, 2, 3, 4, 5)], dict(mode="reflect", pad_width=(0, 0, 0, 0, 2, 1, 0, 3, 4, 2))),
    ("_pad_grad", [(1, 2, 6, 7)], dict(mode="constant", pad_width=(0, 0, 0, 0, 1, 2, 2, 1))),
    ("UpSampling", [(1, 2, 2, 3), (1, 1, 4, 6)], dict(scale=2, sample_type="nearest", num_args=2)),
    # window copies (runtime/test_window_copies.py checks them against MXNet's semantics too)
    ("Crop", [(2, 3, 7, 6)], dict(num_args=1, h_w=(4, 3), offset=(2, 1))),
    ("Crop", [(1, 2, 7, 8)], dict(num_args=1, h_w=(3, 4), center_crop=True)),
    ("depth_to_space", [(2, 8, 3, 2)], dict(block_size=2)),
    ("space_to_depth", [(2, 3, 4, 6)], dict(block_size=2)),
]


@pytest.mark.parametrize("op,shapes,attrs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("through_exp", [True, False])
def test_movement_ops_compile_to_copies_that_match_the_reference(op, shapes, attrs, through_exp):
    prog, got, want = run_both(build(op, shapes, through_exp=through_exp, **attrs))
    assert not any(isinstance(s, HostStep) for s in prog.steps)
    for a, w in zip(got, want):
        # (the native exp may differ from numpy's by an ulp; the copies themselves are exact)
        np.testing.assert_allclose(a, w, rtol=2e-7 if through_exp else 0)


@pytest.mark.parametrize("dtype", ["float64", "int32", "int64"])
def test_movement_of_other_dtypes(dtype):
    prog, got, want = run_both(build("Concat", [(3, 2), (3, 4)], dtype=dtype, through_exp=False, dim=1, num_args=2))
    assert not any(isinstance(s, HostStep) for s in prog.steps)
    np.testing.assert_array_equal(got[0], want[0])


def test_equal_pieces_share_one_kernel():
    """An unrolled RNN splits its input projection into many equal blocks: the offsets live in
    the bindings, so one compiled copy serves them all."""
    prog, got, want = run_both(build("split", [(35, 20, 800)], through_exp=False, num_outputs=35, axis=0,
                                     squeeze_axis=True))
    copies = prog.kernels()
    assert len(copies) == 35 and len({k.name for k in copies}) == 1
    for a, w in zip(got, want):
        np.testing.assert_array_equal(a, w)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data())
def test_random_slices_and_transposes(shape, data):
    shape = tuple(shape)
    begin, end, step = [], [], []
    for d in shape:
        s = data.draw(st.sampled_from([1, 2, -1, -2]))
        b = data.draw(st.integers(0, d - 1))
        e = data.draw(st.one_of(st.none(), st.integers(-1 if s < 0 else 0, d)))
        begin.append(b)
        end.append(None if e == -1 else e)
        step.append(s)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    b = GraphBuilder("r")
    x = b.var("x", TensorType(shape, "float32"), "input")
    y = b.F.slice(b.F.exp(x), begin=tuple(begin), end=tuple(end), step=tuple(step))
    g = b.build([b.F.transpose(y, axes=perm) if all(y.shape) else y])
    prog, got, want = run_both(g)
    np.testing.assert_allclose(got[0], want[0], rtol=2e-7)


def test_pieces_describe_the_reference_for_every_movement_op():
    """The declarations' piece lists, run by numpy (layout.run_pieces), equal the references."""
    seen = set()
    for op, shapes, attrs in CASES:
        g = build(op, shapes, through_exp=False, **attrs)
        node = g.outputs[0].node
        seen.add(node.op)
        rng = np.random.default_rng(1)
        arrays = [rng.normal(size=s).astype(np.float32) for s in shapes]
        lowering = get_op(node.op).lowering
        pieces = lowering.pieces([v.type for v in node.inputs], list(node.types), node.attrs)
        want = get_op(node.op).run(arrays, node.attrs)
        want = want if isinstance(want, (list, tuple)) else [want]
        for a, w in zip(L.run_pieces(pieces, arrays, node.types), want):
            np.testing.assert_array_equal(a, np.asarray(w))
    from graphc.ops import all_ops
    movement_ops = {n for n, o in all_ops().items() if isinstance(o.lowering, Movement)}
    assert movement_ops - {"_rnn_param_concat"} <= seen, movement_ops - seen


def test_probe_refuses_indexing_that_copies():
    p = L.probe((4, 6))
    assert L.locate(p[1:3, ::2]) == (6, (6, 2))
    with pytest.raises(ValueError, match="copied"):
        L.locate(p[[0, 2]])
