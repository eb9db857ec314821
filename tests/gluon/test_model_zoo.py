"""gluon.model_zoo.vision: every network MXNet 1.9 names builds, runs, traces and compiles to
what it computes eagerly; parameter names are MXNet's (so its files load); export/imports and
save/load round trips; pretrained weights from local files only.

Cost: every network runs eagerly and traced (the graph interpreted on the numpy references) at
its smallest valid input (about 90 CPU-seconds in all), and eagerly and compiled through LLVM
(all 34: about 2.1 CPU-minutes measured, eager runs included; densenet161/169/201 and inceptionv3
5-8 CPU-seconds each, most others 1-3), so every network is compiled in the default run.
"""
import numpy as np
import pytest

import graphc as mx
from graphc import gluon, nd
from graphc.gluon.model_zoo import vision
from graphc.gluon.model_zoo import model_store
from graphc.ops import has_op
from graphc.ops.errors import GraphcError

_ZOO_OPS = ("Convolution", "Pooling", "BatchNorm")
_missing = [op for op in _ZOO_OPS if not has_op(op)]
needs_ops = pytest.mark.skipif(bool(_missing), reason=f"operator(s) {_missing} not registered yet")

# name -> smallest input side the network accepts (MXNet's structure fixes these: five 2x2 pools
# for VGG, three 3x3/2 pools after an 11x11/4 conv for AlexNet (63), a final 7x7 (DenseNet),
# 13x13 (SqueezeNet) or 8x8 (Inception) average pool over a 32x-downsampled map)
SIZES = {**{f"resnet{n}_v{v}": 32 for n in (18, 34, 50, 101, 152) for v in (1, 2)},
         **{f"vgg{n}{bn}": 32 for n in (11, 13, 16, 19) for bn in ("", "_bn")},
         "alexnet": 63,
         **{f"densenet{n}": 224 for n in (121, 161, 169, 201)},
         "squeezenet1.0": 224, "squeezenet1.1": 224, "inceptionv3": 299,
         **{f"mobilenet{m}": 32 for m in ("1.0", "0.75", "0.5", "0.25")},
         **{f"mobilenetv2_{m}": 32 for m in ("1.0", "0.75", "0.5", "0.25")}}

SLOW = {"resnet101_v1", "resnet101_v2", "resnet152_v1", "resnet152_v2", "densenet161", "densenet169",
        "densenet201", "inceptionv3", "vgg19", "vgg19_bn"}


def _params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


def _input(size, seed=0):
    return nd.array(np.random.default_rng(seed).normal(size=(1, 3, size, size)).astype(np.float32))


def _init(net):
    """He-style init keeps activations O(1) through deep nets (the default Uniform(0.07) fades
    them towards 0, which would make compiled == eager comparisons vacuous)."""
    net.initialize(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))


def _close(got, want, what):
    scale = max(float(np.abs(want).max()), 1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


# -- names -------------------------------------------------------------------------------------------
def test_get_model_accepts_every_mxnet_name():
    assert set(SIZES) == set(vision._models)
    for name in SIZES:
        net = vision.get_model(name, classes=7)
        assert isinstance(net, gluon.HybridBlock), name
    assert type(vision.get_model("ResNet18_V1")).__name__ == "ResNetV1"


def test_unknown_model_lists_the_options():
    with pytest.raises(ValueError, match=r"resnet18_v2(.|\n)*squeezenet1\.1"):
        vision.get_model("resnet19_v1")


def test_constructor_functions_exist_as_in_mxnet():
    for fn in ("resnet18_v1", "resnet152_v2", "vgg11_bn", "alexnet", "densenet201", "squeezenet1_0",
               "squeezenet1_1", "inception_v3", "mobilenet1_0", "mobilenet0_25", "mobilenet_v2_1_0",
               "mobilenet_v2_0_25", "get_resnet", "get_vgg", "get_mobilenet", "get_mobilenet_v2"):
        assert callable(getattr(vision, fn)), fn
    assert type(vision.resnet50_v2()).__name__ == "ResNetV2"
    assert type(vision.get_resnet(1, 34)).__name__ == "ResNetV1"


def _named(net):
    return {k: v.shape for k, v in net.collect_params().items()}


def test_resnet_parameter_names_are_mxnets():
    with mx.name.NameManager():
        v1 = vision.resnet18_v1()
        v2 = vision.resnet50_v2()
        b1 = vision.resnet50_v1()
    names = _named(v1)
    assert names["resnetv10_conv0_weight"] == (64, 0, 7, 7)    # in_channels inferred
    assert names["resnetv10_stage1_conv0_weight"] == (64, 64, 3, 3)
    assert names["resnetv10_stage2_conv2_weight"] == (128, 64, 1, 1)          # the downsample shortcut
    assert names["resnetv10_dense0_weight"] == (1000, 512)
    assert {"resnetv10_stage4_batchnorm4_running_mean", "resnetv10_batchnorm0_gamma"} <= set(names)
    assert "resnetv10_conv0_bias" not in names
    assert list(v1._collect_params_with_prefix())[:2] == ["features.0.weight", "features.1.gamma"]
    assert "features.5.0.downsample.0.weight" in v1._collect_params_with_prefix()
    assert "features.4.1.body.4.running_var" in v1._collect_params_with_prefix()
    # V1 bottlenecks: the first 1x1 has a bias (MXNet's quirk); V2's pre-activation BN first
    assert "resnetv11_stage1_conv0_bias" in _named(b1)
    assert next(iter(_named(v2))) == "resnetv20_batchnorm0_gamma"
    assert v2.features[0].gamma.grad_req == "null" and v2.features[0].beta.grad_req == "null"
    assert "features.5.2.conv3.weight" in v2._collect_params_with_prefix()


def test_other_networks_parameter_names_are_mxnets():
    with mx.name.NameManager():
        nets = {n: vision.get_model(n) for n in ("inceptionv3", "densenet121", "squeezenet1.0", "vgg16",
                                                 "alexnet", "mobilenet1.0", "mobilenetv2_1.0")}
    inc = _named(nets["inceptionv3"])
    assert inc["inception30_conv0_weight"] == (32, 0, 3, 3)
    assert inc["inception30_A1_conv0_weight"][0] == 64
    assert inc["inception30_C1_conv2_weight"] == (128, 0, 1, 7)
    assert inc["inception30_E2_conv8_weight"][0] == 192 and "inception30_E2_conv9_weight" not in inc
    assert inc["inception30_E1_batchnorm0_running_var"] == (0,)
    dn = _named(nets["densenet121"])
    assert dn["densenet0_stage1_conv0_weight"][0] == 128
    assert dn["densenet0_conv1_weight"][0] == 128                       # first transition
    assert "densenet0_stage4_conv31_weight" in dn and "densenet0_stage4_conv32_weight" not in dn
    sq = _named(nets["squeezenet1.0"])
    assert sq["squeezenet0_conv0_weight"][0] == 96 and sq["squeezenet0_conv25_weight"][0] == 1000
    vgg = _named(nets["vgg16"])
    assert vgg["vgg0_conv12_weight"] == (512, 0, 3, 3) and vgg["vgg0_dense2_weight"][0] == 1000
    ax = _named(nets["alexnet"])
    assert ax["alexnet0_conv0_weight"] == (64, 0, 11, 11) and "alexnet0_dense2_bias" in ax
    mb = _named(nets["mobilenet1.0"])
    assert mb["mobilenet0_conv26_weight"] == (1024, 0, 1, 1) and "mobilenet0_conv27_weight" not in mb
    assert mb["mobilenet0_conv1_weight"] == (32, 0, 3, 3)               # depthwise: one input channel per group
    m2 = _named(nets["mobilenetv2_1.0"])
    assert m2["mobilenetv20_features_conv0_weight"][0] == 32
    assert "mobilenetv20_features_linearbottleneck16_conv2_weight" in m2
    assert m2["mobilenetv20_output_pred_weight"][0] == 1000
    assert "mobilenetv20_output_pred_bias" not in m2


def test_classes_and_thumbnail_options():
    net = vision.resnet18_v1(classes=10, thumbnail=True)
    assert net.features[0].weight.shape == (64, 0, 3, 3) and net.output.weight.shape == (10, 512)
    assert vision.squeezenet1_1(classes=5).output[0]._channels == 5


# -- forward, traced, compiled ----------------------------------------------------------------------------
@needs_ops
@pytest.mark.parametrize("name", _params(sorted(SIZES)))
def test_network_runs_and_traced_graph_matches_eager(name):
    size = SIZES[name]
    net = vision.get_model(name, classes=10)
    _init(net)
    x = _input(size)
    eager = net(x).asnumpy()
    assert eager.shape == (1, 10) and np.isfinite(eager).all()
    assert np.abs(eager).max() > 1e-3, "activations vanished: the comparison below would be vacuous"
    net.hybridize(backend="numpy")
    _close(net(x).asnumpy(), eager, f"{name}: traced graph (numpy interpreter) vs eager")


@needs_ops
@pytest.mark.parametrize("name", _params(sorted(SIZES)))
def test_compiled_network_matches_eager(name, tmp_path):
    size = SIZES[name]
    net = vision.get_model(name, classes=10)
    _init(net)
    x = _input(size)
    eager = net(x).asnumpy()
    net.hybridize()
    compiled = net(x).asnumpy()
    _close(compiled, eager, f"{name}: compiled vs eager")
    if name == "resnet18_v1":
        # export -> SymbolBlock.imports gives the same outputs, with MXNet's prefixed names
        path = str(tmp_path / "resnet18_v1")
        net.export(path)
        from graphc.formats.mxnet_params import load_params
        saved = load_params(path + "-0000.params")
        assert f"arg:{net.prefix}conv0_weight" in saved
        assert f"aux:{net.prefix}batchnorm0_running_mean" in saved
        imported = gluon.SymbolBlock.imports(path + "-symbol.json", ["data"], path + "-0000.params")
        _close(imported(x).asnumpy(), compiled, "resnet18_v1: SymbolBlock.imports vs the exported block")


# -- parameters in and out --------------------------------------------------------------------------------
@needs_ops
def test_save_and_load_parameters_round_trip(tmp_path):
    net = vision.mobilenet_v2_0_25(classes=10)
    _init(net)
    x = _input(32)
    want = net(x).asnumpy()
    path = str(tmp_path / "m.params")
    net.save_parameters(path)
    from graphc.formats.mxnet_params import load_params
    keys = list(load_params(path))
    assert keys[0] == "features.0.weight" and "output.0.weight" in keys
    other = vision.mobilenet_v2_0_25(classes=10)
    other.load_parameters(path)
    # (eager operators switch to compiled kernels after a few calls: the last bit may differ)
    np.testing.assert_allclose(other(x).asnumpy(), want, rtol=1e-6, atol=1e-7)


@needs_ops
def test_mxnet_prefixed_parameter_files_load_too(tmp_path):
    """Older MXNet files name parameters by prefix (`save_params`): load_parameters maps them."""
    net = vision.squeezenet1_1(classes=4)
    _init(net)
    x = _input(224)
    want = net(x).asnumpy()
    path = str(tmp_path / "sq.params")
    net.collect_params().save(path, strip_prefix=net.prefix)
    other = vision.squeezenet1_1(classes=4)
    other.load_parameters(path)
    # (eager operators switch to compiled kernels after a few calls: the last bit may differ)
    np.testing.assert_allclose(other(x).asnumpy(), want, rtol=1e-6, atol=1e-7)


# -- pretrained ---------------------------------------------------------------------------------------------
def test_pretrained_without_a_file_says_which_file_to_put_where(tmp_path):
    with pytest.raises(GraphcError) as info:
        vision.resnet18_v1(pretrained=True, root=str(tmp_path))
    msg = str(info.value)
    assert "resnet18_v1-e54b379f.params" in msg and str(tmp_path) in msg and "download" in msg


def test_model_store_finds_mxnet_and_other_file_names(tmp_path):
    (tmp_path / "vgg11_bn-ee79a809.params").write_bytes(b"")
    with pytest.raises(Exception, match="vgg11-dd221b16.params"):
        model_store.get_model_file("vgg11", root=str(tmp_path))     # vgg11_bn is another model
    (tmp_path / "vgg11-mine.params").write_bytes(b"")
    assert model_store.get_model_file("vgg11", root=str(tmp_path)).endswith("vgg11-mine.params")
    (tmp_path / "vgg11-dd221b16.params").write_bytes(b"")
    assert model_store.get_model_file("vgg11", root=str(tmp_path)).endswith("vgg11-dd221b16.params")
    assert model_store.get_model_file("vgg11_bn", root=str(tmp_path)).endswith("vgg11_bn-ee79a809.params")


def test_model_store_root_defaults_to_mxnet_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    with pytest.raises(Exception, match=str(tmp_path / "models")):
        model_store.get_model_file("alexnet")


@needs_ops
def test_pretrained_loads_a_structural_params_file(tmp_path):
    net = vision.mobilenet0_25(classes=3)
    _init(net)
    x = _input(32)
    want = net(x).asnumpy()
    net.save_parameters(str(tmp_path / "mobilenet0.25-9f83e440.params"))
    loaded = vision.get_model("mobilenet0.25", classes=3, pretrained=True, root=str(tmp_path))
    np.testing.assert_array_equal(loaded(x).asnumpy(), want)
