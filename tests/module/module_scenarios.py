"""The same Module-API programs run under graphc and under Apache MXNet 1.9.1 (each scenario takes
the framework as `mx`); record_module_reference.py stores MXNet's answers in
mxnet_module_reference.json, and test_module_vs_mxnet.py checks graphc gives the same.

Every scenario starts from parameters drawn with numpy (not the framework's initializer, whose
random streams differ) and returns plain lists and numbers. Log lines are captured with the
run-dependent numbers (speeds, times) masked."""
import logging
import re

import numpy as np


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        msg = record.getMessage()
        msg = re.sub(r"Speed: [0-9.]+|inf", "Speed: *", msg)
        msg = re.sub(r"Time cost=[0-9.]+", "Time cost=*", msg)
        self.lines.append(msg)


def _capturing():
    handler = _Capture()
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def _release(handler):
    logging.getLogger().removeHandler(handler)


def mlp(mx, hidden=8, classes=3):
    data = mx.sym.var("data")
    fc1 = mx.sym.FullyConnected(data, num_hidden=hidden, name="fc1")
    act = mx.sym.Activation(fc1, act_type="relu", name="relu1")
    fc2 = mx.sym.FullyConnected(act, num_hidden=classes, name="fc2")
    return mx.sym.SoftmaxOutput(fc2, mx.sym.var("softmax_label"), name="softmax")


def mlp_params(mx, seed=0, features=5, hidden=8, classes=3):
    rng = np.random.RandomState(seed)
    raw = {"fc1_weight": rng.uniform(-.5, .5, (hidden, features)), "fc1_bias": rng.uniform(-.1, .1, hidden),
           "fc2_weight": rng.uniform(-.5, .5, (classes, hidden)), "fc2_bias": rng.uniform(-.1, .1, classes)}
    return {k: mx.nd.array(v) for k, v in raw.items()}


def dataset(n=20, features=5, classes=3, seed=1):
    rng = np.random.RandomState(seed)
    return rng.uniform(-1, 1, (n, features)).astype(np.float32), rng.randint(0, classes, n).astype(np.float32)


def _params(mod):
    arg, aux = mod.get_params()
    return {k: v.asnumpy().tolist() for k, v in sorted(list(arg.items()) + list(aux.items()))}


def _fit(mx, context, kvstore="local", optimizer="sgd", opt_params=None, handle="pad", batch=6):
    X, Y = dataset()
    it = mx.io.NDArrayIter(X, Y, batch_size=batch, last_batch_handle=handle)
    mod = mx.mod.Module(mlp(mx), context=context)
    cap = _capturing()
    try:
        mod.fit(it, num_epoch=2, arg_params=mlp_params(mx), kvstore=kvstore, optimizer=optimizer,
                optimizer_params=opt_params or {"learning_rate": 0.5, "momentum": 0.9, "wd": 0.01},
                eval_metric="acc", batch_end_callback=mx.callback.Speedometer(batch, 2))
    finally:
        _release(cap)
    return {"params": _params(mod), "log": cap.lines, "score": mod.score(it, ["acc", "ce"]),
            "predict": mod.predict(it).asnumpy().tolist()}


def fit_mlp_sgd_momentum(mx):
    return _fit(mx, mx.cpu())


def fit_mlp_on_two_cpus(mx):
    return _fit(mx, [mx.cpu(0), mx.cpu(1)])


def fit_mlp_on_three_cpus_update_on_devices(mx):
    # a store that only sums (update_on_kvstore=False): the Updater runs per device
    import os
    os.environ["MXNET_UPDATE_ON_KVSTORE"] = "0"
    try:
        return _fit(mx, [mx.cpu(0), mx.cpu(1), mx.cpu(2)], batch=6)
    finally:
        del os.environ["MXNET_UPDATE_ON_KVSTORE"]


def fit_adam_with_eval_data_and_roll_over(mx):
    X, Y = dataset()
    Xv, Yv = dataset(n=9, seed=2)
    train = mx.io.NDArrayIter(X, Y, batch_size=8, last_batch_handle="roll_over")
    val = mx.io.NDArrayIter(Xv, Yv, batch_size=4)
    mod = mx.mod.Module(mlp(mx))
    cap = _capturing()
    try:
        mod.fit(train, eval_data=val, num_epoch=3, begin_epoch=1, arg_params=mlp_params(mx, seed=3),
                optimizer="adam", optimizer_params={"learning_rate": 0.05}, eval_metric="acc",
                validation_metric=["acc", "ce"], eval_end_callback=mx.callback.LogValidationMetricsCallback(),
                batch_end_callback=mx.callback.log_train_metric(1))
    finally:
        _release(cap)
    return {"params": _params(mod), "log": cap.lines}


def manual_steps_with_input_grads(mx):
    """bind/init_params/init_optimizer then forward, backward, update by hand; input gradients;
    get_outputs; a second batch of another size re-binds (reshape) keeping the parameters."""
    X, Y = dataset(n=6)
    mod = mx.mod.Module(mlp(mx))
    mod.bind(data_shapes=[("data", (6, 5))], label_shapes=[("softmax_label", (6,))], inputs_need_grad=True)
    mod.init_params(arg_params=mlp_params(mx, seed=4))
    mod.init_optimizer(optimizer="sgd", optimizer_params=(("learning_rate", 0.2), ("momentum", 0.5)))
    out = {}
    batch = mx.io.DataBatch([mx.nd.array(X)], [mx.nd.array(Y)])
    for step in range(3):
        mod.forward(batch, is_train=True)
        mod.backward()
        out[f"input_grad{step}"] = mod.get_input_grads()[0].asnumpy().tolist()
        mod.update()
    out["outputs"] = mod.get_outputs()[0].asnumpy().tolist()
    small = mx.io.DataBatch([mx.nd.array(X[:4])], [mx.nd.array(Y[:4])])
    mod.forward(small, is_train=False)
    out["small_outputs"] = mod.get_outputs()[0].asnumpy().tolist()
    out["output_shapes"] = [[n, list(s)] for n, s in mod.output_shapes]
    out["params"] = _params(mod)
    return out


def predict_forms(mx):
    X, Y = dataset(n=10)
    mod = mx.mod.Module(mlp(mx))
    it = mx.io.NDArrayIter(X, Y, batch_size=4)
    mod.bind(it.provide_data, it.provide_label, for_training=False)
    mod.init_params(arg_params=mlp_params(mx, seed=5))
    merged = mod.predict(it)
    listed = mod.predict(it, always_output_list=True)
    per_batch = mod.predict(it, merge_batches=False)
    two = mod.predict(it, num_batch=2)
    iterated = [[o[0].shape[0], nb, b.pad] for o, nb, b in mod.iter_predict(it)]
    return {"merged": merged.asnumpy().tolist(), "listed_len": len(listed),
            "per_batch_shapes": [[list(o.shape) for o in outs] for outs in per_batch],
            "two": list(two.shape), "iterated": iterated,
            "score_mse": mod.score(it, mx.metric.create("acc"))}


def bucketing_two_keys(mx):
    """Buckets of sequence length 2 and 4 share one FullyConnected (the sum over time makes its
    weight independent of the length); both keys train the same arrays."""
    def sym_gen(seq_len):
        data = mx.sym.var("data")
        pooled = mx.sym.sum(data, axis=1)
        fc = mx.sym.FullyConnected(pooled, num_hidden=3, name="fc")
        return mx.sym.SoftmaxOutput(fc, mx.sym.var("softmax_label"), name="softmax"), ("data",), ("softmax_label",)

    rng = np.random.RandomState(7)
    batches = []
    for i, key in enumerate([4, 2, 4, 2, 2]):
        x = rng.uniform(-1, 1, (3, key, 5)).astype(np.float32)
        y = rng.randint(0, 3, 3).astype(np.float32)
        batches.append(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.array(y)], pad=0, bucket_key=key,
                                       provide_data=[mx.io.DataDesc("data", x.shape)],
                                       provide_label=[mx.io.DataDesc("softmax_label", y.shape)]))
    mod = mx.mod.BucketingModule(sym_gen, default_bucket_key=4)
    mod.bind(data_shapes=[("data", (3, 4, 5))], label_shapes=[("softmax_label", (3,))])
    mod.init_params(arg_params={"fc_weight": mx.nd.array(rng.uniform(-.5, .5, (3, 5))),
                                "fc_bias": mx.nd.zeros((3,))})
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.3, "momentum": 0.9})
    metric = mx.metric.create("acc")
    outs = []
    for b in batches:
        mod.forward(b, is_train=True)
        mod.backward()
        mod.update()
        mod.update_metric(metric, b.label)
        outs.append(mod.get_outputs()[0].asnumpy().tolist())
    return {"params": _params(mod), "outputs": outs, "metric": metric.get(),
            "buckets": sorted(mod._buckets.keys())}


def _bucket_iter(mx):
    """Batches of sequence length 4 and 2 with their bucket keys and shapes (the default bucket,
    4, gives provide_data, as MXNet's BucketSentenceIter does)."""
    class BucketIter(mx.io.DataIter):
        def __init__(self):
            super().__init__(3)
            rng = np.random.RandomState(0)
            self.batches = [(rng.uniform(-1, 1, (3, k, 5)).astype(np.float32), rng.randint(0, 3, 3).astype(np.float32))
                            for k in (4, 2, 4, 2, 2)]
            self.default_bucket_key = 4
            self.provide_data = [mx.io.DataDesc("data", (3, 4, 5))]
            self.provide_label = [mx.io.DataDesc("softmax_label", (3,))]
            self.i = 0

        def reset(self):
            self.i = 0

        def next(self):
            if self.i == len(self.batches):
                raise StopIteration
            x, y = self.batches[self.i]
            self.i += 1
            return mx.io.DataBatch([mx.nd.array(x)], [mx.nd.array(y)], pad=0, bucket_key=x.shape[1],
                                   provide_data=[mx.io.DataDesc("data", x.shape)],
                                   provide_label=[mx.io.DataDesc("softmax_label", y.shape)])
    return BucketIter()


def bucketing_fit_score_predict(mx):
    def sym_gen(seq_len):
        fc = mx.sym.FullyConnected(mx.sym.sum(mx.sym.var("data"), axis=1), num_hidden=3, name="fc")
        return mx.sym.SoftmaxOutput(fc, mx.sym.var("softmax_label"), name="softmax"), ("data",), ("softmax_label",)

    mod = mx.mod.BucketingModule(sym_gen, default_bucket_key=4)
    rng = np.random.RandomState(1)
    cap = _capturing()
    try:
        mod.fit(_bucket_iter(mx), num_epoch=3, eval_metric="acc", optimizer_params={"learning_rate": 0.1},
                arg_params={"fc_weight": mx.nd.array(rng.uniform(-.5, .5, (3, 5))), "fc_bias": mx.nd.zeros(3)})
    finally:
        _release(cap)
    return {"params": _params(mod), "log": cap.lines, "score": mod.score(_bucket_iter(mx), "ce"),
            "predict": [[o.asnumpy().tolist() for o in outs]
                        for outs in mod.predict(_bucket_iter(mx), merge_batches=False)]}


SCENARIOS = [fit_mlp_sgd_momentum, fit_mlp_on_two_cpus, fit_mlp_on_three_cpus_update_on_devices,
             fit_adam_with_eval_data_and_roll_over, manual_steps_with_input_grads, predict_forms,
             bucketing_two_keys, bucketing_fit_score_predict]
