"""Cases for every initializer of MXNet 1.9.1's mx.init, run alike under MXNet and graphc:
`python initializer_cases.py mxnet|graphc` prints {case: values} as JSON. Deterministic
initializers give their arrays (name-suffix dispatch, the `__init__` attribute, the legacy bare
name rules, FusedRNN's gate-by-gate layout, Mixed, Load from a dict and from a .params file
MXNet wrote); random ones give statistics of a large draw (mean, std, min, max, and for
Orthogonal the Gram matrix). test_initializers_mxnet.py compares graphc's answers with the ones
recorded from MXNet (mxnet_initializer_reference.json) and, where MXNet's venv exists, with
MXNet's live ones."""
import json
import os
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PARAMS_FILE = os.path.join(HERE, "mxnet_initializer_load.params")   # written by MXNet 1.9.1: see write_params
STORED = {"arg:fc_weight": np.arange(6, dtype=np.float32).reshape(2, 3),
          "aux:bn_moving_var": np.full(3, 7.0, np.float32)}


def _filled(mx, init, name, shape, attrs=None, legacy=False):
    arr = mx.nd.zeros(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        init(name if legacy else mx.init.InitDesc(name, attrs), arr)
    return arr.asnumpy().tolist()


def _stats(mx, init, name, shape):
    mx.random.seed(7)
    arr = mx.nd.zeros(shape)
    init(mx.init.InitDesc(name), arr)
    a = arr.asnumpy().astype(np.float64)
    return {"mean": a.mean(), "std": a.std(), "min": a.min(), "max": a.max()}


def deterministic_cases(mx):
    init, out = mx.init, {}
    for name, shape in (("fc_weight", (2, 3)), ("fc_bias", (3,)), ("bn_gamma", (3,)), ("bn_beta", (3,)),
                        ("q_min", (2,)), ("q_max", (2,))):
        out[f"one:{name}"] = _filled(mx, init.One(), name, shape)
        out[f"xavier:{name}"] = _filled(mx, init.Xavier(), name, shape) if not name.endswith("weight") else None
    out["zero:weight"] = _filled(mx, init.Zero(), "w_weight", (2, 2))
    out["constant:weight"] = _filled(mx, init.Constant(0.25), "w_weight", (2, 2))
    out["constant_array:weight"] = _filled(mx, init.Constant(np.array([[1.0, 2.0]])), "w_weight", (3, 2))
    out["constant:bias_stays_zero"] = _filled(mx, init.Constant(5.0), "w_bias", (2,))
    out["own_init_attr_wins"] = _filled(mx, init.Uniform(), "fc_bias", (3,),
                                        attrs={"__init__": init.Constant(2.5).dumps()})
    out["own_init_attr_on_gamma"] = _filled(mx, init.One(), "bn_gamma", (2,), attrs={"__init__": '["zero", {}]'})
    out["bilinear"] = _filled(mx, init.Bilinear(), "up_weight", (2, 1, 4, 4))
    out["bilinear_odd"] = _filled(mx, init.Bilinear(), "up_weight", (1, 2, 3, 5))
    out["lstmbias_by_attr"] = _filled(mx, init.Zero(), "lstm_i2h_bias", (12,),
                                      attrs={"__init__": init.LSTMBias(forget_bias=2.0).dumps()})
    out["lstmbias_as_bias_name"] = _filled(mx, init.LSTMBias(forget_bias=2.0), "lstm_i2h_bias", (8,))
    out["lstmbias_as_weight_name"] = _filled(mx, init.LSTMBias(), "lstm_weight", (8,))
    for label, args, size in (("lstm_bi_2layers", (init.One(), 2, 2, "lstm", True, 3.0), 240),
                              ("gru", (init.Constant(0.5), 3, 1, "gru"), 81),
                              ("rnn_tanh_2layers", (init.One(), 2, 2, "rnn_tanh"), 26)):
        out[f"fusedrnn:{label}"] = _filled(mx, init.Zero(), "rnn_parameters", (size,),
                                           attrs={"__init__": init.FusedRNN(*args)})
    # FusedRNN without its own init: the pieces take the global initializer's rules. (Gluon
    # passes the instance in `__init__`: MXNet cannot rebuild a FusedRNN that has an init from
    # its dumps(), a KeyError in its registry lookup, so the cases never go through JSON there.)
    fused = init.FusedRNN(None, 2, 1, "lstm", forget_bias=0.5)
    out["fusedrnn:global_init"] = _filled(mx, init.Constant(0.75), "rnn_parameters", (56,),
                                          attrs={"__init__": fused.dumps()})
    mixed = init.Mixed([".*bias", ".*gamma", ".*"], [init.Zero(), init.Constant(3.0), init.One()])
    for name in ("fc_bias", "bn_gamma", "fc_weight"):
        out[f"mixed:{name}"] = _filled(mx, mixed, name, (2,), legacy=True)
    for name, shape in (("upsampling_weight", (1, 1, 4, 4)), ("stn_loc_weight", (6, 4)), ("stn_loc_bias", (6,)),
                        ("bn_moving_mean", (2,)), ("bn_moving_var", (2,)), ("bn_moving_inv_var", (2,)),
                        ("x_moving_avg", (2,)), ("fc_bias", (2,)), ("bn_gamma", (2,))):
        out[f"legacy:{name}"] = _filled(mx, init.Xavier(), name, shape, legacy=True)
    stored = {k: mx.nd.array(v) for k, v in STORED.items()}
    load = init.Load(stored, default_init=init.Constant(-1.0))
    for name, shape in (("fc_weight", (2, 3)), ("bn_moving_var", (3,)), ("other_weight", (2,))):
        out[f"load_dict:{name}"] = _filled(mx, load, name, shape, legacy=True)
    from_file = init.Load(PARAMS_FILE)
    out["load_file:fc_weight"] = _filled(mx, from_file, "fc_weight", (2, 3), legacy=True)
    out["load_file:bn_moving_var"] = _filled(mx, from_file, "bn_moving_var", (3,), legacy=True)
    return out


def serialization_cases(mx):
    init, out = mx.init, {}
    for label, made in (("zero", init.Zero()), ("ones", init.create("ones")), ("constant", init.Constant(1.5)),
                        ("uniform", init.Uniform(0.2)), ("normal", init.Normal(0.3)),
                        ("orthogonal", init.Orthogonal(scale=2.0, rand_type="normal")),
                        ("xavier", init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)),
                        ("msraprelu", init.MSRAPrelu(slope=0.1)), ("bilinear", init.Bilinear()),
                        ("lstmbias", init.LSTMBias(0.5)), ("fusedrnn", init.FusedRNN(None, 4, 2, "gru"))):
        dumped = made.dumps()
        rebuilt = init.create(dumped)
        out[label] = [json.loads(dumped), type(rebuilt).__name__, rebuilt.dumps() == dumped]
    out["from_dict_json"] = [init.create('{"initializer": "constant", "value": 3}').dumps()]
    out["equal"] = [init.Xavier() == init.Xavier(), init.Xavier() == init.Xavier(magnitude=2),
                    init.One() == init.Zero()]
    return out


def random_cases(mx):
    init = mx.init
    return {
        "uniform": _stats(mx, init.Uniform(0.3), "w_weight", (200, 300)),
        "normal": _stats(mx, init.Normal(0.2), "w_weight", (200, 300)),
        "xavier_conv": _stats(mx, init.Xavier(), "c_weight", (64, 32, 3, 3)),
        "xavier_gaussian_in": _stats(mx, init.Xavier("gaussian", "in", 2), "c_weight", (64, 32, 3, 3)),
        "xavier_out": _stats(mx, init.Xavier(factor_type="out"), "fc_weight", (300, 200)),
        "msraprelu": _stats(mx, init.MSRAPrelu(), "c_weight", (64, 32, 3, 3)),
        "msraprelu_in": _stats(mx, init.MSRAPrelu("in", 0.0), "fc_weight", (300, 200)),
        "fusedrnn_xavier": _stats(mx, init.FusedRNN(init.Xavier(), 50, 1, "lstm"), "rnn_weight",
                                  (4 * 50 * (60 + 50 + 2),)),
        "orthogonal": _stats(mx, init.Orthogonal(), "w_weight", (40, 90)),
    }


def orthogonal_grams(mx):
    """W W^T (or W^T W): scale^2 times the identity, whatever the random draw."""
    out = {}
    for label, shape, kwargs in (("wide", (5, 12), {}), ("tall", (12, 5), {"scale": 0.5, "rand_type": "normal"}),
                                 ("conv", (4, 2, 3, 3), {"scale": 1.0})):
        arr = mx.nd.zeros(shape)
        mx.init.Orthogonal(**kwargs)(mx.init.InitDesc("o_weight"), arr)
        w = arr.asnumpy().reshape(shape[0], -1).astype(np.float64)
        out[label] = (w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w).tolist()
    return out


def all_cases(mx):
    return {"deterministic": deterministic_cases(mx), "serialization": serialization_cases(mx),
            "random": random_cases(mx), "orthogonal_gram": orthogonal_grams(mx)}


def write_params():
    """Write the .params fixture Load reads (run under MXNet: `python initializer_cases.py write`)."""
    import mxnet as mx
    mx.nd.save(PARAMS_FILE, {k: mx.nd.array(v) for k, v in STORED.items()})


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write_params()
        sys.exit(0)
    if sys.argv[1] == "mxnet":
        import mxnet as mx
    else:
        import graphc as mx
    print(json.dumps(all_cases(mx), default=float))
