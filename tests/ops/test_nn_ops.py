"""Behaviour of the convolution, pooling and normalisation operators beyond the table in
op_cases.py: BatchNorm's moving statistics and blocked outputs, SoftmaxOutput's loss gradient,
convolution adjointness, second derivatives, and the errors for what graphc refuses."""
import numpy as np
import pytest

from graphc.ops import OpAttributeError, ShapeError
from graphc.ops.builder import GraphBuilder
from graphc.ops.interpret import interpret
from graphc.ops.types import TensorType
from gradcheck import analytic_grads, build, reverse_mode, run_forward
import naive_nn as NN

rng = np.random.default_rng(5)


def _bn_inputs(c=3, shape=(4, 3, 2)):
    return [rng.standard_normal(shape), rng.uniform(0.5, 1.5, c), rng.standard_normal(c),
            rng.standard_normal(c), rng.uniform(0.5, 1.5, c)]


# -- BatchNorm -------------------------------------------------------------------------------------
def _all_outputs(op, arrays, attrs, training):
    """Every output of one node, hidden ones included."""
    b, _, _ = build(op, arrays, attrs)
    node = b.nodes[-1]
    return interpret(b.build(node.outputs), arrays, training=training)


@pytest.mark.parametrize("fix_gamma", [True, False])
def test_batchnorm_training_moves_the_statistics_with_the_biased_batch_variance(fix_gamma):
    x, g, b, mm, mv = _bn_inputs()
    attrs = {"fix_gamma": fix_gamma, "momentum": 0.7, "eps": 1e-3}
    out, mean, invstd, new_mm, new_mv = _all_outputs("BatchNorm", [x, g, b, mm, mv], attrs, training=True)
    bm, bv = x.mean(axis=(0, 2)), x.var(axis=(0, 2))   # np.var: biased (ddof=0), as MXNet 1.9 uses
    np.testing.assert_allclose(new_mm, 0.7 * mm + 0.3 * bm, rtol=1e-12)
    np.testing.assert_allclose(new_mv, 0.7 * mv + 0.3 * bv, rtol=1e-12)
    np.testing.assert_allclose(mean, bm, rtol=1e-12)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(bv + 1e-3), rtol=1e-12)
    want = NN.batch_norm(x, g, b, mm, mv, eps=1e-3, fix_gamma=fix_gamma, training=True)[0]
    np.testing.assert_allclose(out, want, rtol=1e-10)


def test_batchnorm_inference_and_global_stats_leave_the_statistics_unchanged():
    x, g, b, mm, mv = _bn_inputs()
    for attrs, training in (({}, False), ({"use_global_stats": True}, True)):
        out, mean, invstd, new_mm, new_mv = _all_outputs("BatchNorm", [x, g, b, mm, mv], attrs, training)
        np.testing.assert_array_equal(new_mm, mm)
        np.testing.assert_array_equal(new_mv, mv)
        np.testing.assert_allclose(out, NN.batch_norm(x, g, b, mm, mv, training=False)[0], rtol=1e-10)


def test_batchnorm_declares_its_auxiliary_state():
    from graphc.ops import get_op
    op = get_op("BatchNorm")
    assert op.aux_inputs == (3, 4) and op.mutates == ((3, 3), (4, 4)) and op.uses_training
    assert op.n_visible(op.parse({})) == 1 and op.n_visible(op.parse({"output_mean_var": True})) == 3


@pytest.mark.parametrize("training", [False, True])
def test_batchnorm_fix_gamma_gives_gamma_a_zero_gradient(training):
    arrays = _bn_inputs()
    heads = [rng.standard_normal(arrays[0].shape)]
    dx, dgamma = analytic_grads("BatchNorm", arrays, {"fix_gamma": True}, heads, (0, 1), training=training)
    np.testing.assert_array_equal(dgamma, 0)
    assert np.abs(dx).max() > 0


def test_batchnorm_mean_and_invstd_outputs_carry_no_gradient():
    arrays = _bn_inputs()
    attrs = {"fix_gamma": False, "output_mean_var": True}
    h0 = rng.standard_normal(arrays[0].shape)
    with_stats = analytic_grads("BatchNorm", arrays, attrs, [h0, np.ones(3), np.ones(3)], (0, 1, 2), training=True)
    without = analytic_grads("BatchNorm", arrays, attrs, [h0, np.zeros(3), np.zeros(3)], (0, 1, 2), training=True)
    for a, b in zip(with_stats, without):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_batchnorm_eager_training_writes_the_moving_statistics_back():
    from graphc import nd, autograd
    x, g, b, mm, mv = [nd.array(a.astype(np.float32)) for a in _bn_inputs()]
    mm0 = mm.asnumpy().copy()
    nd.BatchNorm(x, g, b, mm, mv)                    # inference: untouched
    np.testing.assert_array_equal(mm.asnumpy(), mm0)
    with autograd.train_mode():
        nd.BatchNorm(x, g, b, mm, mv, momentum=0.5)
    want = 0.5 * mm0 + 0.5 * x.asnumpy().mean(axis=(0, 2))
    np.testing.assert_allclose(mm.asnumpy(), want, rtol=1e-5)


# -- SoftmaxOutput ---------------------------------------------------------------------------------
def _softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


@pytest.mark.parametrize("attrs, scale", [({}, 1.0), ({"grad_scale": 3.0}, 3.0),
                                          ({"normalization": "batch"}, 1 / 4)])
def test_softmax_output_gradient_is_softmax_minus_one_hot_whatever_the_head(attrs, scale):
    x, y = rng.standard_normal((4, 3)), np.array([0.0, 2.0, 1.0, 2.0])
    (g,) = analytic_grads("SoftmaxOutput", [x, y], attrs, [np.full((4, 3), 7.0)], (0,))
    np.testing.assert_allclose(g, (_softmax(x, 1) - np.eye(3)[[0, 2, 1, 2]]) * scale, rtol=1e-12)


def test_softmax_output_ignores_labels_and_normalizes_by_the_valid_count():
    x, y = rng.standard_normal((4, 3)), np.array([0.0, -1.0, 1.0, -1.0])
    attrs = {"use_ignore": True, "ignore_label": -1, "normalization": "valid"}
    (g,) = analytic_grads("SoftmaxOutput", [x, y], attrs, [np.ones((4, 3))], (0,))
    want = _softmax(x, 1) - np.eye(3)[[0, 0, 1, 0]]
    want[[1, 3]] = 0
    np.testing.assert_allclose(g, want / 2, rtol=1e-12)


def test_softmax_output_multi_output_takes_one_label_per_position():
    x, y = rng.standard_normal((2, 3, 2)), np.array([[0.0, 2.0], [1.0, 1.0]])
    (g,) = analytic_grads("SoftmaxOutput", [x, y], {"multi_output": True}, [np.ones((2, 3, 2))], (0,))
    hot = np.moveaxis(np.eye(3)[y.astype(int)], -1, 1)
    np.testing.assert_allclose(g, _softmax(x, 1) - hot, rtol=1e-12)


# -- convolution -----------------------------------------------------------------------------------
@pytest.mark.parametrize("attrs", [{"stride": (2, 1), "pad": (1, 1)}, {"dilate": (2, 2), "num_group": 2},
                                   {"stride": (2, 2), "pad": (1, 0), "adj": (1, 1)}])
def test_deconvolution_is_the_adjoint_of_convolution(attrs):
    x = rng.standard_normal((2, 4, 3, 3))
    w = rng.standard_normal((4, 2 // attrs.get("num_group", 1), 3, 3))     # (C_in, F / group, *kernel)
    d_attrs = {"kernel": (3, 3), "num_filter": 2, **attrs}
    (y,) = run_forward("Deconvolution", [x, w], d_attrs)
    z = rng.standard_normal(y.shape)
    c_attrs = {k: v for k, v in d_attrs.items() if k != "adj"}
    c_attrs.update(num_filter=4, no_bias=True)
    (cz,) = run_forward("Convolution", [z, w], c_attrs)
    assert cz.shape == x.shape
    np.testing.assert_allclose(np.sum(y * z), np.sum(x * cz), rtol=1e-10)


def _second_derivative_check(op, arrays, attrs, wrt, training=False):
    """d/dx <grad(x), v> from the rules against central differences of the first-order gradient."""
    b, xs, outs = build(op, arrays, attrs)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    heads = [rng.standard_normal(o.shape) for o in outs]
    hs = [b.var(f"g{i}", TensorType(h.shape, h.dtype), kind="ograd") for i, h in enumerate(heads)]
    grads = reverse_mode(b, outs, hs, [xs[i] for i in wrt])
    vs = [rng.standard_normal(g.shape) for g in grads]
    vh = [b.var(f"v{k}", TensorType(v.shape, v.dtype)) for k, v in enumerate(vs)]
    first = b.build(grads)
    second = reverse_mode(b, grads, vh, [xs[i] for i in wrt])
    got = interpret(b.build([s if s is not None else b.F.zeros_like(xs[i]) for s, i in zip(second, wrt)]),
                    list(arrays) + heads + vs, training=training)

    def f(arrs):
        return sum(float(np.sum(g * v)) for g, v in zip(interpret(first, list(arrs) + heads + vs, training=training), vs))

    for i, g in zip(wrt, got):
        num = np.zeros(arrays[i].shape)
        for k in np.ndindex(*arrays[i].shape):
            arrs = [a.copy() for a in arrays]
            arrs[i][k] += 1e-6
            up = f(arrs)
            arrs[i][k] -= 2e-6
            num[k] = (up - f(arrs)) / 2e-6
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-6, err_msg=f"{op}: second derivative, input {i}")


@pytest.mark.parametrize("op, shapes, attrs, wrt, training", [
    ("Convolution", [(1, 2, 4, 4), (2, 1, 3, 2)], {"kernel": (3, 2), "num_filter": 2, "num_group": 2,
                                                   "stride": (2, 1), "pad": (1, 0), "no_bias": True}, (0, 1), False),
    ("Deconvolution", [(1, 2, 2, 3), (2, 1, 2, 2)], {"kernel": (2, 2), "num_filter": 1, "stride": (2, 1)}, (0, 1), False),
    ("Pooling", [(1, 1, 4, 4)], {"kernel": (2, 2), "stride": (2, 2), "pool_type": "avg"}, (0,), False),
    ("BatchNorm", [(3, 2, 2), (2,), (2,), (2,), (2,)], {"fix_gamma": False}, (0, 1), True),
    ("LayerNorm", [(2, 3), (3,), (3,)], {}, (0, 1), False),
])
def test_second_derivatives_match_finite_differences(op, shapes, attrs, wrt, training):
    arrays = [rng.standard_normal(s) for s in shapes]
    if op == "BatchNorm":
        arrays[4] = np.abs(arrays[4]) + 0.5
    _second_derivative_check(op, arrays, attrs, wrt, training)


def test_max_pooling_second_derivative_reads_the_argmax_positions():
    x = rng.permutation(16).reshape(1, 1, 4, 4).astype(np.float64)
    _second_derivative_check("Pooling", [x], {"kernel": (2, 2), "stride": (2, 2)}, (0,))


# -- what graphc refuses ---------------------------------------------------------------------------
def _invoke(op, shapes, attrs):
    b = GraphBuilder()
    return b.invoke(op, [b.var(f"x{i}", TensorType(s)) for i, s in enumerate(shapes)], attrs)


@pytest.mark.parametrize("op, shapes, attrs", [
    ("Convolution", [(1, 3, 5, 5), (4, 2, 3, 3), (4,)], {"kernel": (3, 3), "num_filter": 4}),
    ("Convolution", [(1, 3, 5), (4, 3, 3, 3), (4,)], {"kernel": (3, 3), "num_filter": 4}),
    ("Convolution", [(1, 3, 2, 2), (4, 3, 3, 3), (4,)], {"kernel": (3, 3), "num_filter": 4}),
    ("Deconvolution", [(1, 3, 5, 5), (4, 2, 3, 3)], {"kernel": (3, 3), "num_filter": 2}),
    ("BatchNorm", [(2, 3, 4), (4,), (3,), (3,), (3,)], {}),
    ("Pooling", [(1, 3, 5)], {"kernel": (2, 2)}),
    ("LayerNorm", [(2, 3), (2,), (3,)], {}),
    ("Embedding", [(2,), (5, 3)], {"input_dim": 4, "output_dim": 3}),
    ("SequenceMask", [(4, 3), (2,)], {"use_sequence_length": True}),
    ("Pad", [(1, 2, 3, 4)], {"pad_width": (0, 0, 1, 1)}),
])
def test_bad_shapes_raise_a_shape_error_naming_op_and_shapes(op, shapes, attrs):
    with pytest.raises(ShapeError) as info:
        _invoke(op, shapes, attrs)
    msg = str(info.value)
    assert msg.startswith(op), msg
    assert any(str(s) in msg for s in shapes), msg


@pytest.mark.parametrize("op, shapes, attrs, words", [
    # MXNet 1.9's Convolution has no 'NWC'; a layout of another rank fits no data
    ("Convolution", [(1, 5, 3), (4, 3, 3)], {"kernel": (3,), "num_filter": 4, "no_bias": True,
                                             "layout": "NWC"}, "'NWC' is not supported.*'NCW'"),
    ("Pooling", [(1, 5, 5, 3)], {"kernel": (2, 2), "layout": "NWC"}, "'NCHW' or 'NHWC'"),
    ("UpSampling", [(1, 2, 3, 3), (2, 1, 4, 4)], {"scale": 2, "sample_type": "bilinear"}, "needs num_filter"),
    ("Deconvolution", [(1, 2, 3, 3), (2, 1, 3, 3)], {"kernel": (3, 3), "num_filter": 1, "stride": (2, 2),
                                                     "adj": (2, 2)}, "adj"),
    ("Convolution", [(1, 2, 3, 3), (1, 2, 3, 3)], {"kernel": (3, 3), "num_filter": 1, "stride": (1,)}, "stride"),
])
def test_unsupported_attributes_are_refused_clearly(op, shapes, attrs, words):
    with pytest.raises(OpAttributeError, match=words):
        _invoke(op, shapes, attrs)
