"""How the MXNet 1.x gap-filling operators behave as MXNet users call them: optimizer updates
write the weight through out= and their states in place, output layers ignore the head
gradient, nd.image / sym.image / F.image exist and compile, nd's Python-level functions
(logical_and, histogram, split_v2, onehot_encode...) and errors that name the operator."""
import numpy as np
import pytest

import graphc as mx
from graphc.ops.errors import ShapeError, OpAttributeError

nd = mx.nd


def _arr(seed, shape, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


# -- out= and in-place states ----------------------------------------------------------------------

def test_out_writes_any_operator_result_into_the_given_array():
    a, b = nd.array([[0.0, 1.0]]), nd.zeros((1, 2))
    r = nd.exp(a, out=b)
    assert r is b
    np.testing.assert_allclose(b.asnumpy(), np.exp([[0.0, 1.0]]), rtol=1e-6)


def test_out_is_ignored_where_the_call_is_traced():
    class Net(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, a, b):
            return F.exp(a, out=b) + 1.0

    net = Net()
    net.hybridize()
    b = nd.zeros((2,))
    np.testing.assert_allclose(net(nd.zeros((2,)), b).asnumpy(), [2.0, 2.0])
    np.testing.assert_array_equal(b.asnumpy(), [0.0, 0.0])   # a graph input is not written


def test_update_with_out_writes_the_weight_and_mutates_the_momentum():
    w0, g0, m0 = _arr(1, (3,)), _arr(2, (3,)), _arr(3, (3,))
    w, m = nd.array(w0), nd.array(m0)
    r = nd.sgd_mom_update(w, nd.array(g0), m, lr=0.1, momentum=0.9, wd=0.01, out=w)
    mom = 0.9 * m0 - 0.1 * 0.01 * w0 - 0.1 * g0
    assert r is w
    np.testing.assert_allclose(m.asnumpy(), mom, rtol=1e-6)
    np.testing.assert_allclose(w.asnumpy(), w0 + mom, rtol=1e-6)


def test_update_without_out_leaves_the_weight_but_still_updates_the_state():
    w0 = _arr(4, (2, 2))
    w, mean, var = nd.array(w0), nd.zeros((2, 2)), nd.zeros((2, 2))
    new = nd.adam_update(w, nd.ones((2, 2)), mean, var, lr=0.1)
    np.testing.assert_array_equal(w.asnumpy(), w0)
    np.testing.assert_allclose(mean.asnumpy(), np.full((2, 2), 0.1), rtol=1e-6)
    np.testing.assert_allclose(var.asnumpy(), np.full((2, 2), 0.001), rtol=1e-5)
    assert not np.allclose(new.asnumpy(), w0)


def test_mixed_precision_update_keeps_the_master_weight_in_float32():
    w16, w32 = nd.array([1.0, 2.0], dtype="float16"), nd.array([1.0, 2.0])
    nd.mp_sgd_update(w16, nd.array([1e-4, 1e-4], dtype="float16"), w32, lr=1.0, out=w16)
    assert w16.dtype == np.float16 and w32.dtype == np.float32
    np.testing.assert_allclose(w32.asnumpy(), [1.0 - 1e-4, 2.0 - 1e-4], rtol=1e-7)


def test_multi_update_writes_every_momentum_back_and_the_weights_through_out():
    ws = [nd.array([1.0, 1.0]), nd.array([2.0])]
    moms = [nd.zeros((2,)), nd.array([0.5])]
    grads = [nd.array([1.0, -1.0]), nd.array([2.0])]
    nd.multi_sgd_mom_update(ws[0], grads[0], moms[0], ws[1], grads[1], moms[1], lrs=(0.1, 0.2), wds=(0.0, 0.0),
                            momentum=0.5, num_weights=2, out=ws)
    np.testing.assert_allclose(moms[0].asnumpy(), [-0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(moms[1].asnumpy(), [0.25 - 0.4], rtol=1e-6)
    np.testing.assert_allclose(ws[0].asnumpy(), [0.9, 1.1], rtol=1e-6)
    np.testing.assert_allclose(ws[1].asnumpy(), [2.0 - 0.15], rtol=1e-6)


def test_adamw_skips_the_step_when_the_loss_scale_overflowed():
    w = nd.array([1.0, 2.0])
    mean = nd.zeros((2,))
    nd.contrib.adamw_update(w, nd.ones((2,)), mean, nd.zeros((2,)), rescale_grad=nd.array([np.inf]), lr=0.1,
                            eta=1.0, out=w)
    np.testing.assert_array_equal(w.asnumpy(), [1.0, 2.0])
    np.testing.assert_array_equal(mean.asnumpy(), [0.0, 0.0])


# -- output layers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, grad", [
    ("LinearRegressionOutput", lambda y, t: y - t),
    ("LogisticRegressionOutput", lambda y, t: y - t),
    ("MAERegressionOutput", lambda y, t: np.sign(y - t)),
])
def test_regression_outputs_ignore_the_head_gradient(name, grad):
    x, t = nd.array(_arr(5, (4, 3))), nd.array(_arr(6, (4, 3), 0, 1))
    x.attach_grad()
    with mx.autograd.record():
        y = getattr(nd, name)(x, t, grad_scale=3.0)
    y.backward(nd.ones((4, 3)) * 11.0)
    want = grad(y.asnumpy(), t.asnumpy()) * 3.0 / 3   # grad_scale / outputs per sample
    np.testing.assert_allclose(x.grad.asnumpy(), want, rtol=1e-5, atol=1e-7)


def test_output_layer_gradient_is_the_same_compiled():
    class Net(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x, t):
            return F.SVMOutput(x * 2.0, t, margin=0.5)

    x0, t0 = _arr(7, (3, 4)), np.array([0.0, 3.0, 1.0], np.float32)
    grads = []
    for hybrid in (False, True):
        net = Net()
        if hybrid:
            net.hybridize()
        x = nd.array(x0)
        x.attach_grad()
        with mx.autograd.record():
            y = net(x, nd.array(t0))
        y.backward()
        grads.append(x.grad.asnumpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)
    assert np.abs(grads[0]).sum() > 0


# -- image operators in every namespace ------------------------------------------------------------

def test_image_operators_exist_in_nd_sym_and_hybridized_blocks():
    img = np.random.default_rng(8).integers(0, 256, (4, 6, 3)).astype(np.uint8)

    class Prep(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.image.normalize(F.image.to_tensor(F.image.flip_left_right(x)), mean=(0.5, 0.4, 0.3),
                                     std=(0.2, 0.3, 0.4))

    eager = Prep()(nd.array(img, dtype="uint8")).asnumpy()
    net = Prep()
    net.hybridize()
    compiled = net(nd.array(img, dtype="uint8")).asnumpy()
    want = (img[:, ::-1].transpose(2, 0, 1) / 255.0 - np.array([0.5, 0.4, 0.3])[:, None, None]) \
        / np.array([0.2, 0.3, 0.4])[:, None, None]
    np.testing.assert_allclose(eager, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compiled, eager, rtol=1e-6, atol=1e-6)
    s = mx.sym.image.crop(mx.sym.var("img"), x=1, y=0, width=2, height=3)
    assert s.infer_shape(img=(4, 6, 3))[1] == [(3, 2, 3)]


def test_random_image_operators_repeat_under_the_same_seed():
    img = nd.array(np.random.default_rng(9).integers(0, 256, (4, 5, 3)), dtype="uint8")
    runs = []
    for _ in range(2):
        mx.random.seed(42)
        runs.append(nd.image.random_color_jitter(img, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1).asnumpy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert runs[0].dtype == np.uint8


def test_spatial_transformer_compiles_and_differentiates_like_eager():
    class ST(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x, loc):
            return F.SpatialTransformer(x, loc, target_shape=(3, 4), transform_type="affine", sampler_type="bilinear")

    x0 = _arr(10, (2, 2, 5, 6))
    loc0 = np.array([[0.8, 0.1, 0.05, -0.1, 0.9, 0.1], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]], np.float32)
    results = []
    for hybrid in (False, True):
        net = ST()
        if hybrid:
            net.hybridize()
        x, loc = nd.array(x0), nd.array(loc0)
        x.attach_grad()
        loc.attach_grad()
        with mx.autograd.record():
            y = (net(x, loc) ** 2).sum()
        y.backward()
        results.append((y.asnumpy(), x.grad.asnumpy(), loc.grad.asnumpy()))
    for eager, compiled in zip(*results):
        np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)


# -- nd's Python-level functions -------------------------------------------------------------------

def test_logical_functions_take_arrays_and_numbers():
    a = nd.array([[0.0, 1.0, 2.0]])
    np.testing.assert_array_equal(nd.logical_and(a, nd.array([[1.0], [0.0]])).asnumpy(), [[0, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(nd.logical_or(a, 0).asnumpy(), [[0, 1, 1]])
    np.testing.assert_array_equal(nd.logical_xor(1, a).asnumpy(), [[1, 0, 0]])


def test_histogram_split_v2_moveaxis_and_onehot_encode():
    counts, edges = nd.histogram(nd.array([0.1, 0.5, 0.9, 1.0, 0.3, 2.0]), bins=2, range=(0, 1))
    np.testing.assert_array_equal(counts.asnumpy(), [2, 3])
    np.testing.assert_allclose(edges.asnumpy(), [0.0, 0.5, 1.0])
    parts = nd.split_v2(nd.arange(10).reshape((2, 5)), (1, 4), axis=1)
    assert [p.shape for p in parts] == [(2, 1), (2, 3), (2, 1)]
    assert nd.moveaxis(nd.zeros((2, 3, 4)), -1, 0).shape == (4, 2, 3)
    out = nd.zeros((2, 3))
    assert nd.onehot_encode(nd.array([2, 0]), out) is out
    np.testing.assert_array_equal(out.asnumpy(), [[0, 0, 1], [1, 0, 0]])


def test_reset_arrays_zeroes_every_array_in_place():
    a, b = nd.ones((2, 2)), nd.array([3.0])
    nd.reset_arrays(a, b, num_arrays=2)
    assert a.asnumpy().sum() == 0 and b.asnumpy().sum() == 0


def test_contrib_multi_tensor_updates_write_states_back():
    ws, gs = [nd.array([1.0, -1.0]), nd.array([2.0])], [nd.array([0.5, 0.5]), nd.array([-1.0])]
    ms, vs = [nd.zeros((2,)), nd.zeros((1,))], [nd.zeros((2,)), nd.zeros((1,))]
    nd.contrib.multi_adamw_update(ws, gs, ms, vs, rescale_grad=1.0, lrs=[0.1, 0.1], wds=[0.0, 0.0], etas=[1.0, 1.0],
                                  out=ws)
    np.testing.assert_allclose(ms[0].asnumpy(), [0.05, 0.05], rtol=1e-6)
    np.testing.assert_allclose(vs[1].asnumpy(), [0.001], rtol=1e-5)
    # first Adam step without bias correction: mean / sqrt(var) = 0.1 g / (sqrt(0.001) |g|)
    np.testing.assert_allclose(ws[1].asnumpy(), [2.0 + 0.1 * 0.1 / np.sqrt(0.001)], rtol=1e-5)


# -- errors name the operator, what it expected and what it got ------------------------------------

@pytest.mark.parametrize("call, words", [
    (lambda: nd.depth_to_space(nd.zeros((1, 6, 2, 2)), block_size=2), ["depth_to_space", "(1, 6, 2, 2)", "4"]),
    (lambda: nd.Crop(nd.zeros((1, 1, 3, 3)), h_w=(4, 2)), ["Crop", "4x2", "(1, 1, 3, 3)"]),
    (lambda: nd.image.crop(nd.zeros((4, 4, 3)), x=3, y=0, width=2, height=2), ["_image_crop", "2x2", "(4, 4, 3)"]),
    (lambda: nd.sgd_mom_update(nd.zeros((2,)), nd.zeros((3,)), nd.zeros((2,)), lr=0.1),
     ["sgd_mom_update", "grad", "(3,)", "(2,)"]),
    (lambda: nd.khatri_rao(nd.zeros((2, 3)), nd.zeros((2, 4))), ["khatri_rao", "columns"]),
])
def test_shape_errors_name_the_operator_and_both_shapes(call, words):
    with pytest.raises(ShapeError) as info:
        call()
    for w in words:
        assert w in str(info.value), f"{w!r} missing from: {info.value}"


def test_unsupported_resize_interpolation_is_refused_by_name():
    with pytest.raises(OpAttributeError, match="_image_resize: interp=3"):
        nd.image.resize(nd.zeros((4, 4, 3)), size=(2, 2), interp=3)
