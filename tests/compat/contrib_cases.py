"""Cases for nd.contrib / F.contrib, run alike under Apache MXNet 1.9.1 and graphc:
`python contrib_cases.py mxnet|graphc` prints {case: {name: nested list}} as JSON.
test_contrib_mxnet.py compares graphc's answers with the ones recorded from MXNet
(mxnet_contrib_reference.json) and, where MXNet's venv exists, with MXNet's live ones.
Inputs are fixed numpy arrays, so both systems see the same numbers."""
import json
import sys

import numpy as np


def _data(shape, seed, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _grad_of(mx, fn, *arrays):
    """(value of fn(*arrays), gradient of sum(value * fixed weights) for each array)."""
    xs = [mx.nd.array(a) for a in arrays]
    for x in xs:
        x.attach_grad()
    with mx.autograd.record():
        y = fn(*xs)
        w = mx.nd.array(np.linspace(0.5, 1.5, int(np.prod(y.shape))).reshape(y.shape).astype(np.float32))
        loss = (y * w).sum()
    loss.backward()
    return y.asnumpy(), [x.grad.asnumpy() for x in xs]


def operator_cases(mx):
    nd, out = mx.nd, {}
    x = _data((1, 2, 3, 4), 0)
    for label, kw in (("bilinear_size", dict(height=5, width=3)),
                      ("bilinear_half_pixel", dict(height=2, width=7, align_corners=False)),
                      ("bilinear_scale", dict(scale_height=2.0, scale_width=0.5))):
        y, (g,) = _grad_of(mx, lambda a: nd.contrib.BilinearResize2D(a, **kw), x)
        out[label] = {"y": y, "grad": g}
    shapes = {}
    for shape in ((1, 1, 5, 6), (1, 1, 4, 7)):
        for mode in ("to_even_down", "to_even_up", "to_odd_down", "to_odd_up"):
            shapes[f"{mode}{shape}"] = list(nd.contrib.BilinearResize2D(nd.ones(shape), mode=mode).shape)
    shapes["odd_scale"] = list(nd.contrib.BilinearResize2D(nd.ones((1, 1, 3, 4)), scale_height=2.0, scale_width=0.5,
                                                           mode="odd_scale").shape)
    shapes["like"] = list(nd.contrib.BilinearResize2D(nd.ones((1, 1, 3, 4)), nd.ones((2, 2, 2, 5)), mode="like").shape)
    out["bilinear_shapes"] = shapes
    out["arange_like"] = {"repeat": nd.contrib.arange_like(nd.ones((2, 3)), start=1, step=2, repeat=2).asnumpy(),
                          "axis": nd.contrib.arange_like(nd.ones((2, 3)), axis=1).asnumpy()}
    out["index_array"] = {"all": nd.contrib.index_array(nd.ones((2, 3))).asnumpy(),
                          "axes": nd.contrib.index_array(nd.ones((2, 3, 2)), axes=(2, 0)).asnumpy()}
    old, new = _data((5, 3), 1), _data((2, 3), 2)
    idx = nd.array([3, 0])
    y, (g_old, g_new) = _grad_of(mx, lambda o, n: nd.contrib.index_copy(o, idx, n), old, new)
    out["index_copy"] = {"y": y, "grad_old": g_old, "grad_new": g_new}
    mask = nd.array([0, 1, 1, 0, 1])
    y, (g,) = _grad_of(mx, lambda a: nd.contrib.boolean_mask(a, mask), _data((5, 2), 3))
    out["boolean_mask"] = {"y": y, "grad": g}
    y, (g,) = _grad_of(mx, nd.contrib.div_sqrt_dim, _data((2, 3, 4), 4))
    out["div_sqrt_dim"] = {"y": y, "grad": g}
    y, (g,) = _grad_of(mx, lambda a: nd.contrib.quadratic(a, a=0.5, b=-2, c=1), _data((2, 3), 5))
    out["quadratic"] = {"y": y, "grad": g}
    y, (g,) = _grad_of(mx, lambda a: nd.contrib.gradientmultiplier(a, scalar=-0.5), _data((2, 3), 6))
    out["gradientmultiplier"] = {"y": y, "grad": g}
    z = np.array([-1.5, -0.5, -0.2, 0.0, 0.5, 1.5, 2.5], np.float32)
    for name in ("round_ste", "sign_ste"):
        y, (g,) = _grad_of(mx, getattr(nd.contrib, name), z)
        out[name] = {"y": y, "grad": g}
    special = nd.array([1.0, np.inf, -np.inf, np.nan, -2.0])
    out["isinf_isnan_isfinite"] = {n: getattr(nd.contrib, n)(special).asnumpy() for n in ("isinf", "isnan", "isfinite")}
    y, (g,) = _grad_of(mx, lambda a: nd.contrib.AdaptiveAvgPooling2D(a, output_size=(2, 3)), _data((1, 2, 5, 4), 7))
    out["adaptive_avg_pool"] = {"y": y, "grad": g}
    out.update(attention_cases(mx))
    out["box_iou"] = {
        "corner": nd.contrib.box_iou(nd.array([[0, 0, 2, 2], [1, 1, 3, 3], [0, 0, 0, 0]]),
                                     nd.array([[1, 0, 2, 2], [0, 0, 0, 0]])).asnumpy(),
        "center": nd.contrib.box_iou(nd.array(_data((2, 3, 4), 8, 0.5, 3)), nd.array(_data((2, 4), 9, 0.5, 2)),
                                     format="center").asnumpy()}
    sampled, count_true, count_sampled = nd.contrib.rand_zipfian(nd.array([1, 3, 7]), 5, 10)
    out["rand_zipfian"] = {"count_true": count_true.asnumpy(),
                           "shapes": [list(sampled.shape), list(count_sampled.shape)],
                           "dtypes": [np.dtype(a.dtype).name for a in (sampled, count_true, count_sampled)]}
    x, gamma, beta = _data((4, 3, 2), 13), _data((3,), 14, 0.5, 1.5), _data((3,), 15)
    mean, var = nd.zeros((3,)), nd.ones((3,))

    def sync_bn(a, gm):
        return nd.contrib.SyncBatchNorm(a, gm, nd.array(beta), mean, var, fix_gamma=False, ndev=1, key="bn0")
    y, (g, g_gamma) = _grad_of(mx, sync_bn, x, gamma)
    out["sync_batch_norm"] = {"y": y, "grad": g, "grad_gamma": g_gamma, "moving_mean": mean.asnumpy(),
                              "moving_var": var.asnumpy()}
    out.update(nms_cases(mx))
    out.update(ctc_cases(mx))
    out["multibox_prior"] = {
        "sizes_ratios": nd.contrib.MultiBoxPrior(nd.ones((2, 3, 2, 3)), sizes=(0.5, 0.25),
                                                 ratios=(2, 0.5, 1)).asnumpy(),
        "steps_clip": nd.contrib.MultiBoxPrior(nd.ones((1, 1, 3, 2)), sizes=(0.5,), clip=True, steps=(0.3, 0.2),
                                               offsets=(0.2, 0.7)).asnumpy()}
    out["sparse_embedding"] = {"y": nd.contrib.SparseEmbedding(nd.array([[0, 2], [1, 0]]), nd.array(_data((3, 4), 16)),
                                                               input_dim=3, output_dim=4).asnumpy()}
    return out


def nms_cases(mx):
    """box_nms: classes, background, thresholds, topk, formats, a batch of two, and its gradient."""
    nd, out = mx.nd, {}
    rows = np.array([[0, 0.9, 0, 0, 2, 2], [0, 0.8, 0.1, 0.1, 2, 2], [1, 0.7, 0, 0, 2, 2], [0, 0.05, 5, 5, 6, 6],
                     [-1, 0.95, 0, 0, 1, 1], [0, 0.6, 3, 3, 4, 4], [1, 0.6, 0.2, 0, 2.2, 2], [2, 0.3, 3, 3, 4, 4.5]],
                    np.float32)
    batch = np.stack([rows, rows[::-1] * np.array([1, 1, 1.5, 1, 1, 1.2], np.float32)])
    ids = dict(id_index=0, score_index=1, coord_start=2)
    settings = {"classes": dict(ids, valid_thresh=0.1), "force": dict(ids, valid_thresh=0.1, force_suppress=True),
                "topk": dict(ids, topk=3), "background0": dict(ids, background_id=0),
                "no_ids": dict(score_index=1, coord_start=2, overlap_thresh=0.3),
                "center_in": dict(ids, in_format="center", overlap_thresh=0.2),
                "center_both": dict(ids, in_format="center", out_format="center", overlap_thresh=0.2)}
    for label, kw in settings.items():
        y, (g,) = _grad_of(mx, lambda a: nd.contrib.box_nms(a, **kw), batch)
        out[f"box_nms_{label}"] = {"y": y, "grad": g}
    return out


def ctc_cases(mx):
    """CTCLoss: blank first and last, padded labels and explicit lengths; gradients of feasible items."""
    nd, out = mx.nd, {}
    x = _data((6, 3, 5), 30)
    settings = {"first": ([[1, 2, 0], [3, 3, 1], [4, 0, 0]], {}, None),
                "last": ([[0, 1, -1], [2, 2, 0], [3, -1, -1]], {"blank_label": "last"}, None),
                "lengths": ([[1, 2, 2], [3, 3, 1], [4, 4, 4]], {"use_data_lengths": True, "use_label_lengths": True},
                            ([6, 5, 4], [2, 3, 1]))}
    for label, (labels, kw, lengths) in settings.items():
        extra = [nd.array(v) for v in lengths] if lengths else []
        loss, (g,) = _grad_of(mx, lambda a: nd.CTCLoss(a, nd.array(labels), *extra, **kw), x)
        out[f"ctc_{label}"] = {"loss": loss, "grad": g}
    out["ctc_contrib_names"] = {"loss": nd.contrib.ctc_loss(nd.array(x), nd.array([[1, 2, 0], [3, 3, 1], [4, 0, 0]]))
                                .asnumpy()}
    return out


def attention_cases(mx):
    """The interleaved attention matmuls of GluonNLP's BERT, with the gradients of one loss over all four."""
    nd = mx.nd
    seq, batch, heads, d, qlen = 3, 2, 2, 4, 5
    arrays = [_data((seq, batch, 3 * heads * d), 20), _data((batch * heads, seq, seq), 21, 0, 1),
              _data((qlen, batch, heads * d), 22), _data((seq, batch, 2 * heads * d), 23),
              _data((batch * heads, qlen, seq), 24, 0, 1)]
    xs = [nd.array(a) for a in arrays]
    for x in xs:
        x.attach_grad()
    qkv, att, queries, kv, att2 = xs
    with mx.autograd.record():
        outs = [nd.contrib.interleaved_matmul_selfatt_qk(qkv, heads=heads),
                nd.contrib.interleaved_matmul_selfatt_valatt(qkv, att, heads=heads),
                nd.contrib.interleaved_matmul_encdec_qk(queries, kv, heads=heads),
                nd.contrib.interleaved_matmul_encdec_valatt(kv, att2, heads=heads)]
        loss = (outs[0] * outs[0]).sum() + (outs[1] * 2).sum() + (outs[2] * outs[2] * outs[2]).sum() + outs[3].sum()
    loss.backward()
    names = ["selfatt_qk", "selfatt_valatt", "encdec_qk", "encdec_valatt"]
    case = {name: o.asnumpy() for name, o in zip(names, outs)}
    case.update({f"grad_{name}": x.grad.asnumpy() for name, x in zip(["qkv", "att", "queries", "kv", "att2"], xs)})
    return {"interleaved_attention": case}


# -- control flow ------------------------------------------------------------------------------

def _rnn_block(mx, W, U):
    class RNN(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.W = self.params.get("W", shape=W.shape)
                self.U = self.params.get("U", shape=U.shape)

        def hybrid_forward(self, F, x, h0, W, U):
            def body(x_t, states):
                h = F.tanh(F.dot(x_t, W) + F.dot(states[0], U))
                return h * 2, [h]
            outs, states = F.contrib.foreach(body, x, [h0])
            return outs, states[0]
    block = RNN()
    block.initialize()
    block.W.set_data(mx.nd.array(W))
    block.U.set_data(mx.nd.array(U))
    return block


def _while_block(mx):
    class Count(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x, i0):
            def cond(i, s):
                return i < 4

            def func(i, s):
                return [s * 2, i], [i + 1, s + F.broadcast_mul(i, x)]
            outs, (i, s) = F.contrib.while_loop(cond, func, [i0, F.zeros_like(x)], max_iterations=6)
            return outs[0], outs[1], i, s
    return Count()


def _cond_block(mx):
    class Cond(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.contrib.cond(x.sum() > 0, lambda: F.sqrt(x) * 3, lambda: x * x * 2)
    return Cond()


def _ranges_block(mx):
    """F.arange / full / eye / linspace inside hybrid_forward (sym's twins of nd's functions)."""
    class Ranges(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return [F.broadcast_add(x, F.arange(2, 8, 1.5, repeat=2)), F.full((2, 3), 7) * 2,
                    F.eye(3, 4, 1, dtype="float64"), F.linspace(0, 1, 5), F.arange(4, dtype="int32")]
    return Ranges()


def creation_cases(mx):
    out = {}
    for hybrid in (False, True):
        block = _ranges_block(mx)
        if hybrid:
            block.hybridize()
        results = block(mx.nd.zeros((1,)))
        out["ranges" + ("_hybrid" if hybrid else "")] = {
            f"out{i}": r.asnumpy() for i, r in enumerate(results)}
        out["ranges" + ("_hybrid" if hybrid else "")]["dtypes"] = [np.dtype(r.dtype).name for r in results]
    return out


def control_flow_cases(mx):
    nd, out = mx.nd, {}
    x, W, U = _data((4, 2, 3), 10), _data((3, 5), 11), _data((5, 5), 12)
    h0 = np.zeros((2, 5), np.float32)
    for hybrid in (False, True):
        block = _rnn_block(mx, W, U)
        if hybrid:
            block.hybridize()
        xs, h = nd.array(x), nd.array(h0)
        xs.attach_grad()
        with mx.autograd.record():
            outs, last = block(xs, h)
            loss = (outs * nd.array(np.linspace(-1, 1, outs.size).reshape(outs.shape))).sum() + last.sum()
        loss.backward()
        out["foreach_rnn" + ("_hybrid" if hybrid else "")] = {
            "outs": outs.asnumpy(), "last": last.asnumpy(), "grad_x": xs.grad.asnumpy(),
            "grad_W": block.W.grad().asnumpy(), "grad_U": block.U.grad().asnumpy()}
    for hybrid in (False, True):
        block = _while_block(mx)
        if hybrid:
            block.hybridize()
        xv = nd.array([1.0, 2.0])
        xv.attach_grad()
        with mx.autograd.record():
            o0, o1, i, s = block(xv, nd.zeros((1,)))
            loss = o0[:4].sum() + s.sum()
        loss.backward()
        case = {"steps_o0": o0[:4].asnumpy(), "steps_o1": o1[:4].asnumpy(), "i": i.asnumpy(), "s": s.asnumpy(),
                "padded_shape": list(o0.shape)}
        if not hybrid:   # MXNet 1.9.1's hybridized while_loop returns garbage gradients here
            case["grad_x"] = xv.grad.asnumpy()
        out["while_count" + ("_hybrid" if hybrid else "")] = case
    for hybrid in (False, True):
        block = _cond_block(mx)
        if hybrid:
            block.hybridize()
        for label, v in (("pos", [1.0, 4.0]), ("neg", [-1.0, -4.0])):
            xv = nd.array(v)
            xv.attach_grad()
            with mx.autograd.record():
                y = block(xv)
            y.backward()
            out[f"cond_{label}" + ("_hybrid" if hybrid else "")] = {"y": y.asnumpy(), "grad": xv.grad.asnumpy()}
    a, b = nd.array([1.0]), nd.array([2.0])
    for x_ in (a, b):
        x_.attach_grad()
    with mx.autograd.record():
        y = nd.contrib.cond(a * b < 5, lambda: (a + 5) * (b + 5), lambda: (a - 5) * (b - 5))
    y.backward()
    out["cond_eager_doc"] = {"y": y.asnumpy(), "grad_a": a.grad.asnumpy(), "grad_b": b.grad.asnumpy()}
    return out


def all_cases(mx):
    return {**operator_cases(mx), **control_flow_cases(mx), **creation_cases(mx)}


def _jsonable(tree):
    if isinstance(tree, dict):
        return {k: _jsonable(v) for k, v in tree.items()}
    if isinstance(tree, np.ndarray):
        return tree.astype(np.float64).tolist()
    return tree


if __name__ == "__main__":
    if sys.argv[1] == "mxnet":
        import mxnet as mx_module
    else:
        import graphc as mx_module
    print(json.dumps(_jsonable(all_cases(mx_module))))
