"""Model parallelism on real models (issue 9): ResNet-18 (BatchNorm in training mode) and the
LSTM language model of examples/nlp_language_model.py, split over 2 and 3 CPU devices, by
children initialised on different contexts and by mx.AttrScope(ctx_group) + group2ctx. The
partitioned net must compute what the same net computes on one device: forward, every
parameter gradient and several SGD-momentum steps (BatchNorm's moving statistics included),
with `_CrossDeviceCopy` only at the cut edges."""
import importlib.util
import pathlib

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon
from graphc.gluon.model_zoo import vision
from graphc.passes.partition import COPY, node_device

RTOL, ATOL = 1e-5, 1e-6
EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _load_language_model():
    spec = importlib.util.spec_from_file_location("graphc_example_nlp_language_model",
                                                  EXAMPLES / "nlp_language_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_same(got, want, what):
    assert len(got) == len(want), what
    for k, (a, b) in enumerate(zip(got, want)):
        if isinstance(a, dict):
            assert a.keys() == b.keys(), what
            for name in a:
                np.testing.assert_allclose(a[name], b[name], rtol=RTOL, atol=ATOL, err_msg=f"{what}: {name}")
        else:
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"{what} [{k}]")


def _by_name(net, values):
    """{parameter name without the net's prefix ('resnetv10_'): values(p)}: two instances of
    a model differ by their prefix, and a SymbolBlock lists its parameters in graph order."""
    return {p.name.split("_", 1)[1]: values(p) for p in net.collect_params().values() if values(p) is not None}


def _copies(graph):
    """(source device, destination device) of every copy in a placed graph, sorted."""
    return sorted((node_device(n.inputs[0].node), n.attrs["device"]) for n in graph.nodes if n.op == COPY)


def _placed(net, training):
    """The placed forward graph of the last call, and for training the placed backward."""
    mp = net._cached_op.last.model_parallel
    if not training:
        return mp.forward[False][0]
    (fwd, bwd, _, _), = mp.train.values()
    return fwd.graph, bwd.graph


def _train(net, x, y, loss_fn, steps=3):
    """Per step: the loss and every trainable parameter's gradient; then every parameter's
    value (BatchNorm's moving statistics too)."""
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    record = []
    for _ in range(steps):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(x.shape[0])
        record.append([loss.asnumpy(), _by_name(net, lambda p: None if p.grad_req == "null"
                                                else p.grad(p.list_ctx()[0]).asnumpy())])
    record.append([_by_name(net, lambda p: p.data(p.list_ctx()[0]).asnumpy())])
    return record


# -- ResNet-18 --------------------------------------------------------------------------------
# ResNetV1's children, in order: the features (conv, BatchNorm, relu, max-pool, stage1-4,
# global pooling), then the output Dense; stage k takes children [start_k, start_{k+1})
STAGE_STARTS = {2: (0, 6), 3: (0, 5, 7)}


def _stage_of(devices, index):
    return sum(index >= s for s in STAGE_STARTS[devices]) - 1


def _resnet18(x, devices=None, how=None):
    """ResNet-18 v1 for 10 classes, its parameters the same whatever the split: placed by
    `how` = 'ctx' (each stage's children moved to cpu(k)) or 'group' (a SymbolBlock of the
    same layers built under AttrScope(ctx_group=...), hybridized with group2ctx)."""
    net = vision.resnet18_v1(classes=10)
    mx.random.seed(7)
    net.initialize(mx.init.Xavier())
    net(x)                                  # (deferred initialisation, on cpu(0))
    children = list(net.features) + [net.output]
    if how == "ctx":
        for i, child in enumerate(children):
            child.collect_params().reset_ctx(mx.cpu(_stage_of(devices, i)))
    elif how == "group":
        data = h = mx.sym.var("data")
        for i, child in enumerate(children):
            with mx.AttrScope(ctx_group=f"stage{_stage_of(devices, i)}"):
                h = child(h)
        net = gluon.SymbolBlock(h, data, params=net.collect_params())
        net.hybridize(group2ctx={f"stage{k}": mx.cpu(k) for k in range(devices)})
        return net
    net.hybridize()
    return net


@pytest.mark.parametrize("devices, how", [pytest.param(2, "ctx", marks=pytest.mark.slow),
                                          pytest.param(3, "ctx", marks=pytest.mark.slow),
                                          pytest.param(2, "group", marks=pytest.mark.slow), (3, "group")])
def test_resnet18_partitioned_matches_one_device(devices, how):
    rng = np.random.default_rng(0)
    x = mx.nd.array(rng.standard_normal((2, 3, 32, 32)))
    y = mx.nd.array(rng.integers(0, 10, 2))
    ref, net = _resnet18(x), _resnet18(x, devices, how)
    out = net(x)
    assert out.context == mx.cpu(devices - 1)
    _assert_same([out.asnumpy()], [ref(x).asnumpy()], "inference forward")
    # one copy per cut, each from a stage to the next
    hops = [(f"cpu({k})", f"cpu({k + 1})") for k in range(devices - 1)]
    assert _copies(_placed(net, False)) == hops
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    got, want = _train(net, x, y, loss_fn), _train(ref, x, y, loss_fn)
    for step, (g, w) in enumerate(zip(got, want)):
        _assert_same(g, w, f"step {step}" if step < len(got) - 1 else "parameters and moving statistics")
    fwd, bwd = _placed(net, True)
    assert _copies(fwd) == hops
    assert _copies(bwd) == sorted((b, a) for a, b in hops)     # each cut's gradient, back
    for p in net.collect_params().values():
        if p.grad_req != "null":
            assert p.grad(p.list_ctx()[0]).context == p.list_ctx()[0]


# -- LSTM language model ------------------------------------------------------------------------
VOCAB, EMBED, STEPS, BATCH = 40, 12, 5, 3


def _language_model(lm, how=None, devices=3, tied=False):
    """examples/nlp_language_model.py's model (2-layer LSTM, no dropout: the streams of random
    masks are not the same once split), split between embedding / LSTM / decoder: by the
    children's contexts ('ctx') or by ctx_groups in hybrid_forward ('group'). On 2 devices
    the LSTM stays with the embedding."""
    lstm_dev = 1 if devices == 3 else 0

    class Grouped(lm.LanguageModel):
        def hybrid_forward(self, F, tokens, h, c):
            with mx.AttrScope(ctx_group="embed"):
                e = self.drop(self.embedding(tokens))
            with mx.AttrScope(ctx_group="lstm"):
                out, (h, c) = self.lstm(e, [h, c])
            with mx.AttrScope(ctx_group="decode"):
                return self.decoder(self.drop(out)), h, c

    net = (Grouped if how == "group" else lm.LanguageModel)(VOCAB, EMBED, EMBED, 2, 0.0, tied)
    mx.random.seed(3)
    net.initialize(mx.init.Xavier())
    if how == "ctx":
        for child, k in ((net.embedding, 0), (net.lstm, lstm_dev), (net.decoder, devices - 1)):
            if not (tied and child is net.decoder):        # (a tied decoder reads the embedding's)
                child.collect_params().reset_ctx(mx.cpu(k))
    flags = {}
    if how == "group":
        flags["group2ctx"] = {"embed": mx.cpu(0), "lstm": mx.cpu(lstm_dev), "decode": mx.cpu(devices - 1)}
    net.hybridize(**flags)
    return net


def _lm_training(lm, net, x, y, h, c, steps=3):
    """The example's own truncated-BPTT step (clip_global_norm over gradients that live on
    different devices, then SGD with momentum): per step the loss, the carried state and
    every gradient; then the parameters."""
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5, "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    params = [p for p in net.collect_params().values() if p.grad_req != "null"]
    record = []
    for _ in range(steps):
        loss, h, c = lm.train_step(net, trainer, loss_fn, params, x, y, h, c, 0.25)
        record.append([loss.asnumpy(), h.asnumpy(), c.asnumpy(),
                       _by_name(net, lambda p: p.grad(p.list_ctx()[0]).asnumpy())])
    record.append([_by_name(net, lambda p: p.data(p.list_ctx()[0]).asnumpy())])
    return record


def _check_language_model(how, devices, tied):
    lm = _load_language_model()
    rng = np.random.default_rng(0)
    x = mx.nd.array(rng.integers(0, VOCAB, (STEPS, BATCH)))
    y = mx.nd.array(rng.integers(0, VOCAB, (STEPS, BATCH)))
    ref, net = _language_model(lm, tied=tied), _language_model(lm, how, devices, tied)
    h = mx.nd.array(rng.standard_normal((2, BATCH, EMBED)) * 0.5)
    c = mx.nd.array(rng.standard_normal((2, BATCH, EMBED)) * 0.5)
    got, want = net(x, h, c), ref(x, h, c)
    last, lstm_dev = f"cpu({devices - 1})", "cpu(1)" if devices == 3 else "cpu(0)"
    assert [str(o.context) for o in got] == [last, lstm_dev, lstm_dev]    # scores; the LSTM's state
    _assert_same([o.asnumpy() for o in got], [o.asnumpy() for o in want], "forward (scores, h, c)")
    # the copies: the embedding's output and the two input states into the LSTM, its output
    # into the decoder (and a tied decoder's weight from the embedding's device)
    into_lstm = [("cpu(0)", lstm_dev)] * 3 if lstm_dev != "cpu(0)" else []
    want_copies = sorted(into_lstm + [(lstm_dev, last)] + ([("cpu(0)", last)] if tied and how == "group" else []))
    assert _copies(_placed(net, False)) == want_copies
    _assert_same_steps(_lm_training(lm, net, x, y, h, c), _lm_training(lm, ref, x, y, h, c))
    fwd, bwd = _placed(net, True)
    assert _copies(fwd) == want_copies
    # a gradient flows back over each cut a differentiable value crossed: not the two input
    # states (the embedding's output is the third copy into the LSTM)
    differentiable = list(want_copies)
    for cut in into_lstm[1:]:
        differentiable.remove(cut)
    assert _copies(bwd) == sorted((b, a) for a, b in differentiable)


def _assert_same_steps(got, want):
    for step, (g, w) in enumerate(zip(got, want)):
        _assert_same(g, w, f"step {step}" if step < len(got) - 1 else "parameters")


def test_language_model_over_three_devices_by_child_contexts():
    _check_language_model("ctx", 3, tied=False)


@pytest.mark.parametrize("devices, tied", [pytest.param(3, False, marks=pytest.mark.slow),
                                           pytest.param(2, True, marks=pytest.mark.slow), (3, True)])
def test_language_model_by_ctx_group(devices, tied):
    _check_language_model("group", devices, tied)


@pytest.mark.slow
def test_language_model_over_two_devices_by_child_contexts():
    _check_language_model("ctx", 2, tied=False)
