"""Issue 14, "no host steps": the training programs of the model zoo's networks and of the
examples' models compile completely. A host step (runtime.lower.HostStep) runs an operator's
numpy reference between native segments, and in a training program it costs most of the step
(Dropout was 41% of an MLP's), so the census lists every host step of every target's forward
and backward programs and fails on any operator outside ALLOWED.

ALLOWED is the explicit list of what is not compiled yet, with the reason; an entry no target
needs any more fails test_allowed_host_steps_are_still_needed, so the list only shrinks.
The fast targets (the examples' models, small zoo networks) run by default; the rest of the
zoo is marked slow.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib

import numpy as np
import pytest

from graphc import autograd, gluon, nd
from graphc.gluon import nn
from graphc.gluon.model_zoo import vision
from graphc.runtime.lower import HostStep

# operator -> why it still runs on the host in a training program. Empty: Dropout draws its mask
# in a compiled kernel (runtime/dropout_kernel.py) and passes/expand_rnn.py unrolls a multi-layer
# RNN with dropout in training too (a Dropout node per gap between layers)
ALLOWED: dict = {}

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _example(name):
    """An example module, loaded from its file (the repository root is never on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"graphc_census_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    import sys
    sys.path.insert(0, str(EXAMPLES))       # the examples import their sibling `progress`
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        pytest.skip(f"example {name} needs {exc.name}")
    finally:
        sys.path.remove(str(EXAMPLES))
    return module


def _rng():
    return np.random.default_rng(0)


def _images(n, c, h, w):
    return [nd.array(_rng().standard_normal((n, c, h, w)).astype("float32"))]


def _labels(n, classes):
    return nd.array(_rng().integers(0, classes, n).astype("float32"))


def _classifier(net, inputs, classes=10):
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    y = _labels(inputs[0].shape[0], classes)
    return net, inputs, lambda out: loss(out, y)


# -- targets: () -> (hybrid block, inputs, loss of its first output) ------------------------------
def zoo(name, size):
    def make():
        net = vision.get_model(name, classes=10)
        net.initialize()
        return _classifier(net, _images(2, 3, size, size))
    return make


def mlp_with_dropout():
    net = nn.HybridSequential()
    net.add(nn.Dense(32, activation="relu"), nn.Dropout(0.3), nn.Dense(10))
    net.initialize()
    return _classifier(net, [nd.array(_rng().standard_normal((8, 20)).astype("float32"))])


def common_layers():
    """Layers and operators issue 14's census found on the host: padding, upsampling, tiling,
    broadcasting along axes, inverse trigonometry, sums over axes (broadcast_to in their gradient)."""
    class Net(nn.HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.conv = nn.Conv2D(4, 3)
            self.dense = nn.Dense(10)

        def hybrid_forward(self, F, x):
            y = F.Pad(x, mode="reflect", pad_width=(0, 0, 0, 0, 1, 1, 1, 1))
            y = F.Pad(self.conv(y), mode="edge", pad_width=(0, 0, 0, 0, 2, 0, 0, 2))
            y = F.UpSampling(y, scale=2, sample_type="nearest")
            y = F.arctan(y) + F.arcsin(F.tanh(y) * 0.5) + F.arccos(F.sigmoid(y))
            y = y + F.broadcast_axis(F.sum(y, axis=1, keepdims=True), axis=1, size=4)
            y = F.tile(F.repeat(y, repeats=2, axis=3), reps=(1, 1, 1, 2))
            z = F.Pad(y, mode="constant", pad_width=(0, 0, 0, 0, 1, 1, 1, 1), constant_value=0.5)
            return self.dense(F.slice_like(z, y, axes=(2, 3)))

    net = Net()
    net.initialize()
    return _classifier(net, _images(2, 3, 6, 6))


def sorting_layers():
    """sort, argsort and topk (every ret_typ, both directions, an axis and the flattened input)
    compile to runtime/sort_kernels.py's network; their gradients scatter by position."""
    class Net(nn.HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.dense = nn.Dense(10)

        def hybrid_forward(self, F, x):
            y = F.sort(x, axis=-1) + F.sort(x, axis=1, is_ascend=False)
            vals, idx = F.topk(y, axis=2, k=3, ret_typ="both")
            z = F.topk(y, axis=None, k=5, ret_typ="value", is_ascend=True)
            w = y * F.topk(y, axis=1, k=2, ret_typ="mask") + F.argsort(x, axis=0) * 0.01
            w = w + F.topk(x, axis=-1, k=2, ret_typ="indices", dtype="int32").astype("float32").sum()
            return self.dense(F.concat(F.flatten(vals + idx), F.flatten(w), F.broadcast_to(z.reshape((1, 5)), (2, 5)), dim=1))

    net = Net()
    net.initialize()
    x = _rng().integers(-3, 4, (2, 3, 6)).astype("float32")     # ties: the stable order is checked
    return _classifier(net, [nd.array(x)])


def window_layers():
    """lp pooling (runtime/pool.py; its gradient sum pooling's), Crop and depth_to_space/
    space_to_depth (strided copies), digamma and erfinv (scalar formulas, ops/special_formulas.py),
    GridGenerator (runtime/grid_kernels.py), LRN (runtime/lrn_kernels.py), bilinear UpSampling
    (runtime/upsample_kernels.py)."""
    class Net(nn.HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.conv = nn.Conv2D(8, 3, padding=1)
            self.dense = nn.Dense(10)
            self.loc = nn.Dense(6)

        def hybrid_forward(self, F, x):
            grid = F.GridGenerator(self.loc(x), transform_type="affine", target_shape=(2, 2))
            warp = F.GridGenerator(grid, transform_type="warp")
            y = F.depth_to_space(F.LRN(self.conv(x), nsize=3), block_size=2)  # (2, 2, 12, 12)
            y = y + F.UpSampling(F.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type="max"),
                                 F.ones((2, 1, 4, 4)) * 0.25, scale=2, sample_type="bilinear", num_filter=2)
            y = F.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type="lp", p_value=2) + \
                F.Pooling(y, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="lp", p_value=3)
            y = F.Crop(y, h_w=(4, 4), offset=(1, 1))
            y = F.concat(F.space_to_depth(y, block_size=2),
                         F.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type="lp", p_value=1), grid + warp, dim=1)
            y = F._digamma(F.abs(y) + 1.0) + F.erfinv(F.tanh(y) * 0.5)
            return self.dense(y)

    net = Net()
    net.initialize()
    return _classifier(net, _images(2, 3, 6, 6))


def mlp_digits():
    net = _example("mlp_digits").make_net()
    net.initialize()
    return _classifier(net, [nd.array(_rng().standard_normal((4, 64)).astype("float32"))])


def image_classification_resnet():
    net = _example("image_classification").resnet(widths=(4, 8, 8))
    net.initialize()
    return _classifier(net, _images(2, 1, 8, 8))


def recommendation(kind):
    def make():
        rec = _example("recommendation")
        objective = rec.Objective(rec.Recommender(kind, 4, 3.5), 0.01)
        objective.initialize()
        n = 6
        user = nd.array(_rng().integers(0, rec.N_USERS, n).astype("float32"))
        item = nd.array(_rng().integers(0, rec.N_ITEMS, n).astype("float32"))
        rating = nd.array(_rng().uniform(1, 5, n).astype("float32"))
        return objective, [user, item, rating], lambda out: out.sum()
    return make


def language_model():
    lm = _example("nlp_language_model")
    model = lm.LanguageModel(30, 8, 8, 2, 0.2, tied=True)
    model.initialize()
    tokens = nd.array(_rng().integers(0, 30, (5, 2)).astype("float32"))
    h, c = model.begin_state(2)
    y = _labels(10, 30)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    return model, [tokens, h, c], lambda out: loss(out.reshape((-1, 30)), y)


FAST = {
    "mlp_with_dropout": mlp_with_dropout,
    "common_layers": common_layers,
    "sorting_layers": sorting_layers,
    "window_layers": window_layers,
    "example_mlp_digits": mlp_digits,
    "example_image_classification": image_classification_resnet,
    "example_recommendation_mf": recommendation("mf"),
    "example_recommendation_ncf": recommendation("ncf"),
    "example_language_model": language_model,
    "zoo_resnet18_v1": zoo("resnet18_v1", 32),
}
# one network per zoo family at the smallest input it accepts: the deeper variants repeat the
# same layers (GRAPHC_FULL_CENSUS=1 builds every network of the zoo)
_SIZES = {"inceptionv3": 299, "alexnet": 224, "squeezenet1.0": 224, "squeezenet1.1": 224}
_FAMILIES = ("resnet18_v2", "vgg11_bn", "alexnet", "densenet121", "squeezenet1.1", "inceptionv3", "mobilenet0.25",
             "mobilenetv2_0.25")
SLOW = {f"zoo_{name}": zoo(name, _SIZES.get(name, 224 if name.startswith("densenet") else 32))
        for name in vision._models if f"zoo_{name}" not in FAST
        and (name in _FAMILIES or os.environ.get("GRAPHC_FULL_CENSUS") == "1")}

_FOUND: dict = {}


def host_steps(make) -> dict:
    """{operator: {'forward', 'backward'}} over the host steps of the training programs that
    one hybridized training step of the target compiles."""
    net, inputs, loss_of = make()
    net.hybridize()
    with autograd.record():
        out = net(*inputs)
        loss = loss_of(out[0] if isinstance(out, (list, tuple)) else out)
    loss.backward()
    programs = net._cached_op.last.train
    assert programs, "the hybridized target compiled no training program"
    found: dict = {}
    for forward, backward, *_ in programs.values():
        for where, program in (("forward", forward), ("backward", backward)):
            for step in program.steps:
                if isinstance(step, HostStep):
                    found.setdefault(step.node.op, set()).add(where)
    return found


def _check(name, make):
    found = host_steps(make)
    _FOUND[name] = found
    unexpected = {op: sorted(where) for op, where in found.items() if op not in ALLOWED}
    assert not unexpected, f"{name}: host steps in its training programs: {unexpected}"


@pytest.mark.parametrize("name", sorted(FAST))
def test_training_program_has_no_host_steps(name):
    _check(name, FAST[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_zoo_training_program_has_no_host_steps(name):
    _check(name, SLOW[name])


# targets whose inference program is censused too (the training census compiles only training
# programs; these operators lower the same in both, but an inference program fuses differently)
INFERENCE = ("sorting_layers", "window_layers", "common_layers")


@pytest.mark.parametrize("name", INFERENCE)
def test_inference_program_has_no_host_steps(name):
    net, inputs, _ = FAST[name]()
    net.hybridize()
    net(*inputs)
    program = net._cached_op.last.forward
    program = program[1] if isinstance(program, tuple) else program     # (training flag, program)
    host = sorted({step.node.op for step in program.steps if isinstance(step, HostStep)} - set(ALLOWED))
    assert not host, f"{name}: host steps in its inference program: {host}"


def test_allowed_host_steps_are_still_needed():
    """Runs after the fast census (same module, file order): an allowed operator no target
    runs on the host any more leaves the list."""
    missing = sorted(set(FAST) - set(_FOUND))
    if missing:
        for name in missing:
            _FOUND[name] = host_steps(FAST[name])
    seen = set().union(*_FOUND.values())
    stale = sorted(set(ALLOWED) - seen)
    assert not stale, f"compiled now, remove from ALLOWED: {stale}"
