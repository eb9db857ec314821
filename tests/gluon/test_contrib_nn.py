"""gluon.contrib.nn against Apache MXNet 1.9.1 (recorded answers in
mxnet_gluon_contrib_reference.json, live where MXNet's venv exists; cases in
gluon_contrib_cases.py, eager and hybridized), and what MXNet cannot check: SyncBatchNorm over
two CPU devices training exactly like BatchNorm over the whole batch, its refusals, and the
layers' errors."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon
from graphc.gluon.contrib import nn as cnn
from graphc.ops.errors import GraphcError

import gluon_contrib_cases as cases

SECTION = "nn"


@pytest.mark.parametrize("mode,case", cases.recorded_cases(SECTION))
def test_graphc_matches_recorded_mxnet(mode, case):
    cases.assert_same(f"{mode}.{case}", cases.graphc_answers(SECTION, mode)[case], cases.recorded(SECTION)[mode][case])


def test_every_case_is_recorded():
    for mode in cases.MODES:
        assert sorted(cases.graphc_answers(SECTION, mode)) == sorted(cases.recorded(SECTION)[mode])


@pytest.mark.skipif(not cases.HAVE_MXNET, reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_live_mxnet_gives_the_recorded_answers():
    live = cases.live_mxnet(SECTION)
    for mode in cases.MODES:
        cases.assert_same(mode, cases.recorded(SECTION)[mode], live[mode])


# -- SyncBatchNorm across devices ------------------------------------------------------------------
def _train(net_factory, ctxs, x, y, steps=3):
    mx.random.seed(0)
    net = net_factory()
    net.initialize(mx.init.Xavier(), ctx=ctxs)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loss_fn = gluon.loss.L2Loss()
    for _ in range(steps):
        xs = gluon.utils.split_and_load(mx.nd.array(x), ctxs)
        ys = gluon.utils.split_and_load(mx.nd.array(y), ctxs)
        with autograd.record():
            losses = [loss_fn(net(a), b) for a, b in zip(xs, ys)]
        for loss in losses:
            loss.backward()
        trainer.step(x.shape[0])
    # keyed by position and short name: BatchNorm and SyncBatchNorm have different prefixes
    return {f"{i}:{name.rsplit('_', 1)[-1]}": p.data(ctxs[-1]).asnumpy()
            for i, (name, p) in enumerate(net.collect_params().items())}


def _conv_bn(bn):
    def make():
        net = gluon.nn.Sequential()
        with net.name_scope():
            net.add(gluon.nn.Conv2D(4, 3, in_channels=2), bn(), gluon.nn.Flatten(), gluon.nn.Dense(1, in_units=64))
        return net
    return make


def test_sync_batch_norm_on_two_devices_trains_like_batch_norm_on_the_whole_batch():
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 2.0, (8, 2, 6, 6)).astype(np.float32)
    y = rng.normal(size=(8, 1)).astype(np.float32)
    whole = _train(_conv_bn(lambda: gluon.nn.BatchNorm(in_channels=4)), [mx.cpu(0)], x, y)
    synced = _train(_conv_bn(lambda: cnn.SyncBatchNorm(in_channels=4, num_devices=2)), [mx.cpu(0), mx.cpu(1)], x, y)
    per_device = _train(_conv_bn(lambda: gluon.nn.BatchNorm(in_channels=4)), [mx.cpu(0), mx.cpu(1)], x, y)
    assert sorted(whole) == sorted(synced)
    for name in whole:
        np.testing.assert_allclose(synced[name], whole[name], rtol=1e-4, atol=1e-5, err_msg=name)
    # the check can fail: statistics per device (plain BatchNorm on each half) train differently
    running_var = [k for k in whole if k.endswith(":var")]
    assert running_var and not np.allclose(per_device[running_var[0]], whole[running_var[0]], rtol=1e-3)


def test_sync_batch_norm_across_devices_compiles_for_inference_only():
    net = cnn.SyncBatchNorm(in_channels=3, num_devices=2)
    net.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    net.hybridize()
    x = mx.nd.ones((2, 3, 2), ctx=mx.cpu(0))
    np.testing.assert_allclose(net(x).asnumpy(), np.full((2, 3, 2), 1 / np.sqrt(1 + 1e-5)), rtol=1e-6)
    with autograd.record(), pytest.raises(GraphcError, match="num_devices=2 .*hybridized"):
        net(x)


def test_sync_batch_norm_with_a_missing_device_fails_with_a_deadline(monkeypatch):
    monkeypatch.setenv("GRAPHC_SYNC_TIMEOUT", "0.5")
    net = cnn.SyncBatchNorm(in_channels=3, num_devices=2, prefix="lonely_")
    net.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    with autograd.record():
        y = net(mx.nd.ones((2, 3, 2), ctx=mx.cpu(1)))
    with pytest.raises(GraphcError, match=r"statistics of 2 devices .*only devices \[1\] came"):
        y.asnumpy()


def test_sync_batch_norm_in_inference_uses_the_running_statistics_without_syncing():
    net = cnn.SyncBatchNorm(in_channels=2, num_devices=4, running_mean_initializer=mx.init.Constant(1.0),
                            running_variance_initializer=mx.init.Constant(4.0))
    net.initialize()
    out = net(mx.nd.array(np.full((1, 2, 3), 5.0, np.float32))).asnumpy()
    np.testing.assert_allclose(out, np.full((1, 2, 3), 4.0 / np.sqrt(4.0 + 1e-5)), rtol=1e-6)


# -- the other layers ------------------------------------------------------------------------------
def test_pixel_shuffle_matches_a_numpy_reference_for_asymmetric_factors():
    x = np.arange(2 * 12 * 2 * 3, dtype=np.float32).reshape(2, 12, 2, 3)
    f1, f2 = 2, 3
    expected = x.reshape(2, 2, f1, f2, 2, 3).transpose(0, 1, 4, 2, 5, 3).reshape(2, 2, 2 * f1, 3 * f2)
    np.testing.assert_array_equal(cnn.PixelShuffle2D((f1, f2))(mx.nd.array(x)).asnumpy(), expected)


def test_pixel_shuffle_names_the_channel_mismatch():
    with pytest.raises(GraphcError, match="PixelShuffle2D: 10 channels are not a multiple of .* 4"):
        cnn.PixelShuffle2D(2)(mx.nd.zeros((1, 10, 2, 2)))
    with pytest.raises(GraphcError, match="factor must be an int or 3 ints"):
        cnn.PixelShuffle3D((2, 2))


def test_sparse_embedding_gradient_is_dense_with_zero_rows_for_unused_indices():
    emb = cnn.SparseEmbedding(5, 2)
    emb.initialize()
    with pytest.raises(RuntimeError, match="no Trainer"):      # as MXNet's: rows come through a Trainer
        emb(mx.nd.array([[0, 3]]))
    gluon.Trainer(emb.collect_params(), "sgd")
    with autograd.record():
        out = emb(mx.nd.array([[0, 3], [3, 3]]))
    out.backward()
    grad = emb.weight.grad().asnumpy()
    np.testing.assert_array_equal(grad, np.array([[1, 1], [0, 0], [0, 0], [3, 3], [0, 0]], np.float32))


def test_concurrent_concatenates_along_its_axis_and_is_reachable_from_gluon_contrib():
    assert mx.gluon.contrib.nn.Concurrent is cnn.Concurrent
    net = cnn.Concurrent(axis=0)
    net.add(cnn.Identity(), gluon.nn.Lambda(lambda x: x * 2))
    np.testing.assert_array_equal(net(mx.nd.array([[1.0, 2.0]])).asnumpy(), [[1, 2], [2, 4]])


def test_sync_batch_norm_on_a_single_device_process_fails_at_once():
    net = cnn.SyncBatchNorm(in_channels=3, num_devices=2)
    net.initialize()
    with autograd.record(), pytest.raises(GraphcError, match="num_devices=2 but only cpu\\(0\\) has held data"):
        net(mx.nd.ones((2, 3, 2)))
