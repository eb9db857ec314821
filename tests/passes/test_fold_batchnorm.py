"""fold_batchnorm: an inference BatchNorm after a Convolution folds into it, and the folded graph
computes what the original computes (differential against the interpreter)."""
import numpy as np
import pytest

from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import verify
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from graphc.passes.fold_batchnorm import fold_batchnorm
from graphc.passes.simplify import eliminate_dead_code

RNG = np.random.default_rng(11)


def _conv_bn(bias=True, fix_gamma=False, use_global_stats=False, aux_outputs=True, const_weights=False,
             dtype="float32", nd=2):
    gb = GraphBuilder("convbn")
    F = gb.F
    spatial = (7, 6, 5)[:nd]
    x = gb.var("x", TensorType((2, 3) + spatial, dtype))
    wshape = (4, 3) + (3,) * nd
    w = gb.const(RNG.standard_normal(wshape).astype(dtype)) if const_weights else \
        gb.var("w", TensorType(wshape, dtype), "param")
    args = [x, w]
    if bias:
        args.append(gb.var("b", TensorType((4,), dtype), "param"))
    y = F.Convolution(*args, kernel=(3,) * nd, pad=(1,) * nd, num_filter=4, no_bias=not bias)
    if const_weights:               # an exported model after constant folding
        stats = [gb.const(RNG.standard_normal(4).astype(dtype)) for _ in range(3)] + \
            [gb.const(np.abs(RNG.standard_normal(4)).astype(dtype) + 0.1)]
    else:
        stats = [gb.var(n, TensorType((4,), dtype), "aux" if n.startswith("m") else "param")
                 for n in ("gamma", "beta", "moving_mean", "moving_var")]
    node = gb.emit("BatchNorm", [y.value] + [s.value for s in stats],
                   dict(eps=1e-3, fix_gamma=fix_gamma, use_global_stats=use_global_stats))
    outs = [gb.F.relu(gb.wrap(node.out(0)))]
    if aux_outputs:                 # what a hybridized block returns: the moving-stat write-back
        outs += [gb.wrap(node.out(3)), gb.wrap(node.out(4))]
    return gb.build(outs)


def _arrays(graph):
    out = []
    for n in graph.inputs:
        a = RNG.standard_normal(n.types[0].shape).astype(n.types[0].dtype)
        out.append(np.abs(a) + 0.1 if n.name == "moving_var" else a)
    return out


@pytest.mark.parametrize("fold_weights", [None, True, False])
@pytest.mark.parametrize("bias, fix_gamma, nd", [(True, False, 2), (False, False, 2), (True, True, 2),
                                                 (False, False, 1), (True, False, 3)])
def test_folded_graph_computes_what_the_original_computes(bias, fix_gamma, nd, fold_weights):
    g = _conv_bn(bias=bias, fix_gamma=fix_gamma, nd=nd)
    f = verify(eliminate_dead_code(fold_batchnorm(g, fold_weights=fold_weights)))
    assert "BatchNorm" not in [n.op for n in f.op_nodes()]
    arrays = _arrays(g)
    for got, ref in zip(interpret(f, arrays), interpret(g, arrays)):
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)


def test_parameter_weights_are_scaled_after_the_conv_and_constant_ones_fold_into_constants():
    g = verify(fold_batchnorm(_conv_bn()))
    convs = [n for n in g.op_nodes() if n.op == "Convolution"]
    assert len(convs) == 1 and convs[0].inputs[1].node.name == "w"    # weights untouched
    g0 = _conv_bn(const_weights=True, bias=False)
    gc = eliminate_dead_code(fold_batchnorm(g0))
    conv = next(n for n in gc.op_nodes() if n.op == "Convolution")
    assert conv.inputs[1].node.is_const and not conv.attrs["no_bias"]
    arrays = _arrays(gc)
    for got, ref in zip(interpret(gc, arrays), interpret(g0, arrays)):
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)


def test_training_with_batch_statistics_is_left_alone():
    g = _conv_bn()
    assert fold_batchnorm(g, training=True) is g
    g2 = _conv_bn(use_global_stats=True)
    assert "BatchNorm" not in [n.op for n in eliminate_dead_code(fold_batchnorm(g2, training=True)).op_nodes()]


def test_used_batch_statistics_or_a_shared_conv_block_the_fold():
    gb = GraphBuilder("shared")
    F = gb.F
    x = gb.var("x", TensorType((1, 3, 5, 5)))
    w = gb.var("w", TensorType((4, 3, 3, 3)), "param")
    y = F.Convolution(x, w, kernel=(3, 3), num_filter=4, no_bias=True)
    stats = [gb.var(n, TensorType((4,)), "param") for n in ("gamma", "beta", "mm", "mv")]
    bn = gb.emit("BatchNorm", [y.value] + [s.value for s in stats], {})
    g = gb.build([gb.wrap(bn.out(0)), y])              # the conv output is used twice
    assert fold_batchnorm(g) is g
    g2 = gb.build([gb.wrap(bn.out(0)), gb.wrap(bn.out(1))])   # batch mean is used
    assert fold_batchnorm(g2) is g2


def test_compiled_inference_folds_and_matches_the_interpreter():
    from graphc.compiler import compile_graph
    g = _conv_bn()
    prog = compile_graph(g, cache=False, check=True)
    ops = [n.op for n in prog.fused.op_nodes()]
    assert "BatchNorm" not in ops and "Convolution" not in ops and ops.count("_fused_conv") == 1
    arrays = _arrays(g)
    for got, ref in zip(prog(arrays), interpret(g, arrays)):
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)
