"""Block / HybridBlock: MXNet 1.x naming, parameter registration, deferred initialization,
collect_params selection, save/load with structural names, hooks, reprs, Gluon-2 style forward."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.gluon import nn
from graphc.gluon.block import NameManager
from graphc.formats.mxnet_params import load_params


def test_top_level_blocks_count_per_class_name():
    with NameManager():
        a, b, c = nn.Dense(2), nn.Dense(3), nn.HybridSequential()
    assert (a.prefix, b.prefix, c.prefix) == ("dense0_", "dense1_", "hybridsequential0_")
    assert a.name == "dense0"
    assert [p for p in a.params.keys()] == ["dense0_weight", "dense0_bias"]


def test_children_in_name_scope_take_the_parent_prefix_and_count_per_parent():
    with NameManager():
        net = nn.HybridSequential()
        with net.name_scope():
            net.add(nn.Dense(4, activation="relu"), nn.Dense(2), nn.Dropout(0.1))
        other = nn.HybridSequential()
        with other.name_scope():
            other.add(nn.Dense(1))
    assert [c.prefix for c in net._children.values()] == \
        ["hybridsequential0_dense0_", "hybridsequential0_dense1_", "hybridsequential0_dropout0_"]
    assert net[0].act.prefix == "hybridsequential0_dense0_relu_"
    assert other[0].prefix == "hybridsequential1_dense0_"
    assert list(net.collect_params().keys()) == [
        "hybridsequential0_dense0_weight", "hybridsequential0_dense0_bias",
        "hybridsequential0_dense1_weight", "hybridsequential0_dense1_bias"]


def test_explicit_prefix_and_activation_alias():
    with NameManager():
        d = nn.Dense(3, prefix="fc1_")
        act = nn.Activation("tanh")
    assert d.weight.name == "fc1_weight"
    assert act.prefix == "tanh0_"


def test_custom_block_registers_children_and_parameters_by_attribute():
    class Net(gluon.HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.body = nn.HybridSequential()
                self.body.add(nn.Dense(3, in_units=2), nn.Dense(1, in_units=3))
                self.scale = self.params.get("scale", shape=(1,), init=mx.init.One())

        def hybrid_forward(self, F, x, scale):
            return F.broadcast_mul(self.body(x), scale)

    with NameManager():
        net = Net()
    assert list(net._children) == ["body"]
    assert "scale" in net._reg_params
    assert set(net._collect_params_with_prefix()) == {"scale", "body.0.weight", "body.0.bias",
                                                       "body.1.weight", "body.1.bias"}
    # created in Net's name scope, not body's (MXNet's classic gotcha)
    assert net.body[0].weight.name == "net0_dense0_weight"
    assert net.body.prefix == "net0_hybridsequential0_"
    net.initialize()
    out = net(nd.ones((4, 2)))
    assert out.shape == (4, 1)


def test_setattr_refuses_changing_a_block_attribute_to_another_type():
    net = nn.HybridSequential()
    with net.name_scope():
        net.d = nn.Dense(2)
    with pytest.raises(TypeError):
        net.d = 3


def test_hybrid_block_refuses_non_hybrid_children():
    net = nn.HybridSequential()
    with pytest.raises(ValueError, match="HybridSequential"):
        net.add(nn.Lambda(lambda x: x))


def test_collect_params_select_is_a_regex_match():
    with NameManager():
        net = nn.HybridSequential()
        with net.name_scope():
            net.add(nn.Dense(2), nn.Dense(3))
    assert list(net.collect_params(".*weight").keys()) == ["hybridsequential0_dense0_weight",
                                                           "hybridsequential0_dense1_weight"]
    assert list(net.collect_params(".*dense1_.*").keys()) == ["hybridsequential0_dense1_weight",
                                                              "hybridsequential0_dense1_bias"]
    assert len(net.collect_params("weight")) == 0  # re.match anchors at the start


def test_deferred_initialization_waits_for_the_first_input():
    net = nn.Dense(4)
    net.initialize()
    assert net.weight.shape == (4, 0)
    with pytest.raises(gluon.DeferredInitializationError):
        net.weight.data()
    out = net(nd.ones((2, 3, 5)))
    assert out.shape == (2, 4)
    assert net.weight.shape == (4, 15)
    assert net.weight.data().shape == (4, 15)
    assert net.bias.data().asnumpy().tolist() == [0.0] * 4


def test_dense_without_flatten_infers_from_the_last_axis():
    net = nn.Dense(4, flatten=False)
    net.initialize()
    assert net(nd.ones((2, 3, 5))).shape == (2, 3, 4)
    assert net.weight.shape == (4, 5)


def test_uninitialized_parameter_names_itself():
    net = nn.Dense(2, in_units=3)
    with pytest.raises(RuntimeError, match="has not been initialized"):
        net(nd.ones((1, 3)))


def test_save_parameters_uses_structural_names_and_round_trips(tmp_path):
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(3, in_units=2), nn.Dense(1, in_units=3))
    net.initialize(mx.init.Normal(1.0))
    f = str(tmp_path / "net.params")
    net.save_parameters(f)
    assert sorted(load_params(f)) == ["0.bias", "0.weight", "1.bias", "1.weight"]
    net2 = nn.HybridSequential()
    with net2.name_scope():
        net2.add(nn.Dense(3), nn.Dense(1))  # deferred shapes come from the file
    net2.load_parameters(f)
    x = nd.array(np.random.default_rng(0).normal(size=(4, 2)))
    np.testing.assert_array_equal(net(x).asnumpy(), net2(x).asnumpy())


def test_load_parameters_reports_missing_and_extra(tmp_path):
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(3, in_units=2))
    net.initialize()
    f = str(tmp_path / "a.params")
    net.save_parameters(f)
    bigger = nn.HybridSequential()
    with bigger.name_scope():
        bigger.add(nn.Dense(3, in_units=2), nn.Dense(1, in_units=3))
    with pytest.raises(ValueError, match="1.weight"):
        bigger.load_parameters(f)
    bigger.load_parameters(f, allow_missing=True)
    np.testing.assert_array_equal(bigger[0].weight.data().asnumpy(), net[0].weight.data().asnumpy())
    smaller = nn.HybridSequential()
    with pytest.raises(ValueError, match="0.weight"):
        smaller.load_parameters(f)
    smaller.load_parameters(f, ignore_extra=True)


def test_load_parameters_checks_shapes(tmp_path):
    net = nn.Dense(3, in_units=2)
    net.initialize()
    f = str(tmp_path / "d.params")
    net.save_parameters(f)
    other = nn.Dense(3, in_units=4)
    with pytest.raises(ValueError, match="shape incompatible"):
        other.load_parameters(f)


def test_legacy_prefixed_params_file_loads_through_collect_params(tmp_path):
    net = nn.Dense(2, in_units=2, prefix="fc_")
    net.initialize()
    f = str(tmp_path / "legacy.params")
    net.collect_params().save(f, strip_prefix="fc_")
    assert sorted(load_params(f)) == ["bias", "weight"]
    net2 = nn.Dense(2, in_units=2, prefix="fc_")
    net2.load_parameters(f)
    np.testing.assert_array_equal(net2.weight.data().asnumpy(), net.weight.data().asnumpy())


def test_shared_parameters_and_deduplicated_save(tmp_path):
    a = nn.Dense(2, in_units=2)
    b = nn.Dense(2, in_units=2, params=a.params)
    assert b.weight is a.weight
    net = nn.HybridSequential()
    net.add(a, b)
    net.initialize()
    f = str(tmp_path / "s.params")
    net.save_parameters(f, deduplicate=True)
    assert sorted(load_params(f)) == ["0.bias", "0.weight"]


def test_forward_hooks_run_and_detach():
    net = nn.Dense(2, in_units=2)
    net.initialize()
    seen = []
    h1 = net.register_forward_pre_hook(lambda blk, args: seen.append(("pre", args[0].shape)))
    h2 = net.register_forward_hook(lambda blk, args, out: seen.append(("post", out.shape)))
    net(nd.ones((3, 2)))
    assert seen == [("pre", (3, 2)), ("post", (3, 2))]
    h1.detach()
    h2.detach()
    net(nd.ones((3, 2)))
    assert len(seen) == 2


def test_apply_visits_children_then_self():
    net = nn.HybridSequential()
    net.add(nn.Dense(1), nn.Dense(1))
    order = []
    net.apply(lambda b: order.append(type(b).__name__))
    assert order == ["Dense", "Dense", "HybridSequential"]


def test_hybridize_records_the_wish_and_recurses():
    net = nn.HybridSequential()
    net.add(nn.Dense(1))
    net.hybridize(static_alloc=True)
    assert net._active and net[0]._active
    assert net._flags["static_alloc"] is True
    assert net._cached_op is None
    net.hybridize(False)
    assert not net._active


def test_sequential_slicing_and_len():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(1), nn.Dense(2), nn.Dense(3))
    assert len(net) == 3
    sub = net[1:]
    assert isinstance(sub, nn.HybridSequential) and len(sub) == 2
    assert sub[0] is net[1]


def test_plain_sequential_runs_non_hybrid_children():
    net = nn.Sequential()
    net.add(nn.Lambda(lambda x: x * 2), nn.Lambda("exp"))
    np.testing.assert_allclose(net(nd.array([0.0, 1.0])).asnumpy(), np.exp([0.0, 2.0]), rtol=1e-6)


def test_repr_matches_mxnet_layout():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(4, activation="relu", in_units=3), nn.Dropout(0.5), nn.Flatten())
    assert repr(net) == ("HybridSequential(\n"
                         "  (0): Dense(3 -> 4, Activation(relu))\n"
                         "  (1): Dropout(p = 0.5, axes=())\n"
                         "  (2): Flatten\n"
                         ")")


def test_cast_changes_parameter_dtype():
    net = nn.Dense(2, in_units=3)
    net.initialize()
    net.cast("float64")
    assert net.weight.data().dtype == np.float64
    assert net(nd.ones((1, 3), dtype="float64")).dtype == np.float64


class Gluon2Style(gluon.HybridBlock):
    """A block that overrides forward() instead of hybrid_forward(), with a deferred parameter."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.scale = self.params.get("scale", shape=(0,), allow_deferred_init=True)
            self.dense = nn.Dense(2)

    def infer_shape(self, x):
        self.scale.shape = (x.shape[1],)

    def forward(self, x):
        return self.dense(nd.relu(x * self.scale.data()).exp())


def test_gluon2_style_forward_runs_eagerly_and_trains():
    with NameManager():
        net = Gluon2Style()
    net.initialize(mx.init.One())
    x = nd.array([[1.0, -1.0, 2.0]])
    out = net(x)
    assert net.scale.shape == (3,)
    w = net.dense.weight.data().asnumpy()
    expected = np.exp(np.maximum(x.asnumpy(), 0)) @ w.T
    np.testing.assert_allclose(out.asnumpy(), expected, rtol=1e-6)
    with autograd.record():
        y = net(x).sum()
    y.backward()
    # d/dscale of sum(W exp(relu(x*s))) = (1^T W) * exp(x s) * x where x s > 0
    g = w.sum(axis=0) * np.exp(np.maximum(x.asnumpy()[0], 0)) * x.asnumpy()[0] * (x.asnumpy()[0] > 0)
    np.testing.assert_allclose(net.scale.grad().asnumpy(), g, rtol=1e-5)


def test_infer_shape_error_names_the_block_and_parameter():
    class NoInfer(gluon.HybridBlock):
        def __init__(self):
            super().__init__(prefix="noinfer_")
            self.w = self.params.get("w", shape=(0,), allow_deferred_init=True)

        def hybrid_forward(self, F, x, w):
            return x * w

    b = NoInfer()
    b.initialize()
    with pytest.raises(gluon.DeferredInitializationError, match="noinfer_w"):
        b(nd.ones((2,)))


def test_container_infer_shape_initializes_children_without_running():
    net = nn.HybridSequential()
    net.add(nn.Dense(4), nn.Dense(2))
    net.initialize()
    net.infer_shape(nd.ones((3, 5)))
    assert net[0].weight.shape == (4, 5) and net[1].weight.shape == (2, 4)
    assert net[1].weight.data().shape == (2, 4)


def test_summary_prints_layers_and_parameter_counts(capsys):
    net = nn.HybridSequential()
    net.add(nn.Dense(4, in_units=3), nn.Dense(2, in_units=4))
    net.initialize()
    net.summary(nd.ones((1, 3)))
    out = capsys.readouterr().out
    assert "Dense-1" in out and "Total params: 26" in out
