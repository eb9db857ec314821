"""The same programs for graphc and Apache MXNet 1.9.1 around MXNet 1.x's older module API:
SequentialModule, PythonLossModule, mx.mon.Monitor, the deprecated NumpyOp / NDArrayOp, and
PReLU's gamma in a bound Module. Each scenario takes the framework module and returns JSON-able
answers; record_legacy_module_reference.py writes MXNet's to legacy_module_reference.json."""
import logging
from functools import reduce

import numpy as np


def _xy():
    rs = np.random.RandomState(0)
    x = rs.uniform(-1, 1, (8, 5)).astype("float32")
    return x, (x.sum(axis=1) > 0).astype("float32")


def sequential_module_fit(mx):
    """Two Modules chained (the second takes the labels, auto-wired) trained by hand."""
    x, y = _xy()
    net1 = mx.sym.Activation(mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=6, name="fc1"),
                             act_type="tanh", name="a1")
    net2 = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=2, name="fc2"), name="softmax")
    seq = mx.mod.SequentialModule()
    seq.add(mx.mod.Module(net1, label_names=None)).add(mx.mod.Module(net2), take_labels=True, auto_wiring=True)
    it = mx.io.NDArrayIter(x, y, batch_size=4)
    seq.bind(it.provide_data, it.provide_label)
    rs = np.random.RandomState(1)
    seq.init_params(arg_params={"fc1_weight": mx.nd.array(rs.uniform(-.5, .5, (6, 5))), "fc1_bias": mx.nd.zeros((6,)),
                                "fc2_weight": mx.nd.array(rs.uniform(-.5, .5, (2, 6))), "fc2_bias": mx.nd.zeros((2,))})
    seq.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.5})
    metric = mx.metric.create("acc")
    for _ in range(3):
        it.reset()
        for batch in it:
            seq.forward(batch, is_train=True)
            seq.backward()
            seq.update()
            seq.update_metric(metric, batch.label)
    return {"names": [seq.data_names, seq.output_names], "output_shapes": [list(s) for s in seq.output_shapes],
            "label_shapes": [[d.name, list(d.shape)] for d in seq.label_shapes], "acc": metric.get()[1],
            "params": {k: v.asnumpy().round(5).tolist() for k, v in sorted(seq.get_params()[0].items())},
            "outputs": seq.get_outputs()[0].asnumpy().round(5).tolist()}


def sequential_module_fit_loop(mx):
    """BaseModule.fit drives a SequentialModule (score and predict too)."""
    x, y = _xy()
    net1 = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=4, name="h")
    net2 = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.var("h_output"), num_hidden=2, name="o"), name="softmax")
    seq = mx.mod.SequentialModule()
    seq.add(mx.mod.Module(net1, label_names=None))
    seq.add(mx.mod.Module(net2, data_names=["h_output"]), take_labels=True)
    it = mx.io.NDArrayIter(x, y, batch_size=4)
    rs = np.random.RandomState(2)
    args = {"h_weight": mx.nd.array(rs.uniform(-.5, .5, (4, 5))), "h_bias": mx.nd.zeros((4,)),
            "o_weight": mx.nd.array(rs.uniform(-.5, .5, (2, 4))), "o_bias": mx.nd.zeros((2,))}
    seq.fit(it, num_epoch=2, arg_params=args, optimizer_params={"learning_rate": 0.3})
    score = seq.score(it, "acc")
    pred = seq.predict(it)
    return {"score": [list(s) for s in score], "pred": pred.asnumpy().round(5).tolist(),
            "params": {k: v.asnumpy().round(5).tolist() for k, v in sorted(seq.get_params()[0].items())}}


def python_loss_module(mx):
    """A Module followed by a PythonLossModule whose grad_func is a squared error's gradient."""
    x, y = _xy()
    net = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=1, name="fc3")
    loss = mx.mod.PythonLossModule(grad_func=lambda s, l: (s - l.reshape(s.shape)) * 2)
    seq = mx.mod.SequentialModule()
    seq.add(mx.mod.Module(net, label_names=None)).add(loss, take_labels=True, auto_wiring=True)
    it = mx.io.NDArrayIter(x, y, batch_size=4)
    seq.bind(it.provide_data, it.provide_label)
    rs = np.random.RandomState(3)
    seq.init_params(arg_params={"fc3_weight": mx.nd.array(rs.uniform(-.5, .5, (1, 5))), "fc3_bias": mx.nd.zeros((1,))})
    seq.init_optimizer(optimizer_params={"learning_rate": 0.1})
    for batch in it:
        seq.forward(batch, is_train=True)
        seq.backward()
        seq.update()
    return {"loss_names": [loss.data_names, loss.output_names, [list(s) for s in loss.output_shapes]],
            "params": {k: v.asnumpy().round(5).tolist() for k, v in seq.get_params()[0].items()},
            "grads": loss.get_input_grads()[0].asnumpy().round(5).tolist(),
            "outputs": seq.get_outputs()[0].asnumpy().round(5).tolist()}


def _monitored_module(mx):
    x = mx.sym.Variable("data")
    x = mx.sym.FullyConnected(name="fc_0", data=x, num_hidden=2)
    x = mx.sym.Activation(name="act_0", data=x, act_type="sigmoid")
    x = mx.sym.FullyConnected(name="fc_1", data=x, num_hidden=2)
    x = mx.sym.Activation(name="act_1", data=x, act_type="sigmoid")
    x = mx.sym.LinearRegressionOutput(data=x, name="softmax", grad_scale=2)
    it = mx.io.NDArrayIter(mx.nd.array([[0.05, .10]]), mx.nd.array([[.01, 0.99]]), batch_size=1)
    mod = mx.mod.Module(x, context=[mx.cpu()])
    mod.bind(it.provide_data, label_shapes=it.provide_label, for_training=True)
    return mod, next(iter(it))


def monitor_forward_backward(mx):
    """Monitor(sort=True) over a training step: each op's outputs, each backward node's input
    gradients, the arguments. (MXNet leaves the gradients of data and label, which nobody asked
    for, uncomputed: graphc reports them computed, so they are left out of the comparison.)"""
    def mean_abs(x):
        return mx.nd.divide(mx.nd.sum(mx.nd.abs(x)), reduce(lambda a, b: a * b, x.shape))
    mod, batch = _monitored_module(mx)
    mon = mx.mon.Monitor(1, stat_func=mean_abs, pattern=".*", sort=True)
    mod.install_monitor(mon)
    mod.init_params(arg_params={"fc_0_weight": mx.nd.array([[.15, .20], [.25, .30]]),
                                "fc_0_bias": mx.nd.array([.35, .35]),
                                "fc_1_weight": mx.nd.array([[.40, .45], [.50, .55]]),
                                "fc_1_bias": mx.nd.array([.60, .60])})
    mon.tic()
    mod.forward_backward(batch)
    res = mon.toc()
    unasked = ("fc_0_backward_output0", "softmax_backward_output1")
    names = [k for _, k, _ in res]
    stats = {k: float(v.strip()) for _, k, v in res if k not in unasked}
    # not every `interval` batches: nothing collected
    quiet = mx.mon.Monitor(2, pattern="fc_1.*")
    mod.install_monitor(quiet)
    collected = []
    for _ in range(3):
        quiet.tic()
        mod.forward(batch, is_train=False)
        collected.append([k for _, k, _ in quiet.toc()])
    return {"names": names, "steps": sorted({n for n, _, _ in res}), "stats": stats, "collected": collected}


def monitor_all_callback(mx):
    """Executor.set_monitor_callback(monitor_all=True): variables and each node's inputs too."""
    # (no FullyConnected: MXNet's MKLDNN build fuses it into a node of another name)
    x = mx.sym.SliceChannel(mx.sym.Variable("data"), num_outputs=2, name="sl")
    x = mx.sym.LinearRegressionOutput(data=x[1], name="lro")
    exe = x.simple_bind(mx.cpu(), data=(1, 4), grad_req="null")
    names = []
    exe.set_monitor_callback(lambda n, a: names.append(n if isinstance(n, str) else n.decode()), monitor_all=True)
    exe.forward(is_train=False)
    plain = []
    exe.set_monitor_callback(lambda n, a: plain.append(n if isinstance(n, str) else n.decode()))
    exe.forward(is_train=False)
    return {"all": sorted(names), "plain": plain}


def numpy_op_identity(mx):
    """test_operator.py::test_python_op: NumpyOp's default is the identity."""
    s = mx.operator.NumpyOp().get_symbol(mx.sym.Variable("X"), name="numpy_op")
    x = mx.nd.ones((10,)) * 10
    dx = mx.nd.zeros((10,))
    exe = s.bind(mx.cpu(), args=[x], args_grad={"X": dx})
    exe.forward(is_train=True)
    out = exe.outputs[0].asnumpy().tolist()
    exe.backward(mx.nd.ones((10,)))
    return {"arguments": s.list_arguments(), "outputs": s.list_outputs(), "y": out, "dx": dx.asnumpy().tolist()}


def prelu_module_params(mx):
    """test_init.py: PReLU's gamma is (channels,) and starts at 0.25 unless the variable says."""
    out = {}
    for shape in ((10, 10), (4, 3, 5, 5)):
        sym = mx.sym.LeakyReLU(data=mx.sym.Variable("data"), act_type="prelu", name="prelu")
        mod = mx.mod.Module(sym, label_names=None)
        mod.bind(data_shapes=[("data", shape)])
        mod.init_params()
        out[str(shape)] = {k: [list(v.shape), float(v.asnumpy().mean())] for k, v in mod.get_params()[0].items()}
    gamma = mx.sym.Variable("gamma", init=mx.init.One())
    sym = mx.sym.LeakyReLU(data=mx.sym.Variable("data"), gamma=gamma, act_type="prelu", name="prelu")
    mod = mx.mod.Module(sym, label_names=None)
    mod.bind(data_shapes=[("data", (2, 3))])
    mod.init_params()
    out["own_init"] = {k: v.asnumpy().tolist() for k, v in mod.get_params()[0].items()}
    mod.forward(mx.io.DataBatch([mx.nd.array([[-1., 2., -3.], [4., -5., 6.]])]), is_train=False)
    out["forward"] = mod.get_outputs()[0].asnumpy().tolist()
    return out


SCENARIOS = [sequential_module_fit, sequential_module_fit_loop, python_loss_module, monitor_forward_backward,
             monitor_all_callback, numpy_op_identity, prelu_module_params]

logging.getLogger().setLevel(logging.WARNING)
