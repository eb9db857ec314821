"""ONNX export: every model-zoo network and the three examples' models, exported and run in
onnxruntime, compute what graphc computes; each operator translation, checked alone against
graphc's numpy reference; MXNet 1.9.1's export_model signature (Symbol + params dict, or
-symbol.json + .params paths); dynamic batch; unknown operators refused by name."""
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import graphc as mx  # noqa: E402
from graphc.formats.onnx_export import graph_to_onnx  # noqa: E402
from graphc.gluon.model_zoo import vision  # noqa: E402
from graphc.ops.errors import FormatError  # noqa: E402
from graphc.ops.interpret import interpret  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_onnx(path_or_model, feeds):
    data = path_or_model.SerializeToString() if hasattr(path_or_model, "SerializeToString") else str(path_or_model)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_close(got, want, rtol=1e-4):
    """Elementwise, relative to the output's scale: summation order differs between runtimes."""
    want = np.asarray(want)
    scale = max(float(np.abs(want).max()), 1e-6)
    assert np.abs(want).max() > 0 or np.abs(got).max() == 0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def randomise_statistics(net, rng):
    """BatchNorm statistics and scales away from their initial 0/1, so a wrong translation of
    any of them changes the outputs."""
    for p in net.collect_params().values():
        if p.name.endswith("running_mean") or p.name.endswith("beta"):
            p.set_data(mx.nd.array(rng.uniform(-0.1, 0.1, p.shape)))
        elif p.name.endswith("running_var") or p.name.endswith("gamma"):
            p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))


def export_and_compare(net, inputs, tmp_path, rtol=1e-4):
    net.hybridize()
    outs = net(*[mx.nd.array(x) for x in inputs])
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    path = mx.onnx.export_block(net, tmp_path / "model.onnx")
    onnx.checker.check_model(str(path))
    names = ["data"] if len(inputs) == 1 else [f"data{i}" for i in range(len(inputs))]
    got = run_onnx(path, dict(zip(names, inputs)))
    assert len(got) == len(outs)
    for g, o in zip(got, outs):
        assert_close(g, o.asnumpy(), rtol)
    return path


# -- the model zoo ---------------------------------------------------------------------------------
# input sizes: the smallest each network's fixed pooling windows take
ZOO_SIZE = {"alexnet": 224, "densenet121": 224, "densenet161": 224, "densenet169": 224, "densenet201": 224,
            "squeezenet1.0": 224, "squeezenet1.1": 224, "inceptionv3": 299}
FAST = {"resnet18_v1", "resnet18_v2", "mobilenet0.25", "mobilenetv2_0.25"}


ZOO = [pytest.param(name, marks=[] if name in FAST else [pytest.mark.slow], id=name) for name in sorted(vision._models)]


@pytest.mark.parametrize("name", ZOO)
def test_model_zoo_network_in_onnxruntime_equals_graphc(name, tmp_path):
    rng = np.random.default_rng(0)
    size = ZOO_SIZE.get(name, 32)
    net = vision.get_model(name, classes=10)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net(mx.nd.zeros((1, 3, size, size)))
    randomise_statistics(net, rng)
    export_and_compare(net, [rng.uniform(-1, 1, (2, 3, size, size)).astype(np.float32)], tmp_path)


# -- the examples' models ----------------------------------------------------------------------------
def example(module):
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))


def test_image_classification_example_resnet(tmp_path):
    rng = np.random.default_rng(1)
    net = example("image_classification").resnet(widths=(4, 8, 8))
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net(mx.nd.zeros((1, 1, 16, 16)))
    randomise_statistics(net, rng)
    export_and_compare(net, [rng.uniform(-1, 1, (3, 1, 16, 16)).astype(np.float32)], tmp_path)


def test_mlp_digits_example(tmp_path):
    net = example("mlp_digits").make_net()
    net.initialize(mx.init.Xavier())
    export_and_compare(net, [np.random.default_rng(2).uniform(0, 1, (4, 64)).astype(np.float32)], tmp_path)


def test_language_model_example_lstm_with_states(tmp_path):
    """Embedding -> 2-layer LSTM (packed parameters folded, gates reordered) -> tied decoder."""
    rng = np.random.default_rng(3)
    model = example("nlp_language_model").LanguageModel(40, 12, 12, 2, 0.3, True)
    model.initialize(mx.init.Xavier())
    tokens = rng.integers(0, 40, (6, 3)).astype(np.float32)
    h, c = (rng.normal(0, 0.5, (2, 3, 12)).astype(np.float32) for _ in range(2))
    export_and_compare(model, [tokens, h, c], tmp_path)


@pytest.mark.parametrize("mode, bidirectional", [("gru", True), ("rnn_tanh", False),
                                                  pytest.param("lstm", True, marks=pytest.mark.slow)])
def test_fused_rnn_layers(mode, bidirectional, tmp_path):
    layer = {"gru": mx.gluon.rnn.GRU, "rnn_tanh": mx.gluon.rnn.RNN, "lstm": mx.gluon.rnn.LSTM}[mode]
    net = layer(5, num_layers=2, bidirectional=bidirectional, input_size=4)
    net.initialize(mx.init.Xavier())
    x = np.random.default_rng(4).normal(size=(7, 2, 4)).astype(np.float32)
    export_and_compare(net, [x], tmp_path)


@pytest.mark.parametrize("kind", ["mf", "ncf"])
def test_recommendation_example(kind, tmp_path):
    rng = np.random.default_rng(5)
    rec = example("recommendation")
    net = rec.Recommender(kind, 8, 3.5)
    net.initialize()
    users = rng.integers(0, rec.N_USERS, 6).astype(np.float32)
    items = rng.integers(0, rec.N_ITEMS, 6).astype(np.float32)
    net(mx.nd.array(users), mx.nd.array(items))
    for p in net.collect_params().values():   # biases start at zero: give them values
        p.set_data(mx.nd.array(rng.normal(0, 0.3, p.shape)))
    export_and_compare(net, [users, items], tmp_path)


# -- one operator at a time --------------------------------------------------------------------------
S = mx.sym


def _conv_bn(x):
    y = S.Convolution(x, kernel=(3, 3), num_filter=4, pad=(1, 1), stride=(2, 2), name="c")
    return S.BatchNorm(y, fix_gamma=True, name="bn")


OPERATOR_CASES = {
    "conv_bn_fix_gamma": (_conv_bn, (2, 3, 9, 9)),
    "grouped_dilated_conv": (lambda x: S.Convolution(x, kernel=(3, 3), num_filter=4, num_group=2, dilate=(2, 2),
                                                     no_bias=True, name="c"), (1, 4, 9, 9)),
    "conv1d": (lambda x: S.Convolution(x, kernel=(3,), num_filter=2, pad=(1,), name="c"), (2, 3, 8)),
    "deconvolution": (lambda x: S.Deconvolution(x, kernel=(3, 3), num_filter=2, stride=(2, 2), pad=(1, 1),
                                                adj=(1, 1), name="d"), (1, 3, 5, 5)),
    "max_pool_full": (lambda x: S.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max",
                                          pooling_convention="full"), (1, 2, 8, 8)),
    "avg_pool_full_pad": (lambda x: S.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg",
                                              pooling_convention="full"), (1, 2, 8, 8)),
    "avg_pool_exclude_pad": (lambda x: S.Pooling(x, kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type="avg",
                                                 count_include_pad=False), (1, 2, 6, 6)),
    "sum_pool": (lambda x: S.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="sum"), (1, 2, 6, 6)),
    "global_max_pool": (lambda x: S.Pooling(x, kernel=(1, 1), global_pool=True, pool_type="max"), (2, 3, 5, 4)),
    "fc_no_flatten_3d": (lambda x: S.FullyConnected(x, num_hidden=5, flatten=False, name="fc"), (2, 3, 4)),
    "fc_flatten_4d_no_bias": (lambda x: S.FullyConnected(x, num_hidden=5, no_bias=True, name="fc"), (2, 3, 2, 2)),
    "leaky_prelu_elu_selu_gelu": (lambda x: S.LeakyReLU(x, act_type="leaky", slope=0.2)
                                  + S.LeakyReLU(x, S.var("p_gamma", shape=(3,)), act_type="prelu", name="p")
                                  + S.LeakyReLU(x, act_type="elu", slope=0.7) + S.LeakyReLU(x, act_type="selu")
                                  + S.LeakyReLU(x, act_type="gelu"), (2, 3, 4, 4)),
    "activations": (lambda x: S.Activation(x, act_type="softrelu") * S.Activation(x, act_type="tanh")
                    - S.Activation(x, act_type="softsign") + S.sigmoid(x), (3, 5)),
    "unary_math": (lambda x: S.exp(S.negative(S.abs(x))) + S.sqrt(S.abs(x) + 1) + S.log(S.square(x) + 1)
                   + S.rsqrt(S.abs(x) + 0.5) + S.floor(x) + S.ceil(x) + S.erf(x) + S.reciprocal(S.abs(x) + 1), (3, 4)),
    "scalar_ops": (lambda x: ((2.0 - x) / 3.0 + 1.5) * 2.0 - 4.0 / (S.abs(x) + 1) + S.maximum(x, 0.1)
                   + S.minimum(x, -0.2) + (S.abs(x) + 1) ** 1.5 + 2.0 ** x, (3, 4)),
    "comparisons": (lambda x: (x > 0.1) + (x <= -0.2) + (x == x) + (x != 0.0) + S.broadcast_greater(x, x * 0.5), (4, 3)),
    "softmax_temperature_and_log_softmax": (lambda x: S.softmax(x, axis=1, temperature=2.0)
                                            + S.log_softmax(x, axis=-1), (2, 3, 4)),
    "softmax_output_4d": (lambda x: S.SoftmaxOutput(x, name="sm"), (2, 3, 2, 2)),
    "reshape_codes": (lambda x: S.reshape(S.reshape(x, shape=(0, -3, -2)), shape=(-4, 1, -1, 0, -1)), (2, 3, 4, 5)),
    "transpose_swapaxis": (lambda x: S.transpose(S.SwapAxis(x, dim1=0, dim2=2), axes=(1, 0, 2)), (2, 3, 4)),
    "slices": (lambda x: S.concat(S.slice(x, begin=(None, 1), end=(None, None)),
                                  S.slice_axis(x, axis=1, begin=0, end=-1),
                                  S.slice(x, begin=(None, -2), end=(None, None), step=(None, -1)), dim=0), (2, 4)),
    "split_squeeze_stack": (lambda x: S.stack(*S.split(x, num_outputs=3, axis=1, squeeze_axis=True), axis=2), (2, 3, 4)),
    "expand_squeeze_tile": (lambda x: S.tile(S.squeeze(S.expand_dims(x, axis=1), axis=1), reps=(2, 1, 3)), (2, 3)),
    "broadcasts": (lambda x: S.broadcast_to(S.sum(x, axis=1, keepdims=True), shape=(0, 4))
                   + S.broadcast_axis(S.max(x, axis=0, keepdims=True), axis=0, size=3), (3, 4)),
    "reductions": (lambda x: S.sum(x, axis=(1, 2)) + S.mean(x, axis=2, exclude=True) + S.prod(x, axis=(1, 2))
                   + S.min(x, axis=(1, 2)), (2, 3, 2)),
    "clip_pad_where": (lambda x: S.where(x > 0, S.clip(x, -0.3, 0.4), x * 3)
                       + S.Pad(x, mode="constant", pad_width=(0, 0, 0, 0, 1, 1, 2, 0), constant_value=0.5)
                       .slice(begin=(None, None, 1, 2), end=(None, None, 4, 6)), (1, 2, 3, 4)),
    "reflect_pad": (lambda x: S.Pad(x, mode="reflect", pad_width=(0, 0, 0, 0, 1, 2, 2, 1)), (1, 2, 4, 4)),
    "dot_batch_dot": (lambda x: S.batch_dot(x, S.swapaxes(x, 1, 2)) + S.batch_dot(x, x, transpose_b=True), (2, 3, 4)),
    "dot_transposed": (lambda x: S.dot(x, x, transpose_a=True) + S.dot(x, x, transpose_b=True).sum(), (3, 3)),
    "layer_instance_norm": (lambda x: S.LayerNorm(x, axis=1, name="ln") + S.InstanceNorm(x, name="in"), (2, 3, 4)),
    "add_n_cast": (lambda x: S.Cast(S.add_n(x, x * 2, x * 3), dtype="float64"), (2, 2)),
    "zeros_ones_like": (lambda x: S.ones_like(x) * 2 + S.zeros_like(x) + x, (2, 3)),
    "upsampling_nearest": (lambda x: S.UpSampling(x, scale=2, sample_type="nearest"), (1, 2, 3, 3)),
}


def _check_symbol(out, shapes, rng, positive=False):
    typed = out._bind(shapes)
    arrays = {}
    for n in typed.inputs:
        t = n.types[0]
        arrays[n.name] = (rng.uniform(0.2, 1.5, t.shape) if positive or "var" in n.name
                          else rng.normal(0, 1, t.shape)).astype(t.dtype)
    params = {k: v for k, v in arrays.items() if k not in shapes}
    want = interpret(typed, arrays)
    model = graph_to_onnx(typed, params)
    got = run_onnx(model, {k: arrays[k] for k in shapes})
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert_close(g, w)
    return model


@pytest.mark.parametrize("case", sorted(OPERATOR_CASES))
def test_operator_translation_equals_numpy_reference(case):
    build, shape = OPERATOR_CASES[case]
    _check_symbol(build(S.var("data")), {"data": shape}, np.random.default_rng(len(case)))


def test_embedding_and_take_clip_out_of_range_indices_as_mxnet():
    idx = S.var("data")
    out = S.Embedding(idx, input_dim=6, output_dim=3, name="emb") + S.take(S.var("table"), idx, mode="clip")
    typed = out._bind({"data": (2, 4), "table": (6, 3)})
    rng = np.random.default_rng(9)
    arrays = {"data": np.array([[0, 5, 7, -2], [1.7, 3, 2, 9]], np.float32), "emb_weight": rng.normal(size=(6, 3)).astype(np.float32),
              "table": rng.normal(size=(6, 3)).astype(np.float32)}
    (want,) = interpret(typed, arrays)
    got = run_onnx(graph_to_onnx(typed, {k: v for k, v in arrays.items() if k != "data"}), {"data": arrays["data"]})
    assert_close(got[0], want)


def test_parameters_computed_from_parameters_are_folded_into_initializers():
    w = S.var("w", shape=(2, 6))
    out = S.FullyConnected(S.var("data"), S.reshape(w * 2.0, shape=(4, 3)), num_hidden=4, no_bias=True)
    model = _check_symbol(out, {"data": (2, 3)}, np.random.default_rng(0))
    assert [n.op_type for n in model.graph.node] == ["Gemm"]
    assert [i.name for i in model.graph.input] == ["data"]


# -- MXNet's export_model --------------------------------------------------------------------------------
def _mlp_symbol():
    data = S.var("data")
    h = S.Activation(S.FullyConnected(data, num_hidden=8, name="fc1"), act_type="relu")
    return S.SoftmaxOutput(S.FullyConnected(h, num_hidden=3, name="fc2"), S.var("softmax_label"), name="softmax")


def test_export_model_with_mxnet_signature_leaves_the_label_out(tmp_path):
    sym = _mlp_symbol()
    rng = np.random.default_rng(1)
    shapes = {"fc1_weight": (8, 5), "fc1_bias": (8,), "fc2_weight": (3, 8), "fc2_bias": (3,)}
    arg = {k: mx.nd.array(rng.normal(size=s)) for k, s in shapes.items()}
    path = mx.onnx.export_model(sym, [arg, {}], in_shapes=[(4, 5)], in_types=np.float32,
                                onnx_file_path=str(tmp_path / "mlp.onnx"))
    assert path == str(tmp_path / "mlp.onnx")
    model = onnx.load(path)
    assert [i.name for i in model.graph.input] == ["data"]
    assert [o.name for o in model.graph.output] == ["softmax"]
    x = rng.normal(size=(4, 5)).astype(np.float32)
    want = sym.bind(mx.cpu(), {"data": mx.nd.array(x), "softmax_label": mx.nd.zeros((4,)), **arg},
                    grad_req="null").forward()[0]
    assert_close(run_onnx(path, {"data": x})[0], want.asnumpy())


def test_export_model_from_files_with_old_argument_names(tmp_path):
    rng = np.random.default_rng(2)
    net = vision.get_model("mobilenet0.25", classes=4)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net.hybridize()
    x = rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    net(mx.nd.array(x))
    randomise_statistics(net, rng)
    want = net(mx.nd.array(x)).asnumpy()
    net.export(str(tmp_path / "r18"))
    path = mx.onnx.export_model(str(tmp_path / "r18-symbol.json"), str(tmp_path / "r18-0000.params"),
                                input_shape=[(2, 3, 32, 32)], input_type=np.float32,
                                onnx_file_path=str(tmp_path / "r18.onnx"), run_shape_inference=True)
    assert_close(run_onnx(path, {"data": x})[0], want)


def test_dynamic_batch_runs_at_other_batch_sizes(tmp_path):
    """The recommender reshapes (-1,): with a symbolic batch the target shape is computed at run time."""
    rec = example("recommendation")
    net = rec.Recommender("ncf", 8, 3.5)
    net.initialize(mx.init.Normal(0.3))
    net.hybridize()
    rng = np.random.default_rng(3)

    def batch(n):
        return [rng.integers(0, 100, n).astype(np.float32) for _ in range(2)]
    net(*[mx.nd.array(a) for a in batch(4)])
    path = mx.onnx.export_block(net, tmp_path / "rec.onnx", dynamic=True)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].HasField("dim_value")
    for n in (1, 9):
        users, items = batch(n)
        want = net(mx.nd.array(users), mx.nd.array(items)).asnumpy()
        assert_close(run_onnx(path, {"data0": users, "data1": items})[0], want)


def test_dynamic_reshape_with_special_codes(tmp_path):
    out = S.reshape(S.reshape(S.var("data"), shape=(-3, -2)), shape=(-4, -1, 2, 0, -1))
    sym_shapes = {"data": (4, 3, 2, 5)}
    typed = out._bind(sym_shapes)
    model = graph_to_onnx(typed, {}, dynamic_shapes={"data": (None, 3, 2, None)})
    for shape in [(4, 3, 2, 5), (6, 3, 2, 7)]:
        x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        want = x.reshape(shape[0] * 3, 2, shape[3]).reshape(shape[0] * 3 // 2, 2, 2, -1)
        assert_close(run_onnx(model, {"data": x})[0], want)


def test_unknown_operator_is_refused_naming_it_and_the_node():
    out = S.argsort(S.var("data"), name="my_argsort")
    typed = out._bind({"data": (2, 3)})
    with pytest.raises(FormatError, match=r"argsort.*my_argsort|my_argsort.*argsort"):
        graph_to_onnx(typed, {})


def test_every_translated_operator_is_a_graphc_operator():
    from graphc.formats.onnx_export_table import all_converters
    from graphc.ops.registry import has_op
    assert [op for op in all_converters() if not has_op(op)] == []


MXNET_FIXTURES = Path("/work/shared/fixtures/mxnet")


@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm"])
def test_files_written_by_mxnet_export_and_compute_what_mxnet_computed(name, tmp_path):
    """-symbol.json + .params written by MXNet 1.9.1 (the LSTM's begin state is a `_zeros` node
    folded at export), checked against the outputs MXNet recorded beside them."""
    prefix = MXNET_FIXTURES / name
    if not (MXNET_FIXTURES / f"{name}-io.npz").exists():
        pytest.skip(f"fixture {prefix} is missing")
    io = np.load(MXNET_FIXTURES / f"{name}-io.npz")
    path = mx.onnx.export_model(f"{prefix}-symbol.json", f"{prefix}-0000.params", [io["input0"].shape],
                                np.float32, str(tmp_path / f"{name}.onnx"))
    assert_close(run_onnx(path, {"data": io["input0"].astype(np.float32)})[0], io["output0"])


def test_full_pooling_window_wholly_in_padding_is_refused():
    out = S.Pooling(S.var("data"), kernel=(2, 2), stride=(2, 2), pad=(1, 1), pool_type="max",
                    pooling_convention="full", name="pool")
    with pytest.raises(FormatError, match="pool.*wholly in the padding"):
        graph_to_onnx(out._bind({"data": (1, 1, 5, 5)}), {})
