"""ONNX import: files written by a different exporter (PyTorch's torch.onnx.export; see
fixtures_onnx/make_fixtures.py) load into graphc and compute what PyTorch computed; the
MXNet-style API returns a Symbol with arg/aux params or a SymbolBlock; symbolic shapes, unknown
operators and geometry graphc cannot express are refused with the node named; graphc's own
exports come back unchanged."""
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import graphc as mx  # noqa: E402
from graphc.formats.onnx_import import import_onnx  # noqa: E402
from graphc.ops.errors import FormatError  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures_onnx"


def fixture(name):
    path = FIXTURES / f"torch_{name}.onnx"
    arrays = np.load(FIXTURES / f"torch_{name}.npz")
    inputs = {k[3:]: arrays[k] for k in arrays.files if k.startswith("in_")}
    outputs = [arrays[f"out_{i}"] for i in range(sum(k.startswith("out_") for k in arrays.files))]
    return str(path), inputs, outputs


def assert_close(got, want, rtol=1e-4):
    scale = max(float(np.abs(want).max()), 1e-6)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def run_block(block, inputs):
    outs = block(*[mx.nd.array(x) for x in inputs.values()])
    return [o.asnumpy() for o in (outs if isinstance(outs, (list, tuple)) else [outs])]


@pytest.mark.parametrize("name", ["mlp", "resnet18_narrow", "misc"])
def test_pytorch_export_imports_to_gluon_and_matches_pytorch(name):
    path, inputs, outputs = fixture(name)
    block = mx.onnx.import_to_gluon(path)
    got = run_block(block, inputs)
    assert len(got) == len(outputs)
    for g, w in zip(got, outputs):
        assert_close(g, w)


def test_pytorch_cnn_with_batchnorm_and_shape_arithmetic_needs_fixed_input_shapes():
    path, inputs, outputs = fixture("cnn")
    with pytest.raises(FormatError, match=r"Shape.*symbolic.*input_shapes"):
        mx.onnx.import_to_gluon(path)
    block = mx.onnx.import_to_gluon(path, input_shapes={"input0": inputs["input0"].shape})
    assert_close(run_block(block, inputs)[0], outputs[0])


def test_import_model_returns_symbol_and_mxnet_style_params():
    path, inputs, outputs = fixture("cnn")
    sym, arg_params, aux_params = mx.onnx.import_model(path, input_shapes={"input0": (2, 3, 14, 14)})
    assert sorted(sym.list_auxiliary_states()) == sorted(aux_params) and len(aux_params) == 2   # BN mean, var
    assert set(sym.list_arguments()) == set(arg_params) | {"input0"}
    assert all(isinstance(v, mx.nd.NDArray) for v in arg_params.values())
    exe = sym.bind(mx.cpu(), {"input0": mx.nd.array(inputs["input0"]), **arg_params}, grad_req="null",
                   aux_states=aux_params)
    assert_close(exe.forward()[0].asnumpy(), outputs[0])


def test_dynamic_batch_model_runs_at_another_batch_size():
    """The MLP's batch is symbolic in the file: the imported block takes any batch, and agrees
    with onnxruntime on the same file."""
    path, _, _ = fixture("mlp")
    block = mx.onnx.import_to_gluon(path)
    x = np.random.default_rng(0).normal(size=(7, 20)).astype(np.float32)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input0": x})[0]
    assert_close(block(mx.nd.array(x)).asnumpy(), want)


def test_get_model_metadata_names_symbolic_dimensions():
    path, _, _ = fixture("cnn")
    meta = mx.onnx.get_model_metadata(path)
    assert meta == {"input_tensor_data": [("input0", ("batch", 3, 14, 14))],
                    "output_tensor_data": [("output0", ("batch", 10))]}


def test_graphc_export_imports_back_to_the_same_function(tmp_path):
    rng = np.random.default_rng(4)
    net = mx.gluon.model_zoo.vision.get_model("mobilenetv2_0.25", classes=5)
    net.initialize(mx.init.Xavier(magnitude=2.0))
    net.hybridize()
    x = rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    want = net(mx.nd.array(x)).asnumpy()
    path = mx.onnx.export_block(net, tmp_path / "m.onnx")
    back = mx.onnx.import_to_gluon(str(path))
    assert_close(back(mx.nd.array(x)).asnumpy(), want)


# -- hand-written models: refusals and opset spellings ------------------------------------------------
def make_model(nodes, inputs, outputs, initializers=(), opset=13):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_unknown_operator_is_refused_naming_operator_and_node():
    model = make_model([helper.make_node("Hardmax", ["x"], ["y"], name="the_hardmax")], [f32("x", [2, 3])],
                       [f32("y", [2, 3])])
    with pytest.raises(FormatError, match=r"the_hardmax.*Hardmax.*no translation"):
        import_onnx(model)


def test_other_operator_domains_are_refused():
    node = helper.make_node("Relu", ["x"], ["y"], name="custom_relu", domain="com.example")
    model = make_model([node], [f32("x", [2])], [f32("y", [2])])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(FormatError, match="custom_relu.*com.example"):
        import_onnx(model)


def test_asymmetric_convolution_padding_is_refused():
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[0, 0, 1, 1])
    model = make_model([node], [f32("x", [1, 1, 5, 5])], [f32("y", [1, 2, 4, 4])], [w])
    with pytest.raises(FormatError, match="conv.*asymmetric pads"):
        import_onnx(model)


def test_not_an_onnx_file_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\xffnot protobuf at all")
    with pytest.raises(FormatError, match="bad.onnx"):
        import_onnx(str(bad))


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_axes_as_attribute_or_input_by_opset(opset):
    """Unsqueeze/ReduceMean/Squeeze take axes as an attribute before opsets 13/18, as an input after."""
    rng = np.random.default_rng(opset)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    inits, nodes = [], []

    def with_axes(op, ins, out, axes, input_from):
        if opset >= input_from:
            inits.append(numpy_helper.from_array(np.asarray(axes, np.int64), f"{out}_axes"))
            return helper.make_node(op, ins + [f"{out}_axes"], [out], **({"keepdims": 0} if op.startswith("Reduce") else {}))
        return helper.make_node(op, ins, [out], axes=axes, **({"keepdims": 0} if op.startswith("Reduce") else {}))
    nodes.append(with_axes("Unsqueeze", ["x"], "u", [0, 3], 13))          # (1, 2, 3, 1)
    nodes.append(with_axes("ReduceMean", ["u"], "m", [2], 18))            # (1, 2, 1)
    nodes.append(with_axes("Squeeze", ["m"], "s", [0, 2], 13))            # (2,)
    nodes.append(helper.make_node("Softmax", ["u"], ["p"], axis=2))       # over axis 2 (and 3 before 13)
    model = make_model(nodes, [f32("x", [2, 3])], [f32("s", [2]), f32("p", [1, 2, 3, 1])], inits, opset)
    imported = import_onnx(model)
    from graphc.ops.interpret import interpret
    got = interpret(imported.graph, {"x": x, **imported.arg_params})
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for g, w in zip(got, want):
        assert_close(g, w)


def test_gemm_variants_and_constant_folded_shape_chain():
    """Gemm with alpha/beta and a (1, n) bias, Gemm with an untransposed weight, and a
    Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain that folds to a constant shape."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=(3, 4)).astype(np.float32)
    inits = [numpy_helper.from_array(rng.normal(size=(5, 4)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=(1, 5)).astype(np.float32), "c"),
             numpy_helper.from_array(rng.normal(size=(5, 2)).astype(np.float32), "v"),
             numpy_helper.from_array(np.array([0], np.int64), "ax")]
    nodes = [helper.make_node("Gemm", ["a", "w", "c"], ["g"], alpha=0.5, beta=2.0, transB=1),
             helper.make_node("Shape", ["g"], ["sh"]),
             helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64))),
             helper.make_node("Gather", ["sh", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
             helper.make_node("Constant", [], ["minus1"], value=numpy_helper.from_array(np.array([-1], np.int64))),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["g", "target"], ["r"]),
             helper.make_node("Gemm", ["r", "v"], ["h"])]
    model = make_model(nodes, [f32("a", [3, 4])], [f32("h", [3, 2])], inits)
    imported = import_onnx(model)
    assert "Shape" not in str(imported.graph) and "Gather" not in str(imported.graph)
    block = mx.onnx.import_to_gluon(model)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"a": a})[0]
    assert_close(block(mx.nd.array(a)).asnumpy(), want)


@pytest.mark.parametrize("name", ["resnet18_narrow", "misc"])
def test_imported_pytorch_model_exports_again_and_runs_in_onnxruntime(name):
    """PyTorch's file -> graphc graph -> graphc's ONNX export: still PyTorch's outputs."""
    from graphc.formats.onnx_export import graph_to_onnx
    path, inputs, outputs = fixture(name)
    model = import_onnx(path)
    exported = graph_to_onnx(model.graph, {**model.arg_params, **model.aux_params})
    session = ort.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, inputs)
    for g, w in zip(got, outputs):
        assert_close(g, w)


def _max_pool_model(size, pads, ceil_mode):
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2], pads=pads,
                            ceil_mode=ceil_mode)
    return make_model([node], [f32("x", [1, 1] + size)], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])


@pytest.mark.parametrize("size, pads", [([5, 5], [1, 1, 1, 1]), ([6, 6], [0, 0, 0, 0]), ([7, 7], [1, 1, 1, 1])])
def test_ceil_mode_pooling_gets_onnxruntime_windows(size, pads):
    """ONNX drops a last window that starts in the end padding (5 + pad 1, stride 2), which
    MXNet's 'full' convention keeps: that axis imports as 'valid', the others as 'full'."""
    model = _max_pool_model(size, pads, 1)
    x = np.random.default_rng(0).normal(size=[1, 1] + size).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert_close(mx.onnx.import_to_gluon(model)(mx.nd.array(x)).asnumpy(), want)


def test_ceil_mode_needing_two_conventions_is_refused():
    """Rows (5, pad 1) lose their last window in ONNX; columns (7, no pad) keep theirs."""
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2],
                            pads=[1, 0, 1, 0], ceil_mode=1)
    model = make_model([node], [f32("x", [1, 1, 5, 7])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(FormatError, match="pool.*no single MXNet pooling convention"):
        import_onnx(model)


def test_a_translation_of_the_wrong_shape_is_caught_against_onnx_inference(monkeypatch):
    """The safety net under every translation: graphc's shape must equal ONNX's inferred one."""
    from graphc.formats.onnx_import_table import all_translations
    converters, _ = all_translations()
    monkeypatch.setitem(converters, "Relu", lambda ctx, node, attrs: ctx.emit("transpose", [ctx.tensor(node.input[0])]))
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [f32("x", [2, 3])], [f32("y", [2, 3])])
    with pytest.raises(FormatError, match=r"'r'.*\(3, 2\) but ONNX infers \(2, 3\)"):
        import_onnx(model)
