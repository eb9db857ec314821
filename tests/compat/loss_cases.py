"""Cases for every loss in gluon.loss, run alike under Apache MXNet 1.9.1 and graphc:
`python loss_cases.py mxnet|graphc` prints {case: {"loss": ..., "grad": ...}} as JSON (the loss
values, and the gradient of their weighted sum with respect to the prediction, eagerly and with
the loss hybridized). test_losses_mxnet.py compares graphc's answers with the ones recorded from
MXNet (mxnet_loss_reference.json) and, where MXNet's venv exists, with MXNet's live ones.
Inputs are fixed numpy arrays, so both systems see the same numbers."""
import json
import sys

import numpy as np


def _data(shape, seed, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


PRED = _data((4, 5), 1)
REAL = _data((4, 5), 2)
SIGNED = np.sign(_data((4, 5), 3)).astype(np.float32)
BINARY = (SIGNED > 0).astype(np.float32)
PROB = _data((4, 5), 4, 0.05, 1.0)
PROB = PROB / PROB.sum(axis=1, keepdims=True)
SAMPLE_WEIGHT = _data((4, 1), 5, 0.2, 2.0)
CLASSES = np.array([0, 3, 1, 4], np.float32)
# CTC: (N, T, C) activations, labels padded with -1 (blank is the last class, C - 1)
CTC_PRED = _data((3, 6, 5), 6, -2.0, 2.0)
CTC_LABEL = np.array([[0, 1, -1], [2, 2, -1], [3, 0, 1]], np.float32)


def _losses(gloss):
    """name -> (loss block, the inputs after the prediction as numpy arrays)."""
    return {
        "l2": (gloss.L2Loss(), [REAL]),
        "l2_weighted": (gloss.L2Loss(weight=3.0), [REAL, SAMPLE_WEIGHT]),
        "l1": (gloss.L1Loss(), [REAL]),
        "l1_sample_weight": (gloss.L1Loss(weight=0.5), [REAL, SAMPLE_WEIGHT]),
        "sigmoid_bce": (gloss.SigmoidBinaryCrossEntropyLoss(), [BINARY]),
        "sigmoid_bce_alias": (gloss.SigmoidBCELoss(), [BINARY, SAMPLE_WEIGHT]),
        "sigmoid_bce_from_sigmoid": (gloss.SigmoidBCELoss(from_sigmoid=True), [PROB]),
        "softmax_ce": (gloss.SoftmaxCrossEntropyLoss(), [CLASSES]),
        "softmax_ce_alias_dense": (gloss.SoftmaxCELoss(sparse_label=False), [PROB]),
        "softmax_ce_from_logits": (gloss.SoftmaxCELoss(from_logits=True, weight=2.0), [CLASSES]),
        "softmax_ce_axis0": (gloss.SoftmaxCELoss(axis=0, batch_axis=1), [np.array([1, 0, 3, 2, 2], np.float32)]),
        "kldiv": (gloss.KLDivLoss(), [PROB]),
        "kldiv_logits": (gloss.KLDivLoss(from_logits=False), [PROB]),
        "huber": (gloss.HuberLoss(rho=0.5), [REAL]),
        "hinge": (gloss.HingeLoss(), [SIGNED]),
        "squared_hinge": (gloss.SquaredHingeLoss(margin=0.5), [SIGNED]),
        "logistic_signed": (gloss.LogisticLoss(), [SIGNED]),
        "logistic_binary": (gloss.LogisticLoss(label_format="binary"), [BINARY]),
        "logistic_soft_label": (gloss.LogisticLoss(), [REAL]),
        "triplet": (gloss.TripletLoss(margin=0.3), [REAL, _data((4, 5), 7)]),
        "poisson_nll": (gloss.PoissonNLLLoss(), [PROB * 4]),
        "poisson_nll_rates": (gloss.PoissonNLLLoss(from_logits=False, compute_full=True),
                              [PROB * 4 + 0.5]),
        "cosine_embedding": (gloss.CosineEmbeddingLoss(margin=0.1),
                             [REAL, np.array([1, -1, 1, -1], np.float32)]),
        "ctc_ntc": (gloss.CTCLoss(), [CTC_LABEL]),
        "ctc_tnc_tn": (gloss.CTCLoss(layout="TNC", label_layout="TN", weight=2.0), [CTC_LABEL.T.copy()]),
        "ctc_lengths": (gloss.CTCLoss(), [np.array([[0, 1, 3], [2, 2, 1], [3, 0, 1]], np.float32),
                                          np.array([6, 4, 5], np.float32), np.array([2, 3, 1], np.float32)]),
        "sdml": (gloss.SDMLLoss(), [REAL]),
        "sdml_smoothing": (gloss.SDMLLoss(smoothing_parameter=0.1), [PRED * 2]),
    }


def _pred_for(name):
    if name.startswith("ctc_tnc"):
        return CTC_PRED.transpose(1, 0, 2).copy()
    if name.startswith("ctc"):
        return CTC_PRED
    if name in ("sigmoid_bce_from_sigmoid",):
        return _data((4, 5), 8, 0.05, 0.95)
    if name == "kldiv":
        return np.log(_data((4, 5), 9, 0.05, 1.0))
    if name == "poisson_nll_rates":
        return _data((4, 5), 10, 0.1, 3.0)
    return PRED


def _run(mx, block, pred, others, hybridize):
    if hybridize:
        block.hybridize()
    x = mx.nd.array(pred)
    x.attach_grad()
    with mx.autograd.record():
        y = block(x, *[mx.nd.array(o) for o in others])
        w = mx.nd.array(np.linspace(0.5, 1.5, int(np.prod(y.shape))).reshape(y.shape).astype(np.float32))
        total = (y * w).sum()
    total.backward()
    return y.asnumpy(), x.grad.asnumpy()


# Where MXNet 1.9.1 runs a loss only one way, both of its answers come from that way: SDMLLoss
# reads x1.shape, which its Symbols lack (graphc's traced symbols know their shapes), so MXNet
# runs it eagerly only; PoissonNLLLoss(compute_full=True) multiplies in place (`*=`), which
# MXNet's Symbols lack and its autograd refuses, so MXNet gives its loss only outside autograd.
MXNET_QUIRKS = {"sdml": "eager", "sdml_smoothing": "eager", "poisson_nll_rates": "no_grad"}


def all_cases(mx):
    out = {}
    for name in _losses(mx.gluon.loss):
        for hybridize in (False, True):
            block, others = _losses(mx.gluon.loss)[name]
            quirk = MXNET_QUIRKS.get(name) if mx.__name__ == "mxnet" else None
            key = name + ("_hybrid" if hybridize else "")
            if quirk == "no_grad":
                out[key] = {"loss": block(*[mx.nd.array(a) for a in [_pred_for(name)] + others]).asnumpy()}
                continue
            y, g = _run(mx, block, _pred_for(name), others, hybridize and quirk != "eager")
            out[key] = {"loss": y, "grad": g}
    return out


def _jsonable(tree):
    if isinstance(tree, dict):
        return {k: _jsonable(v) for k, v in tree.items()}
    return np.asarray(tree, np.float64).tolist()


if __name__ == "__main__":
    if sys.argv[1] == "mxnet":
        import mxnet as mx
    else:
        import graphc as mx
    print(json.dumps(_jsonable(all_cases(mx))))
