"""nd.contrib / F.contrib operators (ops/declarations/contrib.py, graphc/contrib_functions.py):
what the operator table cannot say -- gradients that are not derivatives by definition
(straight-through estimators, gradientmultiplier, the control-flow gate), boolean_mask's eager-only
life, compiled blocks agreeing with eager runs, and the namespaces themselves."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.ops.errors import GraphcError, OpAttributeError
from gradcheck import analytic_grads


def _grad(fn, x, head):
    x = nd.array(x, dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = fn(x)
        loss = (y * nd.array(head, dtype="float64")).sum()
    loss.backward()
    return y.asnumpy(), x.grad.asnumpy()


@pytest.mark.parametrize("name", ["round_ste", "sign_ste"])
def test_straight_through_estimators_pass_the_gradient_unchanged(name):
    x, head = np.array([-1.4, -0.5, 0.0, 0.3, 2.6]), np.array([1.0, -2.0, 3.0, 0.5, 7.0])
    y, g = _grad(getattr(nd.contrib, name), x, head)
    np.testing.assert_array_equal(y, np.sign(x) if name == "sign_ste" else [-1.0, -1.0, 0.0, 0.0, 3.0])
    np.testing.assert_array_equal(g, head)


def test_gradientmultiplier_scales_the_gradient_and_nothing_else():
    x, head = np.array([1.0, -2.0, 3.0]), np.array([0.5, 1.0, -1.0])
    y, g = _grad(lambda a: nd.contrib.gradientmultiplier(a, scalar=-0.25), x, head)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(g, head * -0.25)


@pytest.mark.parametrize("pred, negate, flows", [(1.0, False, True), (0.0, False, False), (3.0, True, False),
                                                 (0.0, True, True)])
def test_cond_gate_passes_its_gradient_only_when_its_branch_is_taken(pred, negate, flows):
    x, p, head = np.array([1.0, 2.0]), np.array([pred]), np.array([np.inf, np.nan])
    (g,) = analytic_grads("_cond_gate", [x, p], {"negate": negate}, [head], wrt=(0,))
    if flows:
        np.testing.assert_array_equal(g, head)
    else:
        np.testing.assert_array_equal(g, [0.0, 0.0])   # selected away, even inf and NaN


def test_boolean_mask_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x, mask, head = rng.uniform(-1, 1, (5, 3)), nd.array([1, 0, 0, 2, 1]), rng.uniform(-1, 1, (3, 3))
    y, g = _grad(lambda a: nd.contrib.boolean_mask(a, mask), x, head)
    np.testing.assert_array_equal(y, x[[0, 3, 4]])
    fd = np.zeros_like(x)
    for k in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[k] += 1e-6
        down[k] -= 1e-6
        fd[k] = (np.sum(up[[0, 3, 4]] * head) - np.sum(down[[0, 3, 4]] * head)) / 2e-6
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_boolean_mask_refuses_other_axes_and_mismatched_index():
    with pytest.raises(OpAttributeError, match="axis=1"):
        nd.contrib.boolean_mask(nd.ones((2, 3)), nd.array([1, 0, 1]), axis=1)
    with pytest.raises(Exception, match=r"index must be 1-D with one value per row.*\(4, 2\).*\(3,\)"):
        nd.contrib.boolean_mask(nd.ones((4, 2)), nd.array([1, 0, 1]))


def test_boolean_mask_in_a_hybridized_block_is_refused_with_the_reason():
    class Masked(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.contrib.boolean_mask(x, x.sum(axis=1))
    block = Masked()
    assert block(nd.array([[1, 1], [0, 0]])).shape == (1, 2)
    block.hybridize()
    with pytest.raises(GraphcError, match="output length is the number of nonzero values"):
        block(nd.array([[1, 1], [0, 0]]))


def test_index_copy_out_of_range_names_the_operator_and_the_rows():
    with pytest.raises(OpAttributeError, match=r"_contrib_index_copy: index values \[0, 7\] out of range for 3 rows"):
        nd.contrib.index_copy(nd.zeros((3, 2)), nd.array([0, 7]), nd.ones((2, 2)))


class ContribChain(gluon.HybridBlock):
    """Every contrib operator with a static shape, in one differentiable chain."""

    def hybrid_forward(self, F, x, rows, new):
        up = F.contrib.BilinearResize2D(x, height=5, width=6)
        half = F.contrib.BilinearResize2D(up, x, mode="like", align_corners=False)
        pooled = F.contrib.AdaptiveAvgPooling2D(up, output_size=(2, 3))
        flat = F.contrib.div_sqrt_dim(F.reshape(pooled, (2, -1)))
        copied = F.contrib.index_copy(flat, rows, new)
        bent = F.contrib.quadratic(copied, a=0.5, b=-1.0, c=0.25) + F.contrib.round_ste(copied)
        ramp = F.contrib.arange_like(bent, start=0.5, step=0.25)
        where = F.cast(F.contrib.index_array(bent), "float64").sum(axis=-1)
        finite = F.contrib.isfinite(bent) - F.contrib.isnan(bent) - F.contrib.isinf(bent)
        return bent * ramp + half.sum() + where * finite


def test_a_hybridized_chain_of_contrib_operators_matches_eager_values_and_gradients():
    rng = np.random.default_rng(1)
    arrays = [rng.uniform(-1, 1, (1, 2, 3, 4)), np.array([1.0]), rng.uniform(-1, 1, (1, 6))]
    results = []
    for hybrid in (False, True):
        block = ContribChain()
        if hybrid:
            block.hybridize()
        xs = [nd.array(a, dtype="float64") for a in arrays]
        xs[0].attach_grad()
        xs[2].attach_grad()
        with autograd.record():
            y = block(*xs)
        y.backward()
        results.append((y.asnumpy(), xs[0].grad.asnumpy(), xs[2].grad.asnumpy()))
    for eager, traced in zip(*results):
        np.testing.assert_allclose(traced, eager, rtol=1e-10, atol=1e-12)
    assert np.abs(results[0][1]).sum() > 0 and np.abs(results[0][2]).sum() > 0


def test_the_contrib_namespaces_list_mxnet_names_and_refuse_unknown_ones():
    wanted = {"AdaptiveAvgPooling2D", "BilinearResize2D", "boolean_mask", "arange_like", "index_copy", "index_array",
              "div_sqrt_dim", "quadratic", "foreach", "while_loop", "cond", "isinf", "isnan", "isfinite",
              "gradientmultiplier", "round_ste", "sign_ste"}
    assert wanted <= set(dir(nd.contrib)) and wanted <= set(dir(mx.sym.contrib))
    with pytest.raises(AttributeError, match="_contrib_no_such_op"):
        mx.sym.contrib.no_such_op
    with pytest.raises(AttributeError, match="_contrib_no_such_op"):
        nd.contrib.no_such_op


class SelfAttention(gluon.HybridBlock):
    """GluonNLP BERT's attention core: interleaved q/k/v in, softmax weights, interleaved values out."""

    def hybrid_forward(self, F, qkv, queries, kv):
        scores = F.softmax(F.contrib.interleaved_matmul_selfatt_qk(qkv, heads=2), axis=-1)
        self_out = F.contrib.interleaved_matmul_selfatt_valatt(qkv, scores, heads=2)
        cross = F.softmax(F.contrib.interleaved_matmul_encdec_qk(queries, kv, heads=2), axis=-1)
        return self_out.sum() + F.contrib.interleaved_matmul_encdec_valatt(kv, cross, heads=2) * 2


def test_interleaved_attention_hybridized_matches_eager_values_and_gradients():
    rng = np.random.default_rng(2)
    arrays = [rng.uniform(-1, 1, (3, 2, 24)), rng.uniform(-1, 1, (5, 2, 8)), rng.uniform(-1, 1, (3, 2, 16))]
    results = []
    for hybrid in (False, True):
        block = SelfAttention()
        if hybrid:
            block.hybridize()
        xs = [nd.array(a, dtype="float64") for a in arrays]
        for x in xs:
            x.attach_grad()
        with autograd.record():
            y = block(*xs)
        y.backward()
        results.append([y.asnumpy()] + [x.grad.asnumpy() for x in xs])
    for eager, traced in zip(*results):
        np.testing.assert_allclose(traced, eager, rtol=1e-10, atol=1e-12)


def test_interleaved_attention_refuses_a_width_that_is_not_heads_times_parts():
    with pytest.raises(GraphcError, match=r"last axis \(10\) must be heads \(2\) x 3"):
        nd.contrib.interleaved_matmul_selfatt_qk(nd.ones((3, 2, 10)), heads=2)


def test_rand_zipfian_counts_follow_the_log_uniform_law_and_the_seed():
    mx.random.seed(11)
    sampled, count_true, count_sampled = nd.contrib.rand_zipfian(nd.array([0, 4]), 6, 50)
    mx.random.seed(11)
    again = nd.contrib.rand_zipfian(nd.array([0, 4]), 6, 50)[0]
    assert sampled.dtype == np.int64 and np.array_equal(sampled.asnumpy(), again.asnumpy())
    s = sampled.asnumpy()
    assert s.min() >= 0 and s.max() < 50
    law = lambda c: np.log((c + 2.0) / (c + 1.0)) / np.log(51) * 6   # noqa: E731
    np.testing.assert_allclose(count_true.asnumpy(), law(np.array([0.0, 4.0])))
    np.testing.assert_allclose(count_sampled.asnumpy(), law(s.astype(np.float64)))


class SyncBN(gluon.HybridBlock):
    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.gamma = self.params.get("gamma", shape=(3,), init="ones")
            self.beta = self.params.get("beta", shape=(3,), init="zeros")
            self.mean = self.params.get("mean", shape=(3,), init="zeros", grad_req="null", differentiable=False)
            self.var = self.params.get("var", shape=(3,), init="ones", grad_req="null", differentiable=False)

    def hybrid_forward(self, F, x, gamma, beta, mean, var):
        return F.contrib.SyncBatchNorm(x, gamma, beta, mean, var, fix_gamma=False, ndev=1, key="bn")


def test_sync_batch_norm_in_a_hybridized_block_normalises_and_updates_its_moving_stats():
    x = nd.array(np.random.default_rng(3).uniform(-2, 2, (8, 3)))
    outs = []
    for hybrid in (False, True):
        block = SyncBN()
        block.initialize()
        if hybrid:
            block.hybridize()
        with autograd.record():
            y = block(x)
        outs.append((y.asnumpy(), block.mean.data().asnumpy()))
    for eager, traced in zip(*outs):
        np.testing.assert_allclose(traced, eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[1][0].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(outs[1][1], 0.1 * x.asnumpy().mean(axis=0), rtol=1e-5)


class Detector(gluon.HybridBlock):
    """SSD's tail: anchors for a feature map, their IoU with the predictions, NMS over scored boxes."""

    def hybrid_forward(self, F, feature, predictions):
        anchors = F.contrib.MultiBoxPrior(feature, sizes=(0.5, 0.25), ratios=(1, 2))
        overlap = F.contrib.box_iou(F.slice_axis(predictions, axis=-1, begin=2, end=6), F.reshape(anchors, (-1, 4)))
        kept = F.contrib.box_nms(predictions, overlap_thresh=0.3, valid_thresh=0.05, id_index=0, score_index=1,
                                 coord_start=2)
        return kept * 2, overlap.max(axis=-1)


def test_a_hybridized_detection_tail_matches_eager_values_and_gradients():
    rng = np.random.default_rng(4)
    corners = np.sort(rng.uniform(0, 1, (2, 7, 2, 2)), axis=2).transpose(0, 1, 3, 2).reshape(2, 7, 4)
    corners[:, 0] = [0.1, 0.1, 0.6, 0.7]
    corners[:, 1] = corners[:, 0] + 0.01                  # a near duplicate of box 0 ...
    classes = rng.integers(0, 2, (2, 7, 1)).astype(np.float64)
    classes[:, 1] = classes[:, 0]                          # ... of its class: suppressed
    scores = rng.uniform(0.1, 1, (2, 7, 1))
    scores[:, 1] = scores[:, 0] - 0.05
    predictions = np.concatenate([classes, scores, corners], axis=-1)
    head = rng.uniform(-1, 1, predictions.shape)
    results = []
    for hybrid in (False, True):
        block = Detector()
        if hybrid:
            block.hybridize()
        feature, preds = nd.ones((1, 8, 3, 4), dtype="float64"), nd.array(predictions, dtype="float64")
        preds.attach_grad()
        with autograd.record():
            kept, best = block(feature, preds)
            loss = (kept * nd.array(head, dtype="float64")).sum() + best.sum()
        loss.backward()
        results.append((kept.asnumpy(), best.asnumpy(), preds.grad.asnumpy()))
    for eager, traced in zip(*results):
        np.testing.assert_allclose(traced, eager, rtol=1e-10, atol=1e-12)
    kept = results[0][0]
    assert (kept[:, -1] == -2).all() and (kept[:, 0] != -2).all()   # the duplicate went, the best stayed
