"""Cases for gluon.contrib, run alike under Apache MXNet 1.9.1 and graphc:
`python gluon_contrib_cases.py mxnet|graphc [section ...]` prints {section: {case: {name: value}}}
as JSON (sections: nn, rnn, estimator, data). Parameters are set from fixed numpy arrays and
inputs are fixed, so both systems compute on the same numbers. The recorded MXNet answers are
mxnet_gluon_contrib_reference.json; test_contrib_nn/rnn/data.py and test_estimator.py compare
graphc's answers with them, and with live MXNet where its venv exists.

graphc also runs every case hybridized (`hybridize=True`), against the same MXNet answer."""
import json
import os
import re
import sys
import tempfile

import numpy as np


def _data(shape, seed, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _set_params(mx, net, seed):
    """Every parameter (sorted by name) from a fixed uniform draw; returns the sorted names."""
    params = net.collect_params()
    names = sorted(params.keys())
    for i, name in enumerate(names):
        p = params[name]
        value = _data(p.shape, seed + i, -0.5, 0.5)
        if getattr(p, "_stype", "default") == "row_sparse":        # MXNet's SparseEmbedding weight
            value = mx.nd.array(value).tostype("row_sparse")
        p.set_data(value)
    return names


def _dense_grad(mx, grad):
    return grad.tostype("default").asnumpy() if getattr(grad, "stype", "default") != "default" else grad.asnumpy()


def _forward_backward(mx, net, inputs, hybridize, train=True, grad_inputs=True):
    """(outputs, input grads, {param name: grad}) of sum(output * fixed weights) over all outputs."""
    if hybridize:
        net.hybridize()
    xs = [mx.nd.array(a) for a in inputs]
    for x in xs if grad_inputs else ():
        x.attach_grad()
    with mx.autograd.record(train_mode=train):
        out = net(*xs)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        total = None
        for k, y in enumerate(outs):
            w = mx.nd.array(np.linspace(0.5, 1.5, int(np.prod(y.shape))).reshape(y.shape).astype(np.float32) + k)
            term = (y * w).sum()
            total = term if total is None else total + term
    total.backward()
    params = net.collect_params()
    grads = {n: _dense_grad(mx, params[n].grad()) for n in sorted(params.keys()) if params[n].grad_req != "null"}
    return [y.asnumpy() for y in outs], [x.grad.asnumpy() for x in xs if grad_inputs], grads


def _case(mx, make, inputs, seed, hybridize, train=True, with_trainer=False, grad_inputs=True):
    with mx.name.NameManager():
        net = make()
    net.initialize()
    names = _set_params(mx, net, seed)
    if with_trainer:        # MXNet's SparseEmbedding reads its rows through the Trainer
        mx.gluon.Trainer(net.collect_params(), "sgd")
    outs, in_grads, grads = _forward_backward(mx, net, inputs, hybridize, train, grad_inputs)
    result = {f"out{i}": o for i, o in enumerate(outs)}
    result.update({f"dx{i}": g for i, g in enumerate(in_grads)})
    result.update({f"d_{n}": g for n, g in grads.items()})
    result["names"] = names
    return result, net


# -- contrib.nn ------------------------------------------------------------------------------------


def _contrib(mx):
    return mx.gluon.contrib


def nn_section(mx, hybridize=False):
    cnn, gnn, out = _contrib(mx).nn, mx.gluon.nn, {}
    for dims, factor in ((1, 2), (2, (2, 3)), (3, (2, 1, 3))):
        shape = (2, 12, 3, 2, 2)[:dims + 2]
        layer = getattr(cnn, f"PixelShuffle{dims}D")
        out[f"pixel_shuffle_{dims}d"], net = _case(mx, lambda: layer(factor), [_data(shape, dims)], 0, hybridize)
        out[f"pixel_shuffle_{dims}d"]["repr"] = repr(net)

    def concurrent(cls):
        def make():
            net = cls(axis=1)
            with net.name_scope():
                net.add(gnn.Dense(3, in_units=4), gnn.Dense(2, activation="relu", in_units=4), cnn.Identity())
            return net
        return make
    out["hybrid_concurrent"], _ = _case(mx, concurrent(cnn.HybridConcurrent), [_data((2, 4), 5)], 10, hybridize)
    if not hybridize:
        out["concurrent"], _ = _case(mx, concurrent(cnn.Concurrent), [_data((2, 4), 6)], 20, False)
        emb, net = _case(mx, lambda: cnn.SparseEmbedding(6, 3), [np.array([[1, 4], [4, 0]], np.float32)], 30, False,
                         with_trainer=True, grad_inputs=False)
        emb["repr"] = repr(net)
        out["sparse_embedding"] = emb

    def sync_bn():
        return cnn.SyncBatchNorm(in_channels=3, num_devices=1, momentum=0.8)
    result, net = _case(mx, sync_bn, [_data((4, 3, 2, 2), 7)], 40, hybridize)
    result["running_mean"] = net.running_mean.data().asnumpy()
    result["running_var"] = net.running_var.data().asnumpy()
    result["repr"] = repr(net)
    out["sync_batch_norm_one_device"] = result
    if not hybridize:
        out["sync_batch_norm_two_devices"] = _sync_bn_two_devices(mx, scale=True)
        out["sync_batch_norm_two_devices_fixed_gamma"] = _sync_bn_two_devices(mx, scale=False)
    return out


def _sync_bn_two_devices(mx, scale):
    """MXNet's SyncBatchNorm on cpu(0) and cpu(1): statistics over both halves of the batch."""
    ctxs = [mx.cpu(0), mx.cpu(1)]
    # a key of its own: MXNet's barrier state is per key, and the one-device case used syncbatchnorm0_
    net = _contrib(mx).nn.SyncBatchNorm(in_channels=3, num_devices=2, momentum=0.7, scale=scale,
                                        prefix=f"syncbn_two_{scale}_")
    net.initialize(ctx=ctxs)
    net.gamma.set_data(mx.nd.array(_data((3,), 50, 0.5, 1.5)))
    net.beta.set_data(mx.nd.array(_data((3,), 51)))
    x = _data((4, 3, 2, 3), 52, -2, 3)
    parts = mx.gluon.utils.split_and_load(mx.nd.array(x), ctxs)
    for p in parts:
        p.attach_grad()
    w = np.linspace(0.5, 1.5, x.size // 2).reshape((2,) + x.shape[1:]).astype(np.float32)
    with mx.autograd.record():
        ys = [net(p) for p in parts]
        losses = [(y * mx.nd.array(w, ctx=y.context)).sum() for y in ys]
    for loss in losses:
        loss.backward()
    result = {"out": np.concatenate([y.asnumpy() for y in ys]), "dx": np.concatenate([p.grad.asnumpy() for p in parts])}
    for k, ctx in enumerate(ctxs):
        result[f"running_mean{k}"] = net.running_mean.data(ctx).asnumpy()
        result[f"running_var{k}"] = net.running_var.data(ctx).asnumpy()
        if scale:                      # scale=False: gamma is fixed at 1 and has no gradient
            result[f"dgamma{k}"] = net.gamma.grad(ctx).asnumpy()
        result[f"dbeta{k}"] = net.beta.grad(ctx).asnumpy()
    return result


# -- contrib.rnn -----------------------------------------------------------------------------------
class _Unrolled:
    """A cell unrolled over a whole sequence, as one callable for _case."""

    def __init__(self, mx, cell, length, layout="NTC"):
        self.cell, self.length, self.layout, self.mx = cell, length, layout, mx

    def __getattr__(self, name):
        return getattr(self.cell, name)

    def __call__(self, x):
        outputs, states = self.cell.unroll(self.length, x, layout=self.layout, merge_outputs=True)
        return [outputs] + list(states)


# hybridized, each rank and each kind once: compiling all nine unrolled cells takes ~10 s
_HYBRIDIZED_CONV_CELLS = {(1, "RNN"), (2, "LSTM"), (3, "GRU")}


def rnn_section(mx, hybridize=False):
    crnn, out = _contrib(mx).rnn, {}
    shapes = {1: (2, 5), 2: (2, 4, 3), 3: (2, 3, 3, 2)}
    for dims, in_shape in shapes.items():
        for kind in ("RNN", "LSTM", "GRU"):
            if hybridize and (dims, kind) not in _HYBRIDIZED_CONV_CELLS:
                continue
            cls = getattr(crnn, f"Conv{dims}D{kind}Cell")
            x = _data((2, 3) + in_shape, 60 + dims)            # (batch, time, C, spatial...)

            def make():
                return cls(in_shape, 2, i2h_kernel=3, h2h_kernel=3, i2h_pad=1)
            result, cell = _case(mx, lambda: _Unrolled(mx, make(), 3), [x], 70 + dims, hybridize)
            result["repr"] = repr(cell.cell)
            result["prefix"] = cell.cell.prefix
            out[f"conv{dims}d_{kind.lower()}"] = result

    def lstmp():
        return _Unrolled(mx, crnn.LSTMPCell(5, 3, input_size=4), 4)
    result, cell = _case(mx, lstmp, [_data((2, 4, 4), 80)], 81, hybridize)
    result["repr"] = repr(cell.cell)
    out["lstmp"] = result

    def vardrop():
        base = mx.gluon.rnn.LSTMCell(3, input_size=4)
        return _Unrolled(mx, crnn.VariationalDropoutCell(base, drop_inputs=0.5, drop_states=0.5, drop_outputs=0.5), 3)
    result, cell = _case(mx, vardrop, [_data((2, 3, 4), 90)], 91, hybridize, train=False)
    result["repr"] = repr(cell.cell)
    result["prefix"] = cell.cell.prefix
    out["variational_dropout_inference"] = result
    result, _ = _case(mx, lambda: _dynamic_unroll_block(mx), [_data((5, 4, 2), 92), np.array([5, 2, 3, 1], np.float32)],
                      93, hybridize)
    result.pop("dx1")                  # valid_length: no gradient
    out["dynamic_unroll_valid_length"] = result
    return out


def _dynamic_unroll_block(mx):
    """A GRU cell run by contrib.rnn.rnn_cell.dynamic_unroll over (time, batch=4, 2) inputs."""
    dynamic_unroll = _contrib(mx).rnn.rnn_cell.dynamic_unroll

    class DynamicUnroll(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.cell = mx.gluon.rnn.GRUCell(3, input_size=2)

        def hybrid_forward(self, F, x, valid_length):
            states = self.cell.begin_state(batch_size=4, func=F.zeros)
            outputs, states = dynamic_unroll(self.cell, x, states, layout="TNC", valid_length=valid_length)
            return [outputs] + list(states)
    return DynamicUnroll()


# -- contrib.estimator -----------------------------------------------------------------------------
def _loader(mx, n, seed, batch_size):
    x = _data((n, 4), seed)
    y = (np.arange(n) % 3).astype(np.float32)
    return mx.gluon.data.DataLoader(mx.gluon.data.ArrayDataset(x, y), batch_size=batch_size)


def _estimator(mx, hybridize, lr=0.2, **kwargs):
    est_mod = _contrib(mx).estimator
    with mx.name.NameManager():
        net = mx.gluon.nn.HybridSequential()
        with net.name_scope():
            net.add(mx.gluon.nn.Dense(5, activation="tanh", in_units=4), mx.gluon.nn.Dense(3, in_units=5))
    net.initialize()
    _set_params(mx, net, 100)
    if hybridize:
        net.hybridize()
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": lr, "momentum": 0.5})
    est = est_mod.Estimator(net, mx.gluon.loss.SoftmaxCrossEntropyLoss(), trainer=trainer, **kwargs)
    return est, net



def _recorder(mx, priority, log):
    ev = _contrib(mx).estimator.event_handler

    class Recorder(ev.TrainBegin, ev.EpochBegin, ev.BatchEnd, ev.EpochEnd, ev.TrainEnd):
        def __init__(self):
            self.priority = priority

        def train_begin(self, estimator, *a, **k):
            log.append(f"train_begin@{priority}")

        def epoch_begin(self, estimator, *a, **k):
            log.append(f"epoch_begin@{priority}")

        def batch_end(self, estimator, *a, **k):
            metric = estimator.train_metrics[-1]
            log.append(f"batch_end@{priority}:updates={metric.num_inst}")
            return False

        def epoch_end(self, estimator, *a, **k):
            log.append(f"epoch_end@{priority}")
            return False

        def train_end(self, estimator, *a, **k):
            log.append(f"train_end@{priority}")
    return Recorder()


class _LogCapture:
    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines.extend(line for line in text.splitlines() if line.strip())

    def flush(self):
        pass


def _masked(lines):
    """Log lines with the timings (which differ run to run) replaced by '#'."""
    return [re.sub(r"\d+\.\d+s|\d+s with", "#", line) for line in lines]


def estimator_section(mx, hybridize=False):
    import logging
    import warnings
    est_mod, out = _contrib(mx).estimator, {}
    warnings.simplefilter("ignore")

    est, net = _estimator(mx, hybridize)
    capture = _LogCapture()
    est.logger.handlers = [logging.StreamHandler(capture)]
    log = []
    handlers = [_recorder(mx, p, log) for p in (-3000, -1500, 0, 10 ** 6)]
    handlers.append(est_mod.LoggingHandler(log_interval=2, metrics=est.train_metrics))
    est.fit(_loader(mx, 12, 1, 4), val_data=_loader(mx, 6, 2, 3), epochs=2, event_handlers=handlers)
    params = net.collect_params()
    out["fit_epochs"] = {"weights": [params[n].data().asnumpy() for n in sorted(params.keys())],
                         "train": [list(m.get()) for m in est.train_metrics],
                         "val": [list(m.get()) for m in est.val_metrics], "calls": log,
                         "log": _masked(capture.lines)}

    est, net = _estimator(mx, hybridize, lr=0.5)
    capture = _LogCapture()
    est.logger.handlers = [logging.StreamHandler(capture)]
    stopper = est_mod.EarlyStoppingHandler(monitor=est.train_metrics[-1], mode="max", patience=1)
    est.fit(_loader(mx, 12, 3, 4), epochs=6, event_handlers=[stopper])
    out["early_stopping"] = {"stopped_epoch": [stopper.stopped_epoch], "epochs_run": [stopper.current_epoch],
                             "log": _masked(capture.lines)}

    est, net = _estimator(mx, hybridize)
    with tempfile.TemporaryDirectory() as model_dir:
        ckpt = est_mod.CheckpointHandler(model_dir, model_prefix="m", epoch_period=1, batch_period=2,
                                         max_checkpoints=3, monitor=est.train_metrics[0], save_best=True, mode="max")
        est.logger.handlers = []
        est.fit(_loader(mx, 12, 4, 4), batches=7, event_handlers=[ckpt])
        out["checkpoints"] = {"files": sorted(os.listdir(model_dir))}

    est, net = _estimator(mx, hybridize)
    est.logger.handlers = []
    est.evaluate(_loader(mx, 9, 5, 4))
    out["evaluate"] = {"val": [list(m.get()) for m in est.val_metrics]}
    return out


# -- contrib.data ----------------------------------------------------------------------------------
def data_section(mx, hybridize=False):
    cdata, out = _contrib(mx).data, {}
    out["interval_sampler"] = {f"{n}_{i}_{r}": list(cdata.IntervalSampler(n, i, rollover=r))
                               for n, i, r in ((10, 3, True), (10, 3, False), (7, 7, True), (12, 4, True),
                                               (5, 1, False))}
    text = ("\n = Valkyria Chronicles = \n\n Senjō no Valkyria 3 : the game , the game and more . \n"
            " The game began development in 2010 , carrying over a large portion . \n\n"
            " It met with positive sales in Japan , and the game was praised . \n")
    with tempfile.TemporaryDirectory() as root:
        for name in ("wiki.train.tokens", "wiki.valid.tokens"):
            with open(os.path.join(root, name), "w", encoding="utf8") as f:
                f.write(text if "train" in name else " the game began in Japan with praise . \n")
        train = cdata.text.WikiText2(root=root, segment="train", seq_len=5)
        valid = cdata.text.WikiText2(root=root, segment="validation", vocab=train.vocabulary, seq_len=4)
        out["wikitext2"] = {"len": [len(train), len(valid)], "data0": train[0][0].asnumpy(),
                            "label0": train[0][1].asnumpy(), "last": train[len(train) - 1][0].asnumpy(),
                            "valid": valid[0][0].asnumpy(), "tokens": train.vocabulary.idx_to_token,
                            "dtype": [str(train[0][0].dtype)]}
    return out


SECTIONS = {"nn": nn_section, "rnn": rnn_section, "estimator": estimator_section, "data": data_section}


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.astype(np.float64).tolist() if value.dtype.kind == "f" else value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def run(mx, sections, hybridize=False):
    return {s: _jsonable(SECTIONS[s](mx, hybridize)) for s in sections}


def _mxnet_without_downloads():
    """MXNet re-downloads WikiText when a file's SHA-1 differs from the release's; the cases
    write their own small files, so take them as they are."""
    import mxnet as mx
    from mxnet.gluon.contrib.data import text
    text.check_sha1 = lambda *args: True
    return mx


def main(argv):
    """`mxnet|graphc [section ...]`: {"eager": {section: answers}, "hybridized": {...}}."""
    system, names = argv[0], argv[1:] or list(SECTIONS)
    if system == "mxnet":
        module = _mxnet_without_downloads()
    else:
        import graphc as module
    return {mode: run(module, names, hybridize=(mode == "hybridized")) for mode in MODES}


MODES = ("eager", "hybridized")

if __name__ == "__main__":
    json.dump(main(sys.argv[1:]), sys.stdout)


# -- what the test files share ---------------------------------------------------------------------
HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "mxnet_gluon_contrib_reference.json")
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON",
                              os.path.join(HERE, "..", "..", "bench", ".venvs", "mxnet", "bin", "python"))
HAVE_MXNET = os.path.exists(MXNET_PYTHON)


def recorded(section):
    """{mode: {case: answers}} of one section, as MXNet 1.9.1 gave them when recorded."""
    with open(REFERENCE) as f:
        doc = json.load(f)
    return {mode: doc[mode][section] for mode in MODES}


def recorded_cases(section):
    """(mode, case) pairs of a section, for pytest.mark.parametrize."""
    return [(mode, case) for mode, cases in recorded(section).items() for case in sorted(cases)]


_GRAPHC = {}


def graphc_answers(section, mode):
    """graphc's answers (computed once per process and mode)."""
    key = (section, mode)
    if key not in _GRAPHC:
        import graphc
        _GRAPHC[key] = _jsonable(SECTIONS[section](graphc, mode == "hybridized"))
    return _GRAPHC[key]


def live_mxnet(section):
    """MXNet 1.9.1's answers now, from its venv (a subprocess)."""
    import subprocess
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "gluon_contrib_cases.py"), "mxnet", section],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    return {mode: doc[mode][section] for mode in MODES}


def assert_same(where, ours, theirs, rtol=1e-4, atol=1e-5):
    """Recursive comparison: strings and keys exactly, numbers to rtol/atol."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and sorted(ours) == sorted(theirs), \
            f"{where}: keys {sorted(ours) if isinstance(ours, dict) else type(ours)} vs {sorted(theirs)}"
        for key in theirs:
            assert_same(f"{where}.{key}", ours[key], theirs[key], rtol, atol)
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), \
            f"{where}: {len(ours) if isinstance(ours, list) else ours!r} items vs {len(theirs)}"
        if theirs and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in theirs):
            np.testing.assert_allclose(np.asarray(ours, np.float64), np.asarray(theirs, np.float64), rtol=rtol,
                                       atol=atol, err_msg=where)
        else:
            for i, (a, b) in enumerate(zip(ours, theirs)):
                assert_same(f"{where}[{i}]", a, b, rtol, atol)
    elif isinstance(theirs, (int, float)) and not isinstance(theirs, bool):
        np.testing.assert_allclose(float(ours), float(theirs), rtol=rtol, atol=atol, err_msg=where)
    else:
        assert ours == theirs, f"{where}: graphc {ours!r}, MXNet {theirs!r}"
