"""MXNet 1.x's symbolic API: infer_shape from the data alone, simple_bind/bind Executors,
get_internals. Expected values were recorded from Apache MXNet 1.9.1 (CPU) running the same
scripts with the same fixed weights (np.random.RandomState seeds below)."""
import numpy as np
import pytest

import graphc as mx
from graphc import sym
from graphc.ops.errors import GraphcError


def _mlp():
    data = sym.var("data")
    fc1 = sym.FullyConnected(data, num_hidden=8, name="fc1")
    act = sym.Activation(fc1, act_type="relu", name="relu1")
    fc2 = sym.FullyConnected(act, num_hidden=3, name="fc2")
    return sym.softmax(fc2, name="sm")


def _convnet():
    data = sym.var("data")
    c = sym.Convolution(data, kernel=(3, 3), num_filter=4, pad=(1, 1), name="conv")
    b = sym.BatchNorm(c, fix_gamma=False, name="bn")
    r = sym.Activation(b, act_type="relu", name="relu")
    p = sym.Pooling(r, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool")
    return sym.FullyConnected(p, num_hidden=2, name="fc")


def _fill(ex, seed):
    rng = np.random.RandomState(seed)
    for k in ex.arg_dict:
        ex.arg_dict[k][:] = rng.uniform(-1, 1, ex.arg_dict[k].shape)


# -- shape and type inference ---------------------------------------------------------------

def test_mlp_infer_shape_from_data_only_matches_mxnet():
    out = _mlp()
    assert out.list_arguments() == ["data", "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"]
    assert out.infer_shape(data=(4, 5)) == ([(4, 5), (8, 5), (8,), (3, 8), (3,)], [(4, 3)], [])
    # positional, in list_arguments() order
    assert out.infer_shape((4, 5))[0][1] == (8, 5)


def test_convnet_infer_shape_and_aux_states_match_mxnet():
    net = _convnet()
    assert net.list_arguments() == ["data", "conv_weight", "conv_bias", "bn_gamma", "bn_beta", "fc_weight", "fc_bias"]
    assert net.list_auxiliary_states() == ["bn_moving_mean", "bn_moving_var"]
    assert net.list_inputs() == ["data", "conv_weight", "conv_bias", "bn_gamma", "bn_beta", "bn_moving_mean",
                                 "bn_moving_var", "fc_weight", "fc_bias"]
    assert net.infer_shape(data=(2, 3, 4, 4)) == (
        [(2, 3, 4, 4), (4, 3, 3, 3), (4,), (4,), (4,), (2, 16), (2,)], [(2, 2)], [(4,), (4,)])


def test_embedding_and_nhwc_conv_weights_inferred():
    tok = sym.var("tok")
    emb = sym.Embedding(tok, input_dim=10, output_dim=6, name="emb")
    assert emb.infer_shape(tok=(2, 7)) == ([(2, 7), (10, 6)], [(2, 7, 6)], [])
    x = sym.var("x")
    c = sym.Convolution(x, kernel=(3, 3), num_filter=5, layout="NHWC", name="c")
    assert c.infer_shape(x=(1, 8, 8, 3))[0][1] == (5, 3, 3, 3)


def test_infer_shape_partial_matches_mxnet():
    net = _convnet()
    assert net.infer_shape_partial(fc_weight=(2, 16)) == (
        [(), (), (), (), (), (2, 16), ()], [()], [(), ()])
    x, y = sym.var("x"), sym.var("y")
    assert (x + y).infer_shape_partial(x=(2, 3)) == ([(2, 3), (2, 3)], [(2, 3)], [])
    assert _mlp().infer_shape_partial(data=(4, 5)) == _mlp().infer_shape(data=(4, 5))


def test_infer_shape_incomplete_warns_with_the_unknowns():
    """MXNet 1.x returns (None, None, None) and warns naming the arguments it could not decide;
    an unknown keyword is still an error."""
    with pytest.warns(UserWarning, match="(?s)Cannot decide shape.*data"):
        assert _mlp().infer_shape() == (None, None, None)
    with pytest.raises(GraphcError, match="'bogus'.*not inputs"):
        _mlp().infer_shape(bogus=(1, 2))


def test_infer_type_without_shapes():
    f32 = np.float32
    assert _convnet().infer_type(data="float32") == ([f32] * 7, [f32], [f32, f32])
    bn = sym.BatchNorm(sym.var("data"), name="bn")
    assert bn.infer_type(data="float16") == ([np.float16, f32, f32], [np.float16], [f32, f32])


# -- executors --------------------------------------------------------------------------------

def _mlp_reference(args, head):
    x, w1, b1, w2, b2 = (args[k] for k in ("data", "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"))
    h = x @ w1.T + b1
    a = np.maximum(h, 0)
    z = a @ w2.T + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = p * (head - (head * p).sum(1, keepdims=True))
    dh = (dz @ w2) * (h > 0)
    return p, {"data": dh @ w1, "fc1_weight": dh.T @ x, "fc1_bias": dh.sum(0), "fc2_weight": dz.T @ a,
               "fc2_bias": dz.sum(0)}


def test_mlp_simple_bind_forward_backward_matches_mxnet_and_numpy():
    ex = _mlp().simple_bind(mx.cpu(), data=(4, 5))
    assert [a.shape for a in ex.arg_arrays] == [(4, 5), (8, 5), (8,), (3, 8), (3,)]
    assert all(np.all(g.asnumpy() == 0) for g in ex.grad_arrays)
    _fill(ex, 0)
    head = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    out = ex.forward(is_train=True)[0].asnumpy()
    ex.backward(mx.nd.array(head))
    mxnet_out = [[0.547802, 0.242301, 0.209897], [0.555067, 0.234749, 0.210184],
                 [0.777914, 0.082364, 0.139722], [0.259231, 0.477022, 0.263747]]
    np.testing.assert_allclose(out, mxnet_out, atol=2e-6)
    np.testing.assert_allclose(ex.grad_dict["data"].asnumpy()[0],
                               [0.012363, -0.015812, -0.030667, 0.022596, 0.055413], atol=2e-6)
    np.testing.assert_allclose(ex.grad_dict["fc1_weight"].asnumpy()[0],
                               [-0.017751, 0.001982, -0.021548, -0.038102, 0.021335], atol=2e-6)
    ref_out, ref_grads = _mlp_reference({k: v.asnumpy().astype(np.float64) for k, v in ex.arg_dict.items()}, head)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    for name, g in ref_grads.items():
        np.testing.assert_allclose(ex.grad_dict[name].asnumpy(), g, rtol=1e-4, atol=1e-6, err_msg=name)
    assert list(ex.output_dict) == ["sm_output"]
    np.testing.assert_array_equal(ex.output_dict["sm_output"].asnumpy(), out)


def test_convnet_forward_backward_matches_mxnet():
    ex = _convnet().simple_bind(mx.cpu(), data=(2, 3, 4, 4))
    _fill(ex, 3)
    ex.aux_dict["bn_moving_var"][:] = 1
    np.testing.assert_allclose(ex.forward(is_train=False)[0].asnumpy(),
                               [[-0.0330606, 1.3235617], [-0.5724714, 1.6142831]], atol=2e-6)
    np.testing.assert_allclose(ex.forward(is_train=True)[0].asnumpy(),
                               [[-0.070673, 1.2882129], [-0.4689976, 1.6849705]], atol=2e-6)
    ex.backward(mx.nd.array([[1., -1.], [0.5, 2.]]))
    np.testing.assert_allclose(ex.grad_dict["conv_weight"].asnumpy()[0, 0, 0],
                               [-0.0358638, -0.0132651, 0.055448], atol=2e-6)
    np.testing.assert_allclose(ex.grad_dict["bn_gamma"].asnumpy(), [2.9549155, -1.5475041, 0., 0.7833338], atol=5e-6)
    np.testing.assert_allclose(ex.grad_dict["bn_beta"].asnumpy(), [1.238637, 0.4139953, 0., -2.089379], atol=5e-6)
    np.testing.assert_allclose(ex.grad_dict["data"].asnumpy()[0, 0, 0],
                               [0.1590551, 0.0172027, -0.2473671, -0.166466], atol=2e-6)


def test_batchnorm_moving_stats_update_in_training_forward_only():
    data = sym.var("data")
    c = sym.Convolution(data, kernel=(1, 1), num_filter=2, no_bias=True, name="c")
    bn = sym.BatchNorm(c, momentum=0.9, name="bn")
    ex = bn.simple_bind(mx.cpu(), data=(3, 2, 2, 2))
    _fill(ex, 5)
    ex.aux_dict["bn_moving_var"][:] = 1
    ex.forward(is_train=False)
    np.testing.assert_array_equal(ex.aux_dict["bn_moving_mean"].asnumpy(), [0, 0])
    ex.forward(is_train=True)
    conv = np.einsum("nchw,fc->nfhw", ex.arg_dict["data"].asnumpy(), ex.arg_dict["c_weight"].asnumpy()[:, :, 0, 0])
    mean, var = conv.mean((0, 2, 3)), conv.var((0, 2, 3))
    np.testing.assert_allclose(ex.aux_dict["bn_moving_mean"].asnumpy(), 0.1 * mean, rtol=1e-5, atol=1e-7)
    # MXNet 1.9.1 without MKLDNN gives the same moving_var (biased batch variance)
    np.testing.assert_allclose(ex.aux_dict["bn_moving_var"].asnumpy(), 0.9 + 0.1 * var, rtol=1e-5)
    assert [a.shape for a in ex.aux_arrays] == [(2,), (2,)]


def test_grad_req_add_accumulates_and_null_skips():
    ex = _mlp().simple_bind(mx.cpu(), grad_req={"data": "null", "fc1_weight": "add", "fc1_bias": "write",
                                                "fc2_weight": "add", "fc2_bias": "write"}, data=(4, 5))
    assert "data" not in ex.grad_dict and ex.grad_arrays[0] is None
    _fill(ex, 0)
    head = mx.nd.ones((4, 3)) * np.arange(3, dtype=np.float32)
    ex.forward(is_train=True)
    ex.backward(head)
    first_w, first_b = ex.grad_dict["fc1_weight"].asnumpy().copy(), ex.grad_dict["fc1_bias"].asnumpy().copy()
    assert np.abs(first_w).sum() > 0
    ex.forward(is_train=True)
    ex.backward(head)
    np.testing.assert_allclose(ex.grad_dict["fc1_weight"].asnumpy(), 2 * first_w, rtol=1e-6)
    np.testing.assert_allclose(ex.grad_dict["fc1_bias"].asnumpy(), first_b, rtol=1e-6)


def test_bind_uses_the_given_arrays_in_place():
    out = _mlp()
    shapes = dict(zip(out.list_arguments(), out.infer_shape(data=(2, 5))[0]))
    rng = np.random.RandomState(7)
    args = [mx.nd.array(rng.uniform(-1, 1, shapes[n])) for n in out.list_arguments()]
    grads = [mx.nd.zeros(shapes[n]) for n in out.list_arguments()]
    ex = out.bind(mx.cpu(), args, args_grad=grads)
    first = ex.forward()[0].asnumpy()
    args[0][:] = 0                       # the executor reads the caller's array
    second = ex.forward()[0].asnumpy()
    assert not np.allclose(first, second)
    ref, _ = _mlp_reference({n: a.asnumpy().astype(np.float64) for n, a in zip(out.list_arguments(), args)},
                            np.zeros((2, 3)))
    np.testing.assert_allclose(second, ref, rtol=1e-5, atol=1e-6)
    ex.forward(is_train=True)
    ex.backward(mx.nd.ones((2, 3)))
    assert ex.grad_arrays[1] is grads[1]
    with pytest.raises(GraphcError, match="no array for arguments"):
        out.bind(mx.cpu(), {"data": args[0]}, grad_req="null")
    out.bind(mx.cpu(), args, grad_req="null").backward()   # nothing to write: a no-op, as in MXNet


def test_reshape_keeps_weights_and_copy_params_from():
    ex = _mlp().simple_bind(mx.cpu(), data=(4, 5))
    _fill(ex, 0)
    small = ex.reshape(data=(2, 5))
    assert small.arg_dict["data"].shape == (2, 5)
    assert small.arg_dict["fc1_weight"] is ex.arg_dict["fc1_weight"]
    x = np.random.RandomState(1).uniform(-1, 1, (2, 5)).astype(np.float32)
    got = small.forward(data=x)[0].asnumpy()
    ref, _ = _mlp_reference({k: (x if k == "data" else v.asnumpy()).astype(np.float64)
                             for k, v in ex.arg_dict.items()}, np.zeros((2, 3)))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    other = _mlp().simple_bind(mx.cpu(), data=(2, 5))
    other.copy_params_from({k: v for k, v in ex.arg_dict.items() if k != "data"})
    np.testing.assert_allclose(other.forward(data=x)[0].asnumpy(), got, rtol=1e-6)
    with pytest.raises(GraphcError, match="'nope'"):
        other.copy_params_from({"nope": mx.nd.zeros((1,))})


def test_get_internals_and_output_by_name():
    out = _mlp()
    internals = out.get_internals()
    assert internals.list_outputs() == ["data", "fc1_weight", "fc1_bias", "fc1_output", "relu1_output",
                                        "fc2_weight", "fc2_bias", "fc2_output", "sm_output"]
    fc1 = internals["fc1_output"]
    assert fc1.list_arguments() == ["data", "fc1_weight", "fc1_bias"]
    assert fc1.infer_shape(data=(4, 5))[1] == [(4, 8)]
    ex = fc1.simple_bind(mx.cpu(), grad_req="null", data=(4, 5))
    _fill(ex, 0)
    a = {k: v.asnumpy() for k, v in ex.arg_dict.items()}
    np.testing.assert_allclose(ex.forward()[0].asnumpy(), a["data"] @ a["fc1_weight"].T + a["fc1_bias"], rtol=1e-5)
    conv_internals = _convnet().get_internals().list_outputs()
    assert conv_internals[:9] == ["data", "conv_weight", "conv_bias", "conv_output", "bn_gamma", "bn_beta",
                                  "bn_moving_mean", "bn_moving_var", "bn_output"]


def test_json_round_trip_keeps_aux_states_and_inference():
    net = _convnet()
    back = sym.load_json(net.tojson())
    assert back.list_arguments() == net.list_arguments()
    assert back.list_auxiliary_states() == ["bn_moving_mean", "bn_moving_var"]
    assert back.infer_shape(data=(2, 3, 4, 4)) == net.infer_shape(data=(2, 3, 4, 4))
