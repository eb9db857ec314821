"""A ResNet BasicBlock (conv-BN-relu-conv-BN, downsample, add, relu) compiles for inference with
its BatchNorms folded into convolution epilogues, and matches the interpreter."""
import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops.interpret import interpret
from graphc.runtime.executor import HostStep

from resnet_graphs import basic_block, random_inputs, resnet18_v1


@pytest.mark.parametrize("dtype, batch", [("float32", 1), ("float64", 2)])
def test_basic_block_folds_batchnorm_and_matches_the_interpreter(dtype, batch):
    g = basic_block(batch=batch, dtype=dtype)
    arrays = random_inputs(g)
    prog = compile_graph(g, cache=False, check=True)
    ops = [n.op for n in prog.fused.op_nodes()]
    assert "BatchNorm" not in ops and not any(isinstance(s, HostStep) for s in prog.steps)
    # stem, the block's two convs; the downsample conv feeds the same add as the second conv, and
    # one epilogue group takes one convolution
    assert ops.count("_fused_conv") == 3 and ops.count("Convolution") == 1
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(prog(arrays)[0], interpret(g, arrays)[0], rtol=tol, atol=tol)


def test_small_resnet18_runs_natively_and_matches_the_interpreter():
    g = resnet18_v1(image=32, classes=10, stages=2)
    arrays = random_inputs(g)
    prog = compile_graph(g, cache=False, check=True)
    assert not any(isinstance(s, HostStep) for s in prog.steps)
    np.testing.assert_allclose(prog(arrays)[0], interpret(g, arrays)[0], rtol=1e-4, atol=1e-4)
