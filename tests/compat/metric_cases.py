"""Cases for every name mx.metric.create accepts in MXNet 1.9.1, run alike under MXNet and graphc:
`python metric_cases.py mxnet|graphc` prints {case: {step: [name, value]}} as JSON. Each case
creates a metric by name (with MXNet's arguments), updates it over two batches, reads get() and
get_global(), calls reset_local(), updates a third batch and reads both again, then reset().
test_metrics_mxnet.py compares graphc's answers with the ones recorded from MXNet
(mxnet_metric_reference.json) and, where MXNet's venv exists, with MXNet's live ones."""
import json
import math
import sys

import numpy as np

_rng = np.random.default_rng(11)


def _probs(n, k):
    p = _rng.uniform(0.05, 1.0, (n, k)).astype(np.float32)
    return p / p.sum(axis=1, keepdims=True)


MULTI = [(_rng.integers(0, 3, 8).astype(np.float32), _probs(8, 3)) for _ in range(3)]
BINARY = [(_rng.integers(0, 2, 8).astype(np.float32), _probs(8, 2)) for _ in range(3)]
# a batch predicting no positives at all (precision undefined: F1 counts it 0)
BINARY_NO_POSITIVE = BINARY[:2] + [(np.array([1, 0, 1, 0], np.float32),
                                    np.array([[0.9, 0.1]] * 4, np.float32))]
# PCC's confusion matrix grows when class 4 first appears in the third batch
GROWING = MULTI[:2] + [(np.array([4, 0, 1, 4, 2, 3], np.float32), _probs(6, 5))]
REGRESSION = [(_rng.normal(size=8).astype(np.float32), _rng.normal(size=8).astype(np.float32))
              for _ in range(3)]
REGRESSION_2D = [(label.reshape(4, 2), (pred + label).reshape(4, 2)) for label, pred in REGRESSION]
TOKENS = [(_rng.integers(0, 4, 10).astype(np.float32), _probs(10, 4)) for _ in range(3)]
LOSSES = [(np.zeros(1, np.float32), _rng.uniform(0, 2, (4, 3)).astype(np.float32)) for _ in range(3)]

# (create's first argument, its keyword arguments, the batches)
CASES = {
    "acc": ("acc", {}, MULTI),
    "accuracy_class_ids": ("accuracy", {}, [(label, np.argmax(pred, 1).astype(np.float32)) for label, pred in MULTI]),
    "top_k_accuracy": ("top_k_accuracy", {"top_k": 2}, MULTI),
    "top_k_acc_all_classes": ("top_k_acc", {"top_k": 3}, MULTI),
    "f1": ("f1", {}, BINARY),
    "f1_micro": ("f1", {"average": "micro"}, BINARY),
    "f1_no_positive": ("F1", {}, BINARY_NO_POSITIVE),
    "f1_micro_no_positive": ("f1", {"average": "micro"}, BINARY_NO_POSITIVE),
    "mcc": ("mcc", {}, BINARY),
    "mcc_micro": ("mcc", {"average": "micro"}, BINARY),
    "pcc": ("pcc", {}, MULTI),
    "pcc_growing": ("pcc", {}, GROWING),
    "pcc_binary": ("pcc", {}, BINARY),
    "mae": ("mae", {}, REGRESSION),
    "mse_2d": ("mse", {}, REGRESSION_2D),
    "rmse": ("rmse", {}, REGRESSION),
    "ce": ("ce", {}, MULTI),
    "crossentropy_eps": ("crossentropy", {"eps": 1e-3}, MULTI),
    "nll_loss": ("nll_loss", {}, MULTI),
    "perplexity": ("perplexity", {"ignore_label": None}, TOKENS),
    "perplexity_ignore_0": ("perplexity", {"ignore_label": 0}, TOKENS),
    "pearsonr": ("pearsonr", {}, REGRESSION_2D),
    "pearsoncorrelation_micro": ("pearsoncorrelation", {"average": "micro"}, REGRESSION_2D),
    "loss": ("loss", {}, LOSSES),
    "torch": ("torch", {}, LOSSES),
    "caffe": ("caffe", {}, LOSSES),
    "composite": (["acc", "ce", "mae"], {}, MULTI),
    "compositeevalmetric": ("composite", {}, MULTI),
}
# What MXNet 1.9.1 answers differently on purpose: its PearsonCorrelation(average='micro')
# get_global() is 0.0 (a sum it never fills); graphc returns the pooled correlation
MXNET_SKIPS = {"pearsoncorrelation_micro": ("global_1", "global_2", "global_3")}


def _value(x):
    if isinstance(x, list):
        return [_value(v) for v in x]
    x = float(x)
    return None if math.isnan(x) else x


def _read(metric):
    name, value = metric.get()
    return [name, _value(value)]


def _read_global(metric):
    name, value = metric.get_global()
    return [name, _value(value)]


def run_case(mx, first, kwargs, batches):
    metric = mx.metric.create(first, **kwargs)
    if first == "composite":
        metric.add("acc")
        metric.add(mx.metric.create("nll_loss"))
    out = {}
    for i, (label, pred) in enumerate(batches[:2]):
        metric.update([mx.nd.array(label)], [mx.nd.array(pred)])
        out[f"get_{i + 1}"] = _read(metric)
        out[f"global_{i + 1}"] = _read_global(metric)
    metric.reset_local()
    out["get_after_reset_local"] = _read(metric)
    metric.update([mx.nd.array(batches[2][0])], [mx.nd.array(batches[2][1])])
    out["get_3"] = _read(metric)
    out["global_3"] = _read_global(metric)
    out["name_value"] = [[n, _value(v)] for n, v in metric.get_global_name_value()]
    metric.reset()
    out["get_after_reset"] = _read(metric)
    return out


def extra_cases(mx):
    """create() from a function, a config, JSON; update_dict with names; np(); str()."""
    out = {}
    label, pred = MULTI[0]

    def within_one(label, pred):
        return float(np.abs(label - pred.argmax(axis=1)).sum()), label.size

    custom = mx.metric.create(within_one)
    custom.update([mx.nd.array(label)] * 2, [mx.nd.array(pred)] * 2)
    out["custom_tuple"] = _read(custom)
    lam = mx.metric.np(lambda lab, p: float((lab == p.argmax(axis=1)).mean()))
    lam.update([mx.nd.array(label)], [mx.nd.array(pred)])
    out["np_lambda"] = _read(lam)
    acc = mx.metric.create("top_k_accuracy", top_k=2, name="top2")
    config = acc.get_config()
    rebuilt = mx.metric.create(**config)
    rebuilt.update([mx.nd.array(label)], [mx.nd.array(pred)])
    out["config"] = [sorted((k, str(v)) for k, v in config.items())]
    out["from_config"] = _read(rebuilt)
    from_json = mx.metric.create(json.dumps(["f1", {"average": "micro"}]))
    from_json.update([mx.nd.array(BINARY[0][0])], [mx.nd.array(BINARY[0][1])])
    out["from_json"] = _read(from_json)
    named = mx.metric.create("acc", output_names=["softmax_output"], label_names=["softmax_label"])
    named.update_dict({"softmax_label": mx.nd.array(label), "other_label": mx.nd.array(label * 0)},
                      {"softmax_output": mx.nd.array(pred), "other_output": mx.nd.array(pred[:, ::-1].copy())})
    out["update_dict_names"] = _read(named)
    composite = mx.metric.CompositeEvalMetric(["acc", "mse"], output_names=["out"], label_names=["lab"])
    composite.update_dict({"lab": mx.nd.array(label), "x": mx.nd.array(label + 1)},
                          {"out": mx.nd.array(pred), "y": mx.nd.array(pred * 0)})
    out["composite_update_dict"] = _read(composite)
    out["str"] = [str(mx.metric.create("mae"))]
    return out


def all_cases(mx):
    out = {name: run_case(mx, *case) for name, case in CASES.items()}
    if mx.__name__ == "mxnet":
        for name, steps in MXNET_SKIPS.items():
            for step in steps:
                del out[name][step]
            del out[name]["name_value"]
    out["extra"] = extra_cases(mx)
    return out


if __name__ == "__main__":
    if sys.argv[1] == "mxnet":
        import mxnet as mx
    else:
        import graphc as mx
    print(json.dumps(all_cases(mx)))
