"""The compiled `_fused_attention` kernel (runtime/attention_kernel.py) against numpy's float64
attention and against the unfused program, over odd shapes, transposes, broadcast masks,
row blocks that do not divide the queries, both dtypes and both thread paths."""
import numpy as np
import pytest

import graphc as mx
from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.fused_attention import attention_reference
from graphc.ops.types import TensorType
from graphc.runtime.attention_kernel import BLOCK_ELEMS, AttentionBlock, block_rows
from graphc.runtime.lower import HostStep


def build(n, tq, tk, d, dv, trans=(False, True, False), mask_shape=None, scale=1.0, dtype="float32"):
    b = GraphBuilder("attn")
    F = b.F
    qs = (n, d, tq) if trans[0] else (n, tq, d)
    ks = (n, tk, d) if trans[1] else (n, d, tk)
    vs = (n, dv, tk) if trans[2] else (n, tk, dv)
    shapes = [qs, ks, vs] + ([mask_shape] if mask_shape else [])
    vals = [b.var(f"x{i}", TensorType(s, dtype)) for i, s in enumerate(shapes)]
    s = F.batch_dot(vals[0], vals[1], transpose_a=trans[0], transpose_b=trans[1])
    if scale != 1.0:
        s = s * scale
    if mask_shape:
        s = F.broadcast_add(s, vals[3])
    g = b.build([F.batch_dot(F.softmax(s, axis=-1), vals[2], transpose_b=trans[2])])
    return g, shapes


def arrays_for(shapes, dtype, seed=0, masked=0.3, fill=-1e9):
    rng = np.random.default_rng(seed)
    out = [rng.standard_normal(s).astype(dtype) for s in shapes[:3]]
    if len(shapes) > 3:
        out.append(np.where(rng.random(shapes[3]) < masked, fill, rng.standard_normal(shapes[3])).astype(dtype))
    return out


def reference(arrays, trans, scale):
    a64 = [a.astype(np.float64) for a in arrays]
    mask = a64[3] if len(a64) > 3 else None
    return attention_reference(*a64[:3], mask, scale=scale, trans_q=trans[0], trans_k=trans[1], trans_v=trans[2])


def attention_blocks(prog):
    return [s for k in prog.kernels() for loop in k.body for s in getattr(loop, "body", [])
            if isinstance(s, AttentionBlock)]


CASES = [
    # n, tq, tk, d, dv, trans, mask shape
    (12, 128, 128, 64, 64, (False, True, False), (1, 128, 128)),     # W8a's heads
    (3, 17, 33, 5, 7, (False, True, False), (1, 17, 33)),
    (2, 200, 9, 3, 1, (False, True, False), (2, 200, 9)),            # many rows, few keys
    (1, 300, 257, 8, 5, (True, False, True), (300, 257)),            # row blocks not dividing 300
    (4, 1, 50, 16, 3, (False, False, False), (4, 1, 50)),            # one query
    (5, 9, 1, 2, 2, (True, True, False), None),                     # one key
    (2, 31, 40, 6, 11, (False, True, True), (2, 1, 40)),             # a per-sequence key mask
    (3, 64, 64, 32, 32, (False, True, False), (64,)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n, tq, tk, d, dv, trans, mask_shape", CASES)
def test_compiled_attention_matches_numpy(n, tq, tk, d, dv, trans, mask_shape, dtype):
    g, shapes = build(n, tq, tk, d, dv, trans, mask_shape, scale=0.3, dtype=dtype)
    prog = compile_graph(g)
    assert len(attention_blocks(prog)) == 1, "the pattern did not reach the attention kernel"
    assert not any(isinstance(s, HostStep) for s in prog.steps)
    arrays = arrays_for(shapes, dtype)
    got = prog(arrays)[0]
    tol = 2e-5 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(got, reference(arrays, trans, 0.3), rtol=tol, atol=tol)


def test_fused_equals_unfused_on_random_masks_and_lengths(monkeypatch):
    """Masks that cut each sequence at a random length (the padding of a batch) and random
    -1e9 / -inf holes: the fused program agrees with the one compiled without the pass."""
    rng = np.random.default_rng(7)
    for trial in range(4):
        n, tq, tk = int(rng.integers(1, 6)), int(rng.integers(1, 70)), int(rng.integers(1, 90))
        d, dv = int(rng.integers(1, 20)), int(rng.integers(1, 20))
        g, shapes = build(n, tq, tk, d, dv, mask_shape=(n, 1, tk), scale=0.125)
        arrays = arrays_for(shapes, "float32", seed=trial)
        lengths = rng.integers(1, tk + 1, size=n)
        arrays[3] = np.where(np.arange(tk)[None, None, :] < lengths[:, None, None], 0.0,
                             -np.inf if trial % 2 else -1e9).astype("float32")
        fused = compile_graph(g)
        assert attention_blocks(fused)
        monkeypatch.setenv("GRAPHC_FUSE_ATTENTION", "0")
        plain = compile_graph(g)
        monkeypatch.delenv("GRAPHC_FUSE_ATTENTION")
        assert not attention_blocks(plain)
        a, b = fused(arrays)[0], plain(arrays)[0]
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(a, reference(arrays, (False, True, False), 0.125), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kept_probabilities_are_the_softmax(dtype):
    """A training forward's fused node also writes softmax(S) (its second output), normalised,
    for the backward; the result is computed from those same rows."""
    g, shapes = build(3, 45, 70, 8, 5, (False, True, False), (1, 45, 70), scale=0.4, dtype=dtype)
    p = g.outputs[0].node.inputs[0]
    g = g.with_outputs([g.outputs[0], p])
    prog = compile_graph(g)
    (blk,) = attention_blocks(prog)
    assert blk.probs is not None
    arrays = arrays_for(shapes, dtype)
    out, probs = prog(arrays)
    a64 = [a.astype(np.float64) for a in arrays]
    s = np.matmul(a64[0], a64[1].transpose(0, 2, 1)) * 0.4 + a64[3]
    e = np.exp(s - s.max(-1, keepdims=True))
    want_p = e / e.sum(-1, keepdims=True)
    tol = 2e-5 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(probs, want_p, rtol=tol, atol=tol)
    np.testing.assert_allclose(out, want_p @ a64[2], rtol=tol, atol=tol)
    # masked (-1e9) entries are exactly 0, never subnormal (which the backward would crawl through)
    assert np.all(probs[np.broadcast_to(arrays[3] < -1e8, probs.shape)] == 0)
    assert np.all((probs == 0) | (np.abs(probs) >= np.finfo(dtype).tiny))


def test_a_row_masked_entirely_with_minus_infinity_is_nan_as_unfused(monkeypatch):
    g, shapes = build(1, 4, 6, 3, 2, mask_shape=(1, 4, 6))
    arrays = arrays_for(shapes, "float32", masked=0.0)
    arrays[3][0, 2, :] = -np.inf
    got = compile_graph(g)(arrays)[0]
    monkeypatch.setenv("GRAPHC_FUSE_ATTENTION", "0")
    plain = compile_graph(g)(arrays)[0]
    assert np.all(np.isnan(got[0, 2])) and np.all(np.isnan(plain[0, 2]))
    np.testing.assert_allclose(np.delete(got, 2, axis=1), np.delete(plain, 2, axis=1), rtol=2e-5, atol=2e-6)


def test_one_tensor_as_queries_keys_and_values():
    """softmax(x xᵀ) x: the three operands (read-only) bind the same buffer."""
    b = GraphBuilder("self")
    F = b.F
    x = b.var("x", TensorType((3, 10, 4), "float32"))
    g = b.build([F.batch_dot(F.softmax(F.batch_dot(x, x, transpose_b=True) * 0.5, axis=-1), x)])
    prog = compile_graph(g)
    assert attention_blocks(prog)
    xs = np.random.default_rng(1).standard_normal((3, 10, 4)).astype("float32")
    np.testing.assert_allclose(prog([xs])[0], reference([xs, xs, xs], (False, True, False), 0.5), rtol=2e-5, atol=2e-6)


def test_large_logits_stay_stable():
    g, shapes = build(2, 20, 30, 4, 4, mask_shape=(1, 20, 30))
    arrays = arrays_for(shapes, "float32")
    arrays[0] *= 40.0          # scores in the hundreds: exp overflows without the row max
    got = compile_graph(g)(arrays)[0]
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, reference(arrays, (False, True, False), 1.0), rtol=1e-4, atol=1e-4)


def test_block_rows_fit_the_stack_buffer_and_split_for_threads():
    assert block_rows(12, 128, 128) * 128 <= BLOCK_ELEMS
    assert block_rows(1, 128, 128) == 16              # one matrix: 8 tasks of 16 rows
    assert block_rows(128, 64, 64) == 64               # many matrices: whole ones
    assert block_rows(1, 5, 16384) == 1
    for n, tq, tk in [(1, 300, 257), (3, 17, 33), (1, 1, 1)]:
        r = block_rows(n, tq, tk)
        assert 1 <= r <= tq and (r * tk <= BLOCK_ELEMS or r == 1)


def test_one_thread_and_two_agree(monkeypatch):
    """Enough work for the pool to split the row-block tasks, and the same kernel run in one
    call: both equal numpy (every task writes only its own rows)."""
    g, shapes = build(8, 96, 96, 32, 32, mask_shape=(1, 96, 96))
    arrays = arrays_for(shapes, "float32")
    want = reference(arrays, (False, True, False), 1.0)
    for threads in ("1", "2"):
        monkeypatch.setenv("GRAPHC_NUM_THREADS", threads)
        prog = compile_graph(g)
        assert prog.nthreads == int(threads)
        (blk,) = attention_blocks(prog)
        loop = next(k.body[0] for k in prog.kernels() if attention_blocks_in(k))
        assert loop.parallel and loop.extent == 8 * -(-96 // blk.rows)
        for _ in range(3):      # unscaled scores of 32 products: float32 rounding near 1e-6
            np.testing.assert_allclose(prog(arrays)[0], want, rtol=1e-4, atol=1e-5)


def attention_blocks_in(kernel):
    return any(isinstance(s, AttentionBlock) for loop in kernel.body for s in getattr(loop, "body", []))


def _self_attention_block(heads):
    class SelfAttention(mx.gluon.HybridBlock):
        """The bench's Transformer attention (bench/systems/_transformer.py), smaller."""

        def __init__(self, units, **kw):
            super().__init__(**kw)
            self._scale = 1.0 / np.sqrt(units // heads)
            with self.name_scope():
                self.qkv = mx.gluon.nn.Dense(3 * units, flatten=False, in_units=units)

        def hybrid_forward(self, F, x, mask):
            def split(t):
                t = F.transpose(F.reshape(t, shape=(0, 0, heads, -1)), axes=(0, 2, 1, 3))
                return F.reshape(t, shape=(-3, 0, 0))
            q, k, v = F.split(self.qkv(x), num_outputs=3, axis=-1)
            s = F.broadcast_add(F.batch_dot(split(q) * self._scale, split(k), transpose_b=True), mask)
            o = F.reshape(F.batch_dot(F.softmax(s, axis=-1), split(v)), shape=(-4, -1, heads, 0, 0))
            return F.reshape(F.transpose(o, axes=(0, 2, 1, 3)), shape=(0, 0, -3))
    return SelfAttention


def test_gluon_self_attention_inference_fuses_and_training_gradients_match_finite_differences(monkeypatch):
    """Inference of a hybridized Gluon block goes through the kernel, and so does a training
    forward (keeping the probabilities for the backward), whose gradients match finite
    differences."""
    import graphc.runtime.lower as lower
    lowered = []

    def spy(node, *args):
        steps = real(node, *args)
        if steps is not None:
            lowered.append(node.name)
        return steps
    real = lower.lower_attention
    monkeypatch.setattr(lower, "_FAMILY_LOWERINGS",
                        tuple(spy if f is real else f for f in lower._FAMILY_LOWERINGS))
    heads, units, batch, seq = 2, 6, 2, 5
    net = _self_attention_block(heads)(units)
    net.initialize(mx.init.Normal(0.5))
    net.hybridize()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((batch, seq, units))
    mask = np.triu(np.full((1, seq, seq), -1e9), 1)
    w, bias = (p.data().asnumpy().astype(np.float64) for p in net.collect_params().values())

    def numpy_forward(x_, w_):
        qkv = x_ @ w_.T + bias
        q, k, v = np.split(qkv, 3, axis=-1)
        def sp(t):
            return t.reshape(batch, seq, heads, -1).transpose(0, 2, 1, 3).reshape(batch * heads, seq, -1)
        o = attention_reference(sp(q), sp(k), sp(v), mask, scale=1.0 / np.sqrt(units // heads))
        return o.reshape(batch, heads, seq, -1).transpose(0, 2, 1, 3).reshape(batch, seq, units)
    got = net(mx.nd.array(x, dtype="float32"), mx.nd.array(mask, dtype="float32")).asnumpy()
    np.testing.assert_allclose(got, numpy_forward(x, w), rtol=1e-4, atol=1e-5)
    assert len(lowered) == 1, "the hybridized block's attention was not fused"
    xf = mx.nd.array(x, dtype="float32")
    with mx.autograd.record():
        y = net(xf, mx.nd.array(mask, dtype="float32"))
        loss = (y * y).sum()
    loss.backward()
    grad = net.collect_params()[list(net.collect_params().keys())[0]].grad().asnumpy()
    eps, fd = 1e-6, np.zeros_like(w)
    for idx in [(0, 0), (3, 2), (7, 5), (12, 1), (17, 4)]:
        wp, wm = w.copy(), w.copy()
        wp[idx] += eps
        wm[idx] -= eps
        fd[idx] = ((numpy_forward(x, wp) ** 2).sum() - (numpy_forward(x, wm) ** 2).sum()) / (2 * eps)
        np.testing.assert_allclose(grad[idx], fd[idx], rtol=2e-3, atol=2e-4)
    assert len(lowered) == 2, "the training forward's attention was not fused"
