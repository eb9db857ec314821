"""Dropout compiled (runtime/dropout_kernel.py) and the generator it draws from (ops/scalar.py's
hash32): the numpy reference of the generator equals the LLVM rendering bit for bit, its words
pass uniformity and independence checks, and a compiled training program draws a fresh
Bernoulli(1 - p) mask per call from the caller's rng, returns out == x * mask with that mask,
and has no host step."""
import os
import shutil
import subprocess

import numpy as np
import pytest

from graphc.compiler import compile_graph
from graphc.ops import scalar as S
from graphc.ops.builder import GraphBuilder
from graphc.ops.graph import Value
from graphc.ops.types import TensorType
from graphc.runtime.dropout_kernel import dropout_kernel, mask_formula, node_salt
from graphc.runtime.lower import HostStep
from graphc.runtime.render_cuda import render_cuda_module

NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if os.path.exists("/usr/local/bin/nvcc") else None)


def _lowbias32(x: int) -> int:
    """The finaliser in plain Python integers: an implementation independent of numpy's."""
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_hash32_numpy_matches_the_integer_definition():
    xs = np.concatenate([np.arange(-5, 300, dtype=np.int64),
                         np.random.default_rng(1).integers(-2 ** 62, 2 ** 62, 2000)])
    got = S.evaluate(S.call("hash32", S.arg(0, "int64")), [xs])
    assert got.dtype == np.int64
    assert got.tolist() == [_lowbias32(int(x)) for x in xs]


def test_hash32_takes_only_int64_counters():
    with pytest.raises(TypeError, match="hash32"):
        S.call("hash32", S.arg(0, "float32"))


def _words(n, s0, s1, salt=0):
    c = np.arange(n, dtype=np.int64)
    inner = S.hash32_numpy(c + s0)
    return S.hash32_numpy(inner + s1 + salt)


def test_words_are_uniform():
    """Chi-square over 256 bins of 2**20 consecutive counters' words (the top 8 bits), and each
    of the 32 bits set half the time: a weak finaliser fails both on consecutive counters."""
    u = _words(1 << 20, 12345, 67890)
    counts = np.bincount(u >> 24, minlength=256)
    expected = len(u) / 256
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 255 + 6 * np.sqrt(2 * 255), chi2          # 6 sigma of chi2(255)
    bits = ((u[:, None] >> np.arange(32)) & 1).mean(axis=0)
    assert np.all(np.abs(bits - 0.5) < 6 * 0.5 / np.sqrt(len(u))), bits


def test_neighbouring_counters_and_seeds_are_independent():
    """Serial pairs (u[i], u[i+1]) fill a 16x16 grid evenly, and two seeds differing in one bit
    give uncorrelated streams (a mask must not repeat between calls or between layers)."""
    n = 1 << 20
    u = _words(n, 7, 99) >> 28
    grid = np.bincount(u[:-1] * 16 + u[1:], minlength=256)
    expected = (n - 1) / 256
    chi2 = ((grid - expected) ** 2 / expected).sum()
    assert chi2 < 255 + 6 * np.sqrt(2 * 255), chi2
    a, b = _words(n, 7, 99), _words(n, 7, 98)
    corr = np.corrcoef(a.astype(float), b.astype(float))[0, 1]
    assert abs(corr) < 6 / np.sqrt(n), corr
    agree = ((a >= 2 ** 31) == (b >= 2 ** 31)).mean()
    assert abs(agree - 0.5) < 6 * 0.5 / np.sqrt(n), agree
    c = _words(n, 7, 99, salt=node_salt("dropout1"))
    assert abs(np.corrcoef(a.astype(float), c.astype(float))[0, 1]) < 6 / np.sqrt(n)


def _dropout_program(shape, p, axes=(), dtype="float32", twice=False):
    gb = GraphBuilder("drop")
    x = gb.var("x", TensorType(shape, dtype))
    outs = []
    for _ in range(2 if twice else 1):
        node = gb.F.Dropout(x, p=p, axes=axes).value.node
        outs += [gb.wrap(Value(node, 0)), gb.wrap(Value(node, 1))]      # the hidden mask too
    prog = compile_graph(gb.build(outs), training=True, cache=False)
    assert [s.node.op for s in prog.steps if isinstance(s, HostStep)] == [], "Dropout ran on the host"
    return prog


def _reference_mask(prog, shape, p, axes, dtype):
    """The mask recomputed from the seed the program drew, by the numpy evaluation of the same
    formula: equal bit for bit to the LLVM rendering's."""
    seed = prog._frame.seed
    salt = node_salt(next(n for n in prog.fused.nodes if n.op == "Dropout").name)
    mshape = tuple(1 if d in axes else n for d, n in enumerate(shape))
    counter = np.arange(int(np.prod(mshape)), dtype=np.int64).reshape(mshape)
    expr = mask_formula(S.arg(0, "int64"), S.const(int(seed[0]), "int64"), S.const(int(seed[1]), "int64"),
                        p, salt, dtype)
    return np.broadcast_to(S.evaluate(expr, [counter]), shape)


@pytest.mark.parametrize("shape,p,axes,dtype", [((300, 700), 0.3, (), "float32"),
                                                ((4, 50, 60), 0.5, (1,), "float32"),
                                                ((1000,), 0.9, (), "float64")])
def test_compiled_mask_equals_the_numpy_evaluation_and_out_is_x_times_mask(shape, p, axes, dtype):
    prog = _dropout_program(shape, p, axes, dtype)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    out, mask = prog([x], rng=np.random.default_rng(3))
    np.testing.assert_array_equal(mask, _reference_mask(prog, shape, p, axes, dtype))
    np.testing.assert_array_equal(out, x * mask)
    scale = np.dtype(dtype).type(1) / np.dtype(dtype).type(1 - p)
    assert set(np.unique(mask).tolist()) <= {0.0, float(scale)}
    kept = (mask != 0).mean()
    n = mask.size / np.prod([shape[a] for a in axes] or [1])
    assert abs(kept - (1 - p)) < 6 * np.sqrt(p * (1 - p) / n), kept
    if axes:
        assert np.all(mask == mask[:, :1, :]), "the mask varies along a broadcast axis"


def test_calls_draw_fresh_masks_and_the_rng_reproduces_them():
    prog = _dropout_program((64, 64), 0.5)
    x = np.ones((64, 64), "float32")
    rng = np.random.default_rng(11)
    m1 = prog([x], rng=rng)[1].copy()
    m2 = prog([x], rng=rng)[1].copy()
    assert (m1 != m2).mean() > 0.4
    again = np.random.default_rng(11)
    np.testing.assert_array_equal(prog([x], rng=again)[1], m1)
    np.testing.assert_array_equal(prog([x], rng=again)[1], m2)


def test_two_dropouts_of_one_input_draw_different_masks():
    prog = _dropout_program((128, 64), 0.5, twice=True)
    _, m1, _, m2 = prog([np.ones((128, 64), "float32")], rng=np.random.default_rng(0))
    assert 0.4 < (m1 != m2).mean() < 0.6


def test_gluon_training_step_uses_the_mask_in_backward_and_mx_random_seed_reproduces():
    import graphc as mx
    from graphc import autograd, nd
    from graphc.gluon import nn

    net = nn.HybridSequential()
    net.add(nn.Dropout(0.4))
    net.hybridize()
    x = nd.array(np.random.default_rng(2).standard_normal((32, 50)).astype("float32"))
    x.attach_grad()

    def step():
        with autograd.record():
            y = net(x)
        y.backward(nd.ones_like(y) * 3.0)
        return y.asnumpy(), x.grad.asnumpy()

    mx.random.seed(5)
    y1, g1 = step()
    y2, _ = step()
    mask = np.where(y1 != 0, np.float32(1) / np.float32(0.6), np.float32(0))
    np.testing.assert_array_equal(y1, x.asnumpy() * mask)
    np.testing.assert_array_equal(g1, 3.0 * mask)        # the backward read the forward's mask
    assert (y1 != y2).any()
    mx.random.seed(5)
    np.testing.assert_array_equal(step()[0], y1)
    for fw, bw, *_ in net._cached_op.last.train.values():
        assert not [s for p in (fw, bw) for s in p.steps if isinstance(s, HostStep)]


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
def test_dropout_kernel_compiles_with_nvcc(tmp_path):
    ks = [dropout_kernel("k_drop", (64, 33), (), 0.25, 7, "float32"),
          dropout_kernel("k_drop_axes", (4, 8, 5), (1,), 0.5, 9, "float64")]
    src = tmp_path / "drop.cu"
    src.write_text(render_cuda_module(ks))
    assert "gc_hash32(" in src.read_text()
    out = tmp_path / "drop.ptx"
    r = subprocess.run([NVCC, "-ptx", "-arch=sm_90", str(src), "-o", str(out)], capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.read_text().count(".entry") == 2
