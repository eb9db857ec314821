"""mx.init against Apache MXNet 1.9.1: every initializer MXNet registers (zero/zeros, one/ones,
constant, uniform, normal, orthogonal, xavier, msraprelu, bilinear, lstmbias, fusedrnn) plus
Mixed, Load and InitDesc's dispatch. Deterministic results must equal MXNet's exactly; random
ones must match MXNet's statistics on a large draw. The cases are
tests/compat/initializer_cases.py; MXNet's answers are recorded in
mxnet_initializer_reference.json (Load reads mxnet_initializer_load.params, which MXNet wrote),
and the live test re-runs them under MXNet when its venv is installed (skips elsewhere)."""
import json
import os
import subprocess
import warnings

import numpy as np
import pytest

import graphc as mx
import initializer_cases

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
with open(os.path.join(HERE, "mxnet_initializer_reference.json")) as f:
    RECORDED = json.load(f)
# random draws whose support is bounded: their extremes must reach MXNet's bounds
BOUNDED = {"uniform", "xavier_conv", "xavier_out", "fusedrnn_xavier"}


@pytest.fixture(scope="module")
def graphc_answers():
    return json.loads(json.dumps(initializer_cases.all_cases(mx), default=float))


def _assert_same_exactly(section, ours, theirs):
    assert sorted(ours) == sorted(theirs), f"{section}: cases differ"
    for key, want in theirs.items():
        if section == "serialization":
            assert ours[key] == want, f"{section}.{key}: graphc {ours[key]}, MXNet {want}"
        elif want is not None:
            np.testing.assert_allclose(np.asarray(ours[key], np.float64), np.asarray(want, np.float64), rtol=1e-6,
                                       atol=1e-7, err_msg=f"{section}.{key}: graphc vs MXNet 1.9.1")


def _assert_same_statistics(ours, theirs):
    for key, want in theirs.items():
        got = ours[key]
        assert abs(got["std"] - want["std"]) <= 0.02 * want["std"], \
            f"{key}: std graphc {got['std']}, MXNet {want['std']}"
        assert abs(got["mean"]) <= 0.1 * want["std"] and abs(want["mean"]) <= 0.1 * want["std"], key
        if key in BOUNDED:
            for end in ("min", "max"):
                assert abs(got[end] - want[end]) <= 1e-3 * want["std"] + 2e-3 * abs(want[end]), \
                    f"{key}: {end} graphc {got[end]}, MXNet {want[end]}"


@pytest.mark.parametrize("section", ["deterministic", "serialization", "orthogonal_gram"])
def test_deterministic_initializers_equal_the_recorded_mxnet_arrays(section, graphc_answers):
    _assert_same_exactly(section, graphc_answers[section], RECORDED[section])


def test_random_initializers_match_the_recorded_mxnet_statistics(graphc_answers):
    assert sorted(graphc_answers["random"]) == sorted(RECORDED["random"])
    _assert_same_statistics(graphc_answers["random"], RECORDED["random"])


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_live_mxnet_gives_the_recorded_answers_and_graphc_matches(graphc_answers):
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "initializer_cases.py"), "mxnet"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = json.loads(proc.stdout)
    for section in ("deterministic", "serialization", "orthogonal_gram"):
        _assert_same_exactly(section, RECORDED[section], live[section])
        _assert_same_exactly(section, graphc_answers[section], live[section])
    _assert_same_statistics(graphc_answers["random"], live["random"])


def test_registry_holds_mxnets_initializer_names():
    from graphc.gluon import init as ginit
    assert sorted(ginit._REGISTRY) == ["bilinear", "constant", "fusedrnn", "lstmbias", "msraprelu", "normal", "one",
                                       "ones", "orthogonal", "uniform", "xavier", "zero", "zeros"]


# -- without MXNet -------------------------------------------------------------------------------

def _draw(init, shape, name="w_weight"):
    arr = mx.nd.zeros(shape)
    init(mx.init.InitDesc(name), arr)
    return arr.asnumpy()


@pytest.mark.parametrize("factor_type, fan", [("avg", (32 * 9 + 16 * 9) / 2), ("in", 32 * 9), ("out", 16 * 9)])
def test_xavier_bound_is_the_root_of_magnitude_over_the_fan(factor_type, fan):
    w = _draw(mx.init.Xavier(factor_type=factor_type, magnitude=3), (16, 32, 3, 3))
    bound = np.sqrt(3 / fan)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound


def test_fusedrnn_fills_each_gate_by_its_own_fan():
    hidden, inputs = 40, 90
    flat = _draw(mx.init.FusedRNN(mx.init.Xavier(), hidden, 1, "gru"), (3 * hidden * (inputs + hidden + 2),),
                 name="rnn_weight")
    i2h = flat[:3 * hidden * inputs].reshape(3, hidden, inputs)
    h2h = flat[3 * hidden * inputs:3 * hidden * (inputs + hidden)].reshape(3, hidden, hidden)
    for gate in range(3):      # each (hidden, in) piece is its own Xavier weight, not a slice of a big one
        assert np.abs(i2h[gate]).max() <= np.sqrt(3 / ((inputs + hidden) / 2))
        assert np.abs(h2h[gate]).max() > 0.95 * np.sqrt(3 / hidden)
    assert not flat[3 * hidden * (inputs + hidden):].any(), "GRU biases start at zero"


def test_fusedrnn_rejects_a_vector_of_the_wrong_size_by_name():
    with pytest.raises(ValueError, match="FusedRNN: a parameter vector of 50 values does not fit 1 lstm"):
        _draw(mx.init.FusedRNN(mx.init.One(), 2, 1, "lstm"), (50,), name="rnn_weight")


def test_a_parameters_fusedrnn_init_uses_the_blocks_initializer_for_its_pieces():
    fused = mx.init.FusedRNN(None, 2, 1, "lstm", forget_bias=0.5)
    param = mx.gluon.Parameter("rnn_parameters", shape=(56,), init=fused)
    param.initialize(default_init=mx.init.One())
    data = param.data().asnumpy()
    bias = data[40:].reshape(2, 4, 2)                       # (i2h, h2h) x gates (i, f, c, o) x hidden
    assert data[:40].tolist() == [1.0] * 40
    assert bias[:, 1].tolist() == [[0.5, 0.5]] * 2 and not np.delete(bias, 1, axis=1).any()


def test_bare_names_take_the_legacy_rules_with_a_deprecation_warning():
    arr = mx.nd.zeros((6,))
    with pytest.warns(DeprecationWarning, match="InitDesc"):
        mx.init.Uniform()("stn_loc_bias", arr)
    assert arr.asnumpy().tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_unknown_name_patterns_are_refused_with_the_name():
    with pytest.raises(ValueError, match="Unknown initialization pattern for conv_offset"):
        mx.init.Xavier()(mx.init.InitDesc("conv_offset"), mx.nd.zeros((2, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match="did not match any pattern"):
            mx.init.Mixed(["fc.*"], [mx.init.One()])("conv_weight", mx.nd.zeros((2,)))


def test_create_refuses_arguments_for_an_instance_and_unknown_names():
    with pytest.raises(ValueError, match="already an Initializer"):
        mx.init.create(mx.init.One(), value=3)
    with pytest.raises(ValueError, match="unknown initializer 'glorot'"):
        mx.init.create("glorot")
