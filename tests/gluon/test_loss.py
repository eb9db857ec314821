"""Losses against numpy formulas (MXNet 1.x definitions), and their gradients against central
finite differences in float64."""
import numpy as np
import pytest

from graphc import autograd, nd
from graphc.gluon import loss as gloss

RNG = np.random.default_rng(7)
PRED = RNG.normal(size=(5, 4))
TARGET = RNG.normal(size=(5, 4))
PROB = 1 / (1 + np.exp(-RNG.normal(size=(5, 4))))
BINARY = (RNG.random((5, 4)) > 0.5).astype(np.float64)
SIGNED = 2 * BINARY - 1
SPARSE = np.array([0, 3, 1, 2, 3], dtype=np.float64)
SW = RNG.random((5, 1))


def _log_softmax(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _softplus(x):
    return np.log1p(np.exp(x))


CASES = {
    "l2": (gloss.L2Loss(), PRED, TARGET, lambda p, t: (0.5 * (t - p) ** 2).mean(axis=1)),
    "l2_weighted": (gloss.L2Loss(weight=3.0), PRED, TARGET, lambda p, t: (1.5 * (t - p) ** 2).mean(axis=1)),
    "l1": (gloss.L1Loss(), PRED, TARGET, lambda p, t: np.abs(t - p).mean(axis=1)),
    "sce_sparse": (gloss.SoftmaxCrossEntropyLoss(), PRED, SPARSE,
                   lambda p, t: -_log_softmax(p)[np.arange(5), t.astype(int)]),
    "sce_dense": (gloss.SoftmaxCrossEntropyLoss(sparse_label=False), PRED, PROB / PROB.sum(1, keepdims=True),
                  lambda p, t: -(_log_softmax(p) * t).sum(axis=1)),
    "sce_from_logits": (gloss.SoftmaxCELoss(from_logits=True), PRED, SPARSE,
                        lambda p, t: -p[np.arange(5), t.astype(int)]),
    "sigmoid_bce": (gloss.SigmoidBinaryCrossEntropyLoss(), PRED, BINARY,
                    lambda p, t: (-(t * np.log(1 / (1 + np.exp(-p))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-p))))).mean(1)),
    "sigmoid_bce_from_sigmoid": (gloss.SigmoidBCELoss(from_sigmoid=True), PROB, BINARY,
                                 lambda p, t: (-(t * np.log(p + 1e-12) + (1 - t) * np.log(1 - p + 1e-12))).mean(1)),
    "huber": (gloss.HuberLoss(rho=0.5), PRED, TARGET,
              lambda p, t: np.where(np.abs(t - p) > 0.5, np.abs(t - p) - 0.25, (t - p) ** 2).mean(1)),
    "hinge": (gloss.HingeLoss(), PRED, SIGNED, lambda p, t: np.maximum(0, 1 - p * t).mean(1)),
    "squared_hinge": (gloss.SquaredHingeLoss(), PRED, SIGNED, lambda p, t: np.maximum(0, 1 - p * t).__pow__(2).mean(1)),
    "logistic": (gloss.LogisticLoss(), PRED, SIGNED, lambda p, t: np.log1p(np.exp(-p * t)).mean(1)),
    "logistic_binary": (gloss.LogisticLoss(label_format="binary"), PRED, BINARY,
                        lambda p, t: np.log1p(np.exp(-p * (2 * t - 1))).mean(1)),
    "kldiv": (gloss.KLDivLoss(), _log_softmax(PRED), PROB / PROB.sum(1, keepdims=True),
              lambda p, t: (t * (np.log(t + 1e-12) - p)).sum(1)),
    "kldiv_logits": (gloss.KLDivLoss(from_logits=False), PRED, PROB / PROB.sum(1, keepdims=True),
                     lambda p, t: (t * (np.log(t + 1e-12) - _log_softmax(p))).sum(1)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_value_matches_numpy(name):
    fn, pred, label, ref = CASES[name]
    out = fn(nd.array(pred, dtype="float64"), nd.array(label, dtype="float64"))
    assert out.shape == (5,)
    np.testing.assert_allclose(out.asnumpy(), ref(pred, label), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_gradient_matches_finite_differences(name):
    fn, pred, label, _ = CASES[name]
    x = nd.array(pred, dtype="float64")
    lab = nd.array(label, dtype="float64")
    x.attach_grad()
    with autograd.record():
        total = fn(x, lab).sum()
    total.backward()
    eps = 1e-6
    numeric = np.zeros_like(pred)
    for idx in np.ndindex(pred.shape):
        up, down = pred.copy(), pred.copy()
        up[idx] += eps
        down[idx] -= eps
        f_up = fn(nd.array(up, dtype="float64"), lab).asnumpy().sum()
        f_down = fn(nd.array(down, dtype="float64"), lab).asnumpy().sum()
        numeric[idx] = (f_up - f_down) / (2 * eps)
    np.testing.assert_allclose(x.grad.asnumpy(), numeric, rtol=1e-5, atol=1e-7)


def test_sample_weight_scales_each_sample():
    fn = gloss.L1Loss()
    out = fn(nd.array(PRED), nd.array(TARGET), nd.array(SW))
    np.testing.assert_allclose(out.asnumpy(), (np.abs(TARGET - PRED) * SW).mean(1), rtol=1e-5)


def test_pos_weight_scales_positive_term():
    fn = gloss.SigmoidBinaryCrossEntropyLoss()
    pw = np.full((1, 4), 3.0)
    out = fn(nd.array(PRED, dtype="float64"), nd.array(BINARY, dtype="float64"), None,
             nd.array(pw, dtype="float64")).asnumpy()
    s = 1 / (1 + np.exp(-PRED))
    ref = (-(3.0 * BINARY * np.log(s) + (1 - BINARY) * np.log(1 - s))).mean(1)
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_label_is_reshaped_like_pred():
    fn = gloss.L2Loss()
    out = fn(nd.array(PRED[:, :1]), nd.array(TARGET[:, 0]))
    np.testing.assert_allclose(out.asnumpy(), 0.5 * (TARGET[:, 0] - PRED[:, 0]) ** 2, rtol=1e-5)


def test_batch_axis_and_higher_rank_inputs():
    x = RNG.normal(size=(3, 5, 2))
    y = RNG.normal(size=(3, 5, 2))
    out = gloss.L1Loss(batch_axis=1)(nd.array(x), nd.array(y))
    np.testing.assert_allclose(out.asnumpy(), np.abs(y - x).mean(axis=(0, 2)), rtol=1e-5)


def test_softmax_ce_on_other_axis():
    x = RNG.normal(size=(2, 4, 3))
    lab = np.array([[0, 1, 3], [2, 2, 0]], dtype=np.float64)
    out = gloss.SoftmaxCrossEntropyLoss(axis=1)(nd.array(x, dtype="float64"), nd.array(lab, dtype="float64"))
    ls = _log_softmax(x, axis=1)
    ref = -np.take_along_axis(ls, lab.astype(int)[:, None, :], axis=1)[:, 0, :].mean(axis=1)
    np.testing.assert_allclose(out.asnumpy(), ref, rtol=1e-6)


def test_triplet_and_cosine_embedding():
    a, p, n = (RNG.normal(size=(4, 3)) for _ in range(3))
    out = gloss.TripletLoss(margin=1)(nd.array(a), nd.array(p), nd.array(n)).asnumpy()
    ref = np.maximum(((p - a) ** 2 - (n - a) ** 2).sum(1) + 1, 0)
    np.testing.assert_allclose(out, ref, rtol=1e-5)
    lab = np.array([1, -1, 1, -1], dtype=np.float64)
    out = gloss.CosineEmbeddingLoss(margin=0.1)(nd.array(a), nd.array(p), nd.array(lab)).asnumpy()
    cos = (a * p).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(p, axis=1))
    ref = np.where(lab == 1, 1 - cos, np.maximum(0, cos - 0.1))
    np.testing.assert_allclose(out.ravel(), ref, rtol=1e-5, atol=1e-6)


def test_repr():
    assert repr(gloss.L2Loss()) == "L2Loss(batch_axis=0, w=1.0)"
