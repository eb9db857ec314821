"""Profile rows name the fused node each kernel computes: pieces of a concatenation, the scratch
steps of a convolution and the kernels after a host step all find their node."""
import numpy as np

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType
from graphc.runtime.executor import build_program
from graphc.runtime.lower import KernelStep
from graphc.runtime.step_labels import kernel_owners


def _labels(graph):
    program = compile_graph(graph)
    profiled = build_program(graph, program.fused, program.plan, profile=True, cache=False)
    return program, profiled, list(profiled._profile_labels)


def test_concatenation_pieces_and_kernels_after_a_host_step_are_named_by_their_node():
    gb = GraphBuilder("labels")
    F = gb.F
    x = gb.var("x", TensorType((2, 3)))
    w = gb.var("w", TensorType((4, 3)), "param")
    v = gb.var("v", TensorType((4, 4)), "param")
    cat = F.Concat(x, F.tanh(w), dim=0, name="joined")        # copies into parts of one buffer
    # gammaln: an operator that still runs its numpy reference on the host
    h = F.gammaln(F.FullyConnected(cat, w, num_hidden=4, no_bias=True), name="lgamma")
    out = F.relu(F.FullyConnected(h, v, num_hidden=4, no_bias=True, name="after") * 2.0)
    program, profiled, labels = _labels(gb.build([out]))
    fused_names = {n.name for n in program.fused.op_nodes()}
    native = [(name, what) for kind, name, what in labels if kind == "native"]
    assert [name for kind, name, _ in labels if kind == "host"] == ["gammaln"]
    for name, what in native:
        assert name.split("[")[0] in fused_names, (name, what, fused_names)
    joined = [name for name, _ in native if name.startswith("joined")]
    assert len(joined) >= 2 and len(set(joined)) == len(joined)      # one row per piece, numbered
    # the kernels after the host step belong to the nodes after it (the GEMM fused with relu)
    ops = program.fused.op_nodes()
    later = {n.name for n in ops[[n.op for n in ops].index("gammaln") + 1:]}
    kinds = [kind for kind, _, _ in labels]
    after = [name.split("[")[0] for _, name, _ in labels[kinds.index("host") + 1:]]
    assert after and set(after) <= later, (after, later)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones((4, 3), np.float32)
    c = np.eye(4, dtype=np.float32)
    for got, want in zip(profiled([a, b, c]), program([a, b, c])):   # labels only: same results
        np.testing.assert_array_equal(got, want)


def test_convolution_scratch_kernels_belong_to_the_convolution():
    gb = GraphBuilder("conv")
    F = gb.F
    x = gb.var("x", TensorType((1, 2, 9, 9)))
    w = gb.var("w", TensorType((4, 2, 3, 3)), "param")
    y = F.Convolution(x, w, kernel=(3, 3), num_filter=4, pad=(1, 1), no_bias=True, name="conv")
    program, profiled, labels = _labels(gb.build([F.relu(y)]))
    steps = [s for s in profiled.steps if isinstance(s, KernelStep)]
    owners = kernel_owners(profiled.steps, profiled.plan)
    assert len(steps) >= 2 and all(id(s.kernel) in owners for s in steps), [s.kernel.name for s in steps]
    assert all(name.split("[")[0] == program.fused.op_nodes()[0].name for _, name, _ in labels)
