"""mx.mod.Module, mx.model and mx.callback on their own (no MXNet needed): one training step
against a numpy reference, checkpoints that resume training exactly, data parallelism over
uneven device shares, callbacks' log lines, and the errors of a misused module."""
import logging
import os

import numpy as np
import pytest

import graphc as mx
from module_scenarios import dataset, mlp, mlp_params


def _np_mlp_step(params, X, Y, lr):
    """Forward, SoftmaxOutput's gradient (softmax - onehot, not averaged) and plain SGD with
    rescale_grad = 1/batch, in numpy."""
    w1, b1, w2, b2 = (params[k].asnumpy().astype(np.float64) for k in ("fc1_weight", "fc1_bias", "fc2_weight",
                                                                        "fc2_bias"))
    h = X @ w1.T + b1
    a = np.maximum(h, 0)
    z = a @ w2.T + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = p - np.eye(3)[Y.astype(int)]
    grads = {"fc2_weight": dz.T @ a, "fc2_bias": dz.sum(0)}
    da = dz @ w2 * (h > 0)
    grads.update({"fc1_weight": da.T @ X, "fc1_bias": da.sum(0)})
    old = {"fc1_weight": w1, "fc1_bias": b1, "fc2_weight": w2, "fc2_bias": b2}
    return p, {k: old[k] - lr * grads[k] / len(X) for k in old}


def test_one_forward_backward_update_matches_numpy():
    X, Y = dataset(n=8)
    params = mlp_params(mx, seed=11)
    expected_out, expected = _np_mlp_step(params, X.astype(np.float64), Y, lr=0.3)
    mod = mx.mod.Module(mlp(mx))
    mod.bind([("data", (8, 5))], [("softmax_label", (8,))])
    mod.init_params(arg_params=params)
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.3})
    mod.forward_backward(mx.io.DataBatch([mx.nd.array(X)], [mx.nd.array(Y)]))
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), expected_out, rtol=1e-5, atol=1e-6)
    mod.update()
    arg, _ = mod.get_params()
    for k, v in expected.items():
        np.testing.assert_allclose(arg[k].asnumpy(), v, rtol=1e-5, atol=1e-6, err_msg=k)


def _fit(context=None, work_load_list=None, num_epoch=2, begin_epoch=0, mod=None, **kw):
    X, Y = dataset(n=24)
    it = mx.io.NDArrayIter(X, Y, batch_size=6)
    if mod is None:
        mod = mx.mod.Module(mlp(mx), context=context or mx.cpu(), work_load_list=work_load_list)
        kw.setdefault("arg_params", mlp_params(mx, seed=2))
    mod.fit(it, num_epoch=num_epoch, begin_epoch=begin_epoch, optimizer="sgd",
            optimizer_params={"learning_rate": 0.2, "momentum": 0.9}, **kw)
    return mod


def _weights(mod):
    arg, aux = mod.get_params()
    return {k: v.asnumpy() for k, v in list(arg.items()) + list(aux.items())}


def test_uneven_work_loads_over_two_cpus_train_like_one_device():
    one = _weights(_fit())
    two = _weights(_fit(context=[mx.cpu(0), mx.cpu(1)], work_load_list=[1, 2]))
    for k in one:
        np.testing.assert_allclose(two[k], one[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_checkpoint_with_optimizer_states_resumes_training_exactly(tmp_path):
    prefix = str(tmp_path / "mlp")
    straight = _weights(_fit(num_epoch=3))
    first = _fit(num_epoch=1)
    first.save_checkpoint(prefix, 1, save_optimizer_states=True)
    assert sorted(os.listdir(tmp_path)) == ["mlp-0001.params", "mlp-0001.states", "mlp-symbol.json"]
    resumed = mx.mod.Module.load(prefix, 1, load_optimizer_states=True)
    _fit(mod=resumed, num_epoch=3, begin_epoch=1)
    got = _weights(resumed)
    for k in straight:
        np.testing.assert_allclose(got[k], straight[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # without the momentum the resumed run differs: the states file is what made it exact
    fresh = mx.mod.Module.load(prefix, 1)
    _fit(mod=fresh, num_epoch=3, begin_epoch=1)
    assert not np.allclose(_weights(fresh)["fc1_weight"], straight["fc1_weight"], rtol=1e-5, atol=1e-6)


def test_model_checkpoint_files_round_trip_and_refuse_foreign_names(tmp_path):
    prefix = str(tmp_path / "m")
    arg = mlp_params(mx, seed=4)
    aux = {"bn_moving_mean": mx.nd.array([1.0, 2.0])}
    mx.model.save_checkpoint(prefix, 7, mlp(mx), arg, aux)
    sym, arg2, aux2 = mx.model.load_checkpoint(prefix, 7)
    assert sym.list_arguments() == mlp(mx).list_arguments()
    assert sorted(arg2) == sorted(arg) and list(aux2) == ["bn_moving_mean"]
    for k in arg:
        np.testing.assert_array_equal(arg2[k].asnumpy(), arg[k].asnumpy())
    from graphc.formats.mxnet_params import save_params
    save_params(str(tmp_path / "g-0000.params"), {"dense0_weight": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match="neither 'arg:<name>' nor 'aux:<name>'"):
        mx.model.load_params(str(tmp_path / "g"), 0)


def test_do_checkpoint_and_module_checkpoint_save_every_period(tmp_path):
    prefix = str(tmp_path / "run")
    mod = mx.mod.Module(mlp(mx))
    _fit(mod=mod, num_epoch=4, arg_params=mlp_params(mx, seed=2),
         epoch_end_callback=[mx.callback.do_checkpoint(prefix, period=2),
                             mx.callback.module_checkpoint(mod, prefix + "-mod", period=3, save_optimizer_states=True)])
    assert sorted(os.listdir(tmp_path)) == ["run-0002.params", "run-0004.params", "run-mod-0003.params",
                                            "run-mod-0003.states", "run-mod-symbol.json", "run-symbol.json"]
    _, last, _ = mx.model.load_checkpoint(prefix, 4)
    np.testing.assert_array_equal(last["fc2_bias"].asnumpy(), mod.get_params()[0]["fc2_bias"].asnumpy())


def test_save_params_load_params_and_predict_agree(tmp_path):
    mod = _fit(num_epoch=1)
    X, _ = dataset(n=24)
    before = mod.predict(mx.io.NDArrayIter(X, batch_size=5)).asnumpy()
    mod.save_params(str(tmp_path / "p.params"))
    other = mx.mod.Module(mlp(mx))
    other.bind([("data", (5, 5))], for_training=False)
    other.load_params(str(tmp_path / "p.params"))
    after = other.predict(mx.io.NDArrayIter(X, batch_size=5))
    assert after.shape == (24, 3)                      # the padded last batch is cut off
    np.testing.assert_allclose(after.asnumpy(), before, rtol=1e-6)


def test_fixed_params_stay_and_grad_req_add_accumulates():
    X, Y = dataset(n=6)
    batch = mx.io.DataBatch([mx.nd.array(X)], [mx.nd.array(Y)])
    mod = mx.mod.Module(mlp(mx), fixed_param_names=["fc1_weight"])
    mod.bind([("data", (6, 5))], [("softmax_label", (6,))])
    mod.init_params(arg_params=mlp_params(mx))
    mod.init_optimizer(optimizer_params={"learning_rate": 1.0})
    mod.forward_backward(batch)
    mod.update()
    arg, _ = mod.get_params()
    np.testing.assert_array_equal(arg["fc1_weight"].asnumpy(), mlp_params(mx)["fc1_weight"].asnumpy())
    assert not np.allclose(arg["fc1_bias"].asnumpy(), mlp_params(mx)["fc1_bias"].asnumpy())

    add = mx.mod.Module(mlp(mx))
    add.bind([("data", (6, 5))], [("softmax_label", (6,))], grad_req="add")
    add.init_params(arg_params=mlp_params(mx))
    add.forward_backward(batch)
    once = add._exec_group.grad_arrays[0][0].asnumpy().copy()
    add.forward_backward(batch)
    np.testing.assert_allclose(add._exec_group.grad_arrays[0][0].asnumpy(), 2 * once, rtol=1e-6)


def test_speedometer_and_validation_callbacks_log_mxnets_lines(caplog):
    metric = mx.metric.create("acc")
    metric.update([mx.nd.array([0, 1])], [mx.nd.array([[1, 0], [1, 0]])])
    speed = mx.callback.Speedometer(batch_size=4, frequent=2)
    with caplog.at_level(logging.INFO):
        for nbatch in range(5):
            speed(mx.model.BatchEndParam(epoch=3, nbatch=nbatch, eval_metric=metric, locals=None))
        mx.callback.LogValidationMetricsCallback()(mx.model.BatchEndParam(3, 5, metric, None))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("Epoch[3] Batch [0-2]\tSpeed: ") and lines[0].endswith("samples/sec\taccuracy=0.500000")
    # auto_reset cleared the local counts after the first line
    assert lines[1].startswith("Epoch[3] Batch [2-4]\tSpeed: ") and lines[1].endswith("\taccuracy=nan")
    assert lines[2] == "Epoch[3] Validation-accuracy=nan"


def test_misuse_is_reported_with_the_names_involved():
    with pytest.raises(ValueError, match="input with name 'pixels' is not found"):
        mx.mod.Module(mlp(mx), data_names=["pixels"])
    mod = mx.mod.Module(mlp(mx))
    with pytest.raises(RuntimeError, match="call bind"):
        mod.init_params()
    mod.bind([("data", (2, 5))], [("softmax_label", (2,))])
    partial = mlp_params(mx)
    del partial["fc2_bias"]
    with pytest.raises(RuntimeError, match="'fc2_bias' is not in the given parameters"):
        mod.init_params(arg_params=partial)
    mod.init_params(arg_params=partial, allow_missing=True)     # the initializer fills fc2_bias
    with pytest.raises(RuntimeError, match="init_optimizer"):
        mod.update()
    with pytest.raises(ValueError, match="num_epoch"):
        mod.fit(mx.io.NDArrayIter(np.zeros((2, 5)), np.zeros(2), batch_size=2))
    with pytest.raises(ValueError, match="a device gets no examples"):
        m = mx.mod.Module(mlp(mx), context=[mx.cpu(0), mx.cpu(1), mx.cpu(2)])
        m.bind([("data", (2, 5))], [("softmax_label", (2,))])


def test_bucketing_checkpoint_reloads_into_every_bucket(tmp_path):
    def sym_gen(seq_len):
        fc = mx.sym.FullyConnected(mx.sym.sum(mx.sym.var("data"), axis=1), num_hidden=2, name="fc")
        return mx.sym.SoftmaxOutput(fc, mx.sym.var("softmax_label"), name="softmax"), ("data",), ("softmax_label",)

    mod = mx.mod.BucketingModule(sym_gen, default_bucket_key=3)
    mod.bind([("data", (2, 3, 4))], [("softmax_label", (2,))])
    mod.init_params(initializer=mx.init.Xavier())
    mod.save_checkpoint(str(tmp_path / "b"), 1)
    loaded = mx.mod.BucketingModule.load(str(tmp_path / "b"), 1, sym_gen=sym_gen, default_bucket_key=3)
    loaded.bind([("data", (2, 3, 4))], [("softmax_label", (2,))], for_training=False)
    x = np.random.RandomState(0).uniform(size=(2, 5, 4)).astype(np.float32)
    batch = mx.io.DataBatch([mx.nd.array(x)], [mx.nd.zeros((2,))], bucket_key=5,
                            provide_data=[mx.io.DataDesc("data", x.shape)],
                            provide_label=[mx.io.DataDesc("softmax_label", (2,))])
    mod.forward(batch, is_train=False)
    loaded.forward(batch, is_train=False)
    np.testing.assert_allclose(loaded.get_outputs()[0].asnumpy(), mod.get_outputs()[0].asnumpy(), rtol=1e-6)
    assert sorted(loaded._buckets) == [3, 5]


def test_group2ctxs_places_the_stages_and_trains_like_one_device():
    data = mx.sym.var("data")
    with mx.AttrScope(ctx_group="stage1"):
        act = mx.sym.Activation(mx.sym.FullyConnected(data, num_hidden=8, name="fc1"), act_type="relu")
    with mx.AttrScope(ctx_group="stage2"):
        fc2 = mx.sym.FullyConnected(act, num_hidden=3, name="fc2")
        out = mx.sym.SoftmaxOutput(fc2, mx.sym.var("softmax_label"), name="softmax")
    placed = mx.mod.Module(out, group2ctxs={"stage1": mx.cpu(1), "stage2": mx.cpu(2)})
    _fit(mod=placed, arg_params=mlp_params(mx, seed=2))
    arrays = placed._exec_group.execs[0].arg_dict
    assert (str(arrays["fc1_weight"].context), str(arrays["fc2_weight"].context)) == ("cpu(1)", "cpu(2)")
    expected = _weights(_fit())
    got = _weights(placed)
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_mxnet_import_paths_hold_the_names_scripts_use():
    import importlib
    for path, names in [("graphc.module", ["BaseModule", "Module", "BucketingModule"]),
                        ("graphc.io", ["DataDesc", "DataBatch", "DataIter", "NDArrayIter", "CSVIter", "MNISTIter",
                                       "ResizeIter", "PrefetchingIter"]),
                        ("graphc.callback", ["Speedometer", "do_checkpoint", "module_checkpoint",
                                             "LogValidationMetricsCallback", "log_train_metric", "ProgressBar"]),
                        ("graphc.model", ["save_checkpoint", "load_checkpoint", "load_params", "BatchEndParam"])]:
        module = importlib.import_module(path)
        assert [n for n in names if not hasattr(module, n)] == [], path
    assert mx.mod is mx.module and mx.mod.Module is mx.module.Module
