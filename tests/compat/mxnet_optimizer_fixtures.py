"""Writes optimizer_fixtures.npz: what MXNet 1.9.1's optimizers do in 5 steps. Run it with MXNet's
own Python (bench/.venvs/mxnet/bin/python tests/compat/mxnet_optimizer_fixtures.py); the
fixture is committed so test_optimizers_mxnet.py runs without MXNet.

Every case updates the same float32 weights (a vector, a matrix, a 3-D tensor) with the same
gradients, one parameter at a time through create_state_multi_precision/update_multi_precision
(what an Updater does), with rescale_grad, clip_gradient, wd and per-parameter lr_mult/wd_mult
(param_dict) set. The inputs, each case's keyword arguments, and the final weights and flattened
states all go into the file.
"""
import json
import os
import sys

import numpy as np

STEPS = 5
SHAPES = [(7,), (4, 5), (2, 3, 2)]
MULTS = [(1.0, 1.0), (0.5, 2.0), (2.0, 0.0)]     # (lr_mult, wd_mult) per parameter
COMMON = {"rescale_grad": 0.5, "clip_gradient": 0.6, "wd": 0.01}

# name -> (optimizer, kwargs, dtype, shapes)
CASES = {
    "sgd_mom": ("sgd", {"learning_rate": 0.1, "momentum": 0.9}),
    "ccsgd": ("ccsgd", {"learning_rate": 0.1, "momentum": 0.9}),
    "nag": ("nag", {"learning_rate": 0.1, "momentum": 0.9}),
    "adam": ("adam", {"learning_rate": 0.01}),
    "rmsprop": ("rmsprop", {"learning_rate": 0.01}),
    "rmsprop_centered": ("rmsprop", {"learning_rate": 0.01, "centered": True, "clip_weights": 0.9}),
    "adagrad": ("adagrad", {"learning_rate": 0.1}),
    "adadelta": ("adadelta", {"rho": 0.9, "epsilon": 1e-5}),
    "adamax": ("adamax", {"learning_rate": 0.01}),
    "nadam": ("nadam", {"learning_rate": 0.01}),
    "signum": ("signum", {"learning_rate": 0.01, "momentum": 0.9, "wd_lh": 0.01}),
    "signsgd": ("signum", {"learning_rate": 0.01, "momentum": 0.0}),
    "lamb": ("lamb", {"learning_rate": 0.01}),
    "lamb_nobias": ("lamb", {"learning_rate": 0.01, "bias_correction": False, "beta1": 0.8, "epsilon": 1e-4}),
    "lamb_lower": ("lamb", {"learning_rate": 0.01, "lower_bound": 3.0}),
    "lamb_upper": ("lamb", {"learning_rate": 0.01, "upper_bound": 1.5}),
    "lars": ("lars", {"learning_rate": 0.1, "momentum": 0.9, "eta": 0.01}),
    "lars_nomom": ("lars", {"learning_rate": 0.1, "eta": 0.02, "eps": 1e-3}),
    "ftml": ("ftml", {"learning_rate": 0.01}),
    "ftml_betas": ("ftml", {"learning_rate": 0.05, "beta1": 0.5, "beta2": 0.99, "epsilon": 1e-6}),
    "ftrl": ("ftrl", {"learning_rate": 0.1, "lamda1": 0.01}),
    "ftrl_l1": ("ftrl", {"learning_rate": 0.5, "lamda1": 0.1, "beta": 0.5}),
    "dcasgd": ("dcasgd", {"learning_rate": 0.1, "lamda": 0.5}),
    "groupadagrad": ("groupadagrad", {"learning_rate": 0.1, "wd": 0.0}),
}
# float16 + multi_precision. Not LAMB: MXNet 1.9.1's mp_lamb_update_phase2 gives weights that
# differ from its own float32 LAMB on the master copy by up to 0.05 after 5 steps (the moments
# agree), while graphc applies the float32 rule to the master copy.
MIXED_CASES = {"ftml_mp": "ftml", "lars_mp": "lars", "adam_mp": "adam"}


def inputs():
    rng = np.random.RandomState(7)
    weights = [rng.uniform(-1, 1, s).astype(np.float32) for s in SHAPES]
    grads = [[rng.uniform(-2, 2, s).astype(np.float32) for s in SHAPES] for _ in range(STEPS)]
    return weights, grads


def flatten(state):
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [a for s in state for a in flatten(s)]
    return [state.asnumpy()]


class _Param:
    def __init__(self, lr_mult, wd_mult):
        self.lr_mult, self.wd_mult = lr_mult, wd_mult


def run_case(mx, opt_name, kwargs, weights, grads, dtype):
    kw = dict(COMMON, **kwargs)
    shapes = [i for i, w in enumerate(weights) if opt_name != "groupadagrad" or w.ndim == 2]
    opt = mx.optimizer.create(opt_name, param_dict={i: _Param(*MULTS[i]) for i in shapes}, **kw)
    ws = {i: mx.nd.array(weights[i], dtype=dtype) for i in shapes}
    states = {i: opt.create_state_multi_precision(i, ws[i]) for i in shapes}
    for step in range(STEPS):
        for i in shapes:
            opt.update_multi_precision(i, ws[i], mx.nd.array(grads[step][i], dtype=dtype), states[i])
    return kw, {i: ws[i].asnumpy() for i in shapes}, {i: flatten(states[i]) for i in shapes}


def main(out):
    import mxnet as mx
    weights, grads = inputs()
    arrays = {f"weight{i}": w for i, w in enumerate(weights)}
    arrays.update({f"grad{s}_{i}": g for s, gs in enumerate(grads) for i, g in enumerate(gs)})
    meta = {}
    todo = [(c, n, k, "float32") for c, (n, k) in CASES.items()]
    todo += [(c, n, dict(CASES[n][1], multi_precision=True), "float16") for c, n in MIXED_CASES.items()]
    for case, name, kwargs, dtype in todo:
        kw, ws, sts = run_case(mx, name, kwargs, weights, grads, dtype)
        meta[case] = {"optimizer": name, "kwargs": kw, "dtype": dtype, "params": sorted(ws),
                      "n_states": {str(i): len(s) for i, s in sts.items()}}
        for i, w in ws.items():
            arrays[f"{case}/w{i}"] = w
            for j, s in enumerate(sts[i]):
                arrays[f"{case}/s{i}_{j}"] = s
    arrays["meta"] = np.frombuffer(json.dumps({"steps": STEPS, "mults": MULTS, "cases": meta}).encode(), np.uint8)
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                            "optimizer_fixtures.npz"))
