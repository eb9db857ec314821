"""export() writes MXNet 1.x files; SymbolBlock.imports loads them (and MXNet's own) and runs
them compiled with identical results; damaged files are refused."""
import os
import json

import numpy as np
import pytest

import graphc as mx
from graphc import nd, autograd, gluon
from graphc.gluon import nn

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "fixtures", "mxnet")


def trained_mlp():
    mx.random.seed(5)
    net = nn.HybridSequential()
    net.add(nn.Dense(16, activation="relu"), nn.Dense(10))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    net(nd.ones((3, 8)))
    return net


def test_export_round_trip_is_bit_identical(tmp_path):
    net = trained_mlp()
    sym_file, params_file = net.export(str(tmp_path / "mlp"), epoch=3)
    assert sym_file.endswith("mlp-symbol.json") and params_file.endswith("mlp-0003.params")
    doc = json.loads(open(sym_file).read())
    assert [n["op"] for n in doc["nodes"]].count("FullyConnected") == 2
    names = set(mx.nd.load(params_file))
    assert names == {"arg:" + k for k in net.collect_params()}
    back = gluon.SymbolBlock.imports(sym_file, ["data"], params_file)
    x = nd.array(np.random.rand(5, 8))
    np.testing.assert_array_equal(back(x).asnumpy(), net(x).asnumpy())


def test_export_before_any_call_explains_what_to_do(tmp_path):
    net = nn.HybridSequential()
    net.add(nn.Dense(3))
    net.initialize()
    net.hybridize()
    with pytest.raises(mx.GraphcError, match="run the block once"):
        net.export(str(tmp_path / "x"))


class TwoHeads(gluon.HybridBlock):
    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.body = nn.Dense(6)
            self.unused = nn.Dense(2)     # never called: must not break export

    def hybrid_forward(self, F, x):
        h = self.body(x)
        return [F.relu(h), (F.sigmoid(h), h * 2)]


def test_export_keeps_output_nesting_and_tolerates_unused_parameters(tmp_path):
    blk = TwoHeads()
    blk.initialize()
    blk.hybridize()
    x = nd.array(np.random.rand(2, 4))
    out = blk(x)
    sym_file, params_file = blk.export(str(tmp_path / "two"))
    back = gluon.SymbolBlock.imports(sym_file, ["data"], params_file)
    got = back(x)
    assert isinstance(got, list) and isinstance(got[1], tuple)
    np.testing.assert_array_equal(got[1][1].asnumpy(), out[1][1].asnumpy())


def test_imported_block_can_be_fine_tuned(tmp_path):
    net = trained_mlp()
    sym_file, params_file = net.export(str(tmp_path / "ft"))
    back = gluon.SymbolBlock.imports(sym_file, ["data"], params_file)
    trainer = gluon.Trainer(back.collect_params(), "sgd", {"learning_rate": 0.5})
    x, y = nd.array(np.random.rand(8, 8)), nd.array(np.arange(8) % 10)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    first = None
    for _ in range(15):
        with autograd.record():
            loss = loss_fn(back(x), y)
        loss.backward()
        trainer.step(8)
        first = loss.mean().asscalar() if first is None else first
    assert loss.mean().asscalar() < first


def test_truncated_params_file_is_refused_with_its_name(tmp_path):
    net = trained_mlp()
    sym_file, params_file = net.export(str(tmp_path / "t"))
    data = open(params_file, "rb").read()
    open(params_file, "wb").write(data[:-7])
    with pytest.raises(mx.FormatError, match="t-0000.params"):
        gluon.SymbolBlock.imports(sym_file, ["data"], params_file)


def test_unknown_operator_in_json_is_refused_with_its_name(tmp_path):
    net = trained_mlp()
    sym_file, params_file = net.export(str(tmp_path / "u"))
    doc = json.loads(open(sym_file).read())
    doc["nodes"][-1]["op"] = "TotallyNewOp"
    open(sym_file, "w").write(json.dumps(doc))
    with pytest.raises(mx.FormatError, match=r"TotallyNewOp.*|u-symbol.json"):
        gluon.SymbolBlock.imports(sym_file, ["data"], params_file)


def test_failed_export_leaves_old_files_intact(tmp_path, monkeypatch):
    net = trained_mlp()
    sym_file, params_file = net.export(str(tmp_path / "keep"))
    before = open(params_file, "rb").read()
    import graphc.formats.mxnet_params as mp
    real = mp._encode_array

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(mp, "_encode_array", boom)
    with pytest.raises(OSError):
        net.export(str(tmp_path / "keep"))
    monkeypatch.setattr(mp, "_encode_array", real)
    assert open(params_file, "rb").read() == before


@pytest.mark.parametrize("backend", ["llvm", "numpy"])
def test_mxnet_written_mlp_reproduces_mxnet_output(backend):
    sym = os.path.join(FIXTURES, "mlp-symbol.json")
    if not os.path.exists(sym):
        pytest.skip("shared MXNet fixtures are not beside the checkout")
    io = np.load(os.path.join(FIXTURES, "mlp-io.npz"))
    block = gluon.SymbolBlock.imports(sym, ["data"], os.path.join(FIXTURES, "mlp-0000.params"))
    block.hybridize(backend=backend)
    got = block(nd.array(io["input0"])).asnumpy()
    np.testing.assert_allclose(got, io["output0"], rtol=1e-5, atol=1e-6)


def test_save_and_load_parameters_use_structural_names(tmp_path):
    net = trained_mlp()
    path = str(tmp_path / "net.params")
    net.save_parameters(path)
    assert set(mx.nd.load(path)) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    other = nn.HybridSequential()
    other.add(nn.Dense(16, activation="relu"), nn.Dense(10))
    other.load_parameters(path)
    other.hybridize()       # the same compiled kernels as net's, so the outputs are bit-equal
    x = nd.ones((2, 8))
    np.testing.assert_array_equal(other(x).asnumpy(), net(x).asnumpy())


def mxnet_mlp_in_graphc():
    """The network MXNet 1.9.1 trained for the mlp fixture, written again in graphc's Gluon."""
    net = nn.HybridSequential(prefix="mlp_")
    with net.name_scope():
        net.add(nn.Dense(32, activation="relu"), nn.Dense(32, activation="tanh"), nn.Dense(10))
    return net


@pytest.mark.parametrize("hybridize", [False, True])
def test_mxnet_params_load_into_the_same_gluon_network_built_with_graphc(hybridize):
    params = os.path.join(FIXTURES, "mlp-0000.params")
    if not os.path.exists(params):
        pytest.skip("shared MXNet fixtures are not beside the checkout")
    io = np.load(os.path.join(FIXTURES, "mlp-io.npz"))
    net = mxnet_mlp_in_graphc()
    assert sorted(net.collect_params()) == sorted(k[4:] for k in mx.nd.load(params))
    net.collect_params().load(params)          # MXNet's 'arg:' names, as its export wrote them
    if hybridize:
        net.hybridize()
    np.testing.assert_allclose(net(nd.array(io["input0"])).asnumpy(), io["output0"], rtol=1e-5, atol=1e-6)


def test_graphc_export_names_match_what_mxnet_wrote(tmp_path):
    """The reverse direction: graphc's export of the same network writes MXNet's names and ops."""
    sym = os.path.join(FIXTURES, "mlp-symbol.json")
    if not os.path.exists(sym):
        pytest.skip("shared MXNet fixtures are not beside the checkout")
    net = mxnet_mlp_in_graphc()
    net.collect_params().load(os.path.join(FIXTURES, "mlp-0000.params"))
    net.hybridize()
    net(nd.ones((2, 64)))
    sym_file, params_file = net.export(str(tmp_path / "mlp"))
    ours = json.loads(open(sym_file).read())
    theirs = json.loads(open(sym).read())
    strip = lambda doc: [(n["op"], n["name"], {k: v for k, v in n.get("attrs", {}).items() if not k.startswith("__")},
                          [i[:2] for i in n["inputs"]]) for n in doc["nodes"]]
    assert strip(ours) == strip(theirs)
    assert [h[:2] for h in ours["heads"]] == [h[:2] for h in theirs["heads"]]
    assert mx.nd.load(params_file).keys() == mx.nd.load(os.path.join(FIXTURES, "mlp-0000.params")).keys()


@pytest.mark.parametrize("name", ["lstm", "cnn"])
def test_mxnet_written_models_reproduce_mxnet_outputs_as_blocks(name):
    sym = os.path.join(FIXTURES, f"{name}-symbol.json")
    if not os.path.exists(sym):
        pytest.skip("shared MXNet fixtures are not beside the checkout")
    doc = json.loads(open(sym).read())
    from graphc.ops.registry import has_op
    missing = sorted({n["op"] for n in doc["nodes"] if n["op"] != "null" and not has_op(n["op"])})
    if missing:
        pytest.skip(f"operators not declared yet: {missing}")
    io = np.load(os.path.join(FIXTURES, f"{name}-io.npz"))
    block = gluon.SymbolBlock.imports(sym, ["data"], os.path.join(FIXTURES, f"{name}-0000.params"))
    got = block(nd.array(io["input0"], dtype=io["input0"].dtype)).asnumpy()
    np.testing.assert_allclose(got, io["output0"], rtol=1e-4, atol=1e-5)
