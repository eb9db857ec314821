"""Gluon behaviours MXNet 1.x's own unit tests rely on, as cases run alike under Apache MXNet 1.9.1
and graphc: `python gluon_v1_cases.py mxnet|graphc` prints {case: answer} as JSON. Each case
takes the framework module (`mx`) and a scratch directory and returns plain JSON values, so
test_gluon_v1_compat.py can compare graphc's answers with the recorded MXNet ones, and with
live MXNet where its venv exists."""
import json
import os
import sys
import tempfile
import warnings

import numpy as np


def load_dtype_source(mx, tmp):
    """A second load with dtype_source='saved' recasts already-held arrays to the file's dtype."""
    path = os.path.join(tmp, "dtypes.params")
    src = mx.gluon.ParameterDict("")
    src.get("w0", shape=(2, 3), dtype="float32")
    src.get("w1", shape=(2, 3), dtype="int8")
    src.initialize(mx.init.One(), ctx=mx.cpu())
    src.save(path)
    dst = mx.gluon.ParameterDict("")
    dst.get("w0", shape=(2, 3), dtype="float16")
    dst.get("w1", shape=(2, 3), dtype="float64")
    dst.load(path, cast_dtype=True, dtype_source="current")
    current = [np.dtype(dst[k].data().dtype).name for k in ("w0", "w1")]
    dst.load(path, cast_dtype=True, dtype_source="saved")
    saved = [np.dtype(dst[k].data().dtype).name for k in ("w0", "w1")]
    return {"current": current, "saved": saved, "dtype_is_np_float32": bool(dst["w0"].dtype == np.float32),
            "values": dst["w1"].data().asnumpy().tolist()}


def dense_load_parameters_dtype_saved(mx, tmp):
    """load_parameters(cast_dtype=True, dtype_source='saved') takes the file's float16."""
    path = os.path.join(tmp, "dense16.params")
    net = mx.gluon.nn.Dense(2, in_units=3)
    net.initialize(mx.init.Constant(0.5))
    net.cast("float16")
    net.save_parameters(path)
    net.cast("float32")
    net.load_parameters(path, cast_dtype=True, dtype_source="saved")
    return {"is_float16": bool(net.weight.dtype == np.float16), "data": np.dtype(net.weight.data().dtype).name}


def trainer_reset_kvstore_on_load(mx, tmp):
    """Loading parameters while the store updates them drops the store; the next step starts
    from the loaded values (two devices, so the store exists)."""
    path = os.path.join(tmp, "reset.params")
    out = {}
    for kind in ("local", "device"):
        params = mx.gluon.ParameterDict()
        x = params.get("x", shape=(4,), lr_mult=1.0)
        params.initialize(ctx=[mx.cpu(0), mx.cpu(1)], init="zeros")
        trainer = mx.gluon.Trainer(params, "sgd", {"learning_rate": 0.1}, kvstore=kind)
        params.save(path)
        for _ in range(2):
            with mx.autograd.record():
                for w in x.list_data():
                    (w + 1).backward()
            trainer.step(1)
            if _ == 0:
                before = [trainer._kvstore is None, trainer._kv_initialized]
                params.load(path)
                after = [trainer._kvstore is None, trainer._kv_initialized]
        out[kind] = {"before": before, "after": after, "weights": x.data(mx.cpu(1)).asnumpy().tolist()}
    return out


def sparse_grad_update_on_kvstore(mx, tmp):
    """Dense weight with row_sparse gradient on two devices: updated locally unless asked."""
    out = {}
    for wanted in (None, True, False):
        x = mx.gluon.Parameter("x", shape=(4, 1), grad_stype="row_sparse")
        x.initialize(ctx=[mx.cpu(0), mx.cpu(1)], init="zeros")
        trainer = mx.gluon.Trainer([x], "sgd", {"learning_rate": 0.1}, kvstore="device",
                                   update_on_kvstore=wanted)
        trainer._init_kvstore()
        out[str(wanted)] = bool(trainer._update_on_kvstore)
    return out


def block_on_free_symbol(mx, tmp):
    """A Sequential with deferred shapes builds a graph on mx.sym.var('data'); shapes come from
    infer_shape later."""
    nn = mx.gluon.nn
    model = nn.HybridSequential(prefix="m_")
    with model.name_scope():
        model.add(nn.Dense(8, activation="tanh"), nn.Dense(4, in_units=8))
    model.initialize()
    y = model(mx.sym.var("data"))
    args, outs, _ = y.infer_shape(data=(5, 3))
    return {"arguments": y.list_arguments(), "arg_shapes": [list(s) for s in args],
            "out_shapes": [list(s) for s in outs]}


def symbol_block_on_free_symbol(mx, tmp):
    """SymbolBlock called on a symbol composes its graph onto it."""
    nn = mx.gluon.nn
    model = nn.HybridSequential(prefix="s_")
    with model.name_scope():
        model.add(nn.Dense(6, activation="relu"), nn.Dense(2))
    model.initialize()
    inputs = mx.sym.var("data")
    internals = model(inputs).get_internals()
    smodel = mx.gluon.SymbolBlock(internals, inputs, params=model.collect_params())
    out = smodel(mx.sym.var("other"))
    return {"n_outputs": len(out), "n_expected": len(internals.list_outputs()),
            "n_ndarray_outputs": len(smodel(mx.nd.zeros((3, 4))))}


def symbol_block_refuses_row_sparse(mx, tmp):
    data = mx.sym.var("data")
    weight = mx.sym.var("weight", stype="row_sparse")
    out = mx.sym.broadcast_add(mx.sym.dot(data, weight), mx.sym.var("bias"))
    try:
        mx.gluon.SymbolBlock(out, data)
    except AssertionError as exc:
        return {"raised": "AssertionError", "names_weight": "'weight'" in str(exc)}
    return {"raised": None}


def op_names_under_block_scope(mx, tmp):
    """Unnamed operators in hybrid_forward take the block's prefix, counted per call; a child
    made with prefix='' counts on in its parent's scope."""
    class Inner(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.Activation(x + 1, act_type="relu")

    class Outer(mx.gluon.HybridBlock):
        def __init__(self, **kwargs):
            super(Outer, self).__init__(**kwargs)
            with self.name_scope():
                self.a = Inner(prefix="")
                self.b = Inner(prefix="")
                self.c = Inner()

        def hybrid_forward(self, F, x):
            return F.Activation(self.c(self.b(self.a(x))), act_type="tanh")

    net = Outer(prefix="outer_")
    outs = net(mx.sym.var("data")).get_internals().list_outputs()
    return [name for name in outs if "activation" in name]


def dataloader_pin_memory(mx, tmp):
    data = mx.gluon.data.ArrayDataset(np.arange(12, dtype="float32").reshape(6, 2))
    plain = [str(b.context) for b in mx.gluon.data.DataLoader(data, 4)]
    pinned = [str(b.context) for b in mx.gluon.data.DataLoader(data, 4, pin_memory=True)]
    pinned1 = [str(b.context) for b in mx.gluon.data.DataLoader(data, 4, pin_memory=True, pin_device_id=1)]
    values = [b.asnumpy().tolist() for b in mx.gluon.data.DataLoader(data, 4, pin_memory=True)]
    return {"plain": plain, "pinned": pinned, "pinned1": pinned1, "values": values}


def conv_rnn_cell_infers_channels(mx, tmp):
    """input_shape (0, 7): the first input gives the channel count of i2h_weight."""
    cell = mx.gluon.contrib.rnn.Conv1DLSTMCell((0, 7), 10, (3,), (3,))
    cell.initialize()
    x = mx.nd.ones((8, 3, 5, 7))
    out, _ = cell.unroll(3, x, merge_outputs=True)
    return {"i2h_weight": list(cell.i2h_weight.shape), "out": list(out.shape)}


def estimator_unavailable_gpu(mx, tmp):
    from importlib import import_module
    est_mod = import_module(mx.__name__ + ".gluon.contrib.estimator")
    net = mx.gluon.nn.Sequential()
    net.add(mx.gluon.nn.Dense(2))
    answers = {}
    for label, ctx in (("unavailable_gpu", [mx.gpu(100)]), ("not_a_context", "cpu")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est_mod.Estimator(net=net, loss=mx.gluon.loss.L2Loss(), context=ctx)
            answers[label] = None
        except (AssertionError, ValueError) as exc:
            answers[label] = type(exc).__name__
    return answers


def sparse_adagrad_epsilon(mx, tmp):
    """AdaGrad on a row_sparse gradient keeps epsilon inside the square root (tiny gradients show
    it); rows the gradient lacks stay as they were."""
    w = mx.nd.array(np.ones((3, 3), dtype="float32"))
    g = mx.nd.array(np.array([[1e-4, 2e-4, 3e-4], [0, 0, 0], [0.5, -1, 2]], dtype="float32")).tostype("row_sparse")
    opt = mx.optimizer.AdaGrad(learning_rate=0.1, eps=1e-7)
    state = opt.create_state(0, w)
    opt.update(0, w, g, state)
    opt.update(0, w, g, state)
    return w.asnumpy().round(6).tolist()


def row_sparse_weight_updates(mx, tmp):
    """An optimizer stepping a row_sparse weight (as a Trainer's row_sparse_pull hands it) with
    a row_sparse gradient: lazily (only the gradient's rows) or as the standard dense rule."""
    out = {}
    for lazy in (True, False):
        for name, kwargs in (("sgd", {"momentum": 0.9, "wd": 0.1}), ("adam", {"wd": 0.1})):
            w = mx.nd.array(np.arange(8, dtype="float32").reshape(4, 2) / 8).tostype("row_sparse")
            g = mx.nd.array(np.array([[1, 2], [0, 0], [0, 0], [-3, 4]], dtype="float32")).tostype("row_sparse")
            opt = mx.optimizer.create(name, learning_rate=0.1, lazy_update=lazy, **kwargs)
            state = opt.create_state_multi_precision(0, w)
            for _ in range(2):
                opt.update_multi_precision(0, w, g, state)
            out[f"{name}_lazy{lazy}"] = {"stype": w.stype, "w": w.asnumpy().round(6).tolist()}
    return out


def summary_inputs_and_hybridized(mx, tmp):
    """summary() takes nested inputs (an RNN layer's begin states) and refuses a hybridized block."""
    import contextlib
    import io
    lstm = mx.gluon.rnn.LSTM(4)
    lstm.initialize()
    with contextlib.redirect_stdout(io.StringIO()) as text:
        lstm.summary(mx.nd.ones((3, 2, 5)), lstm.begin_state(2))
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(3))
    net.initialize()
    net.hybridize()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            net.summary(mx.nd.ones((2, 4)))
        refused = None
    except AssertionError as exc:
        refused = "hybridized" in str(exc)
    return {"printed_output_shape": "(3, 2, 4)" in text.getvalue(), "hybridized_refused": refused,
            "hooks_left": len(net._forward_hooks) + sum(len(c._forward_hooks) for c in net._children.values())}


def block_save_load(mx, tmp):
    """Block.save/load: a rebuilt model whose automatic names counted on (dense2, not dense0)
    takes the saved names back, so a parent keying children by name finds its parameters."""
    class Keyed(mx.gluon.nn.Block):
        def add(self, block):
            self._children[block.name + str(len(self._children))] = block

        def forward(self, x):
            for block in self._children.values():
                x = block(x)
            return x

    def build():
        inner = Keyed()
        inner.add(mx.gluon.nn.Dense(3))
        net = Keyed()
        net.add(inner)
        net.add(mx.gluon.nn.Dense(2))
        return net

    prefix = os.path.join(tmp, "model")
    with mx.name.NameManager():
        net1 = build()
        net1.initialize(mx.init.Normal(0.5))
        net1.hybridize()
        x = mx.nd.array(np.arange(8, dtype="float32").reshape(2, 4) / 8)
        out1 = net1(x).asnumpy()
        net1.save(prefix)
        net2 = build()
        before = list(net2._children.keys())
        net2.load(prefix)
        out2 = net2(x).asnumpy()
    with open(prefix + "-model.json") as fp:
        saved = json.load(fp)
    return {"same_output": bool(np.allclose(out1, out2)), "keys_before": before,
            "keys_after": list(net2._children.keys()), "names_after": [c.name for c in net2._children.values()],
            "json_top": sorted(saved), "json_children": saved["keyed0"]["children"]}


CASES = [load_dtype_source, dense_load_parameters_dtype_saved, trainer_reset_kvstore_on_load,
         sparse_grad_update_on_kvstore, block_on_free_symbol, symbol_block_on_free_symbol,
         symbol_block_refuses_row_sparse, op_names_under_block_scope, dataloader_pin_memory,
         conv_rnn_cell_infers_channels, estimator_unavailable_gpu, sparse_adagrad_epsilon,
         row_sparse_weight_updates, summary_inputs_and_hybridized, block_save_load]


def answers(mx):
    """{case name: answer}, each case in a fresh scratch directory."""
    out = {}
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            out[case.__name__] = case(mx, tmp)
    return out


if __name__ == "__main__":
    import importlib
    framework = importlib.import_module("mxnet" if sys.argv[1] == "mxnet" else "graphc")
    print(json.dumps(answers(framework), sort_keys=True))
