"""Cases for the MXNet 1.x operators graphc added to close issue 13's gaps (legacy output layers,
misc math, AMP checks, optimizer updates, spatial and image operators), run alike under Apache
MXNet 1.9.1 and graphc: `python gap_ops_cases.py mxnet|graphc` prints {case: {name: list}} as
JSON. test_gap_ops_mxnet.py compares graphc's answers with the recorded ones
(mxnet_gap_ops_reference.json) and, where MXNet's venv exists, with live ones. Inputs are fixed
numpy arrays, so both systems see the same numbers."""
import json
import sys

import numpy as np


def _data(shape, seed, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _grad_of(mx, fn, *arrays, head=True):
    """(value of fn(*arrays), gradient of sum(value * fixed weights) for each array). head=False:
    backward with the default head gradient (ones), as output layers are used."""
    xs = [mx.nd.array(a) for a in arrays]
    for x in xs:
        x.attach_grad()
    with mx.autograd.record():
        y = fn(*xs)
        if head:
            w = mx.nd.array(np.linspace(0.5, 1.5, int(np.prod(y.shape))).reshape(y.shape).astype(np.float32))
            y2 = (y * w).sum()
    (y2 if head else y).backward()
    return y.asnumpy(), [x.grad.asnumpy() for x in xs]


def output_layer_cases(mx):
    nd, out = mx.nd, {}
    x = _data((3, 4), 1)
    label = _data((3, 4), 2, 0.0, 1.0)
    for name in ("LinearRegressionOutput", "LogisticRegressionOutput", "MAERegressionOutput"):
        # the head gradient (here 7s) is ignored by MXNet's legacy backward
        xs = nd.array(x)
        xs.attach_grad()
        with mx.autograd.record():
            y = getattr(nd, name)(xs, nd.array(label), grad_scale=2.0)
        y.backward(nd.ones(y.shape) * 7)
        out[name] = {"y": y.asnumpy(), "grad": xs.grad.asnumpy()}
    y, (g, _) = _grad_of(mx, lambda a, b: nd.LinearRegressionOutput(a, b), _data((4, 1), 3), _data((4,), 4), head=False)
    out["linear_regression_vector_label"] = {"y": y, "grad": g}
    cls = np.array([0, 3, 1], np.float32)
    for lin in (False, True):
        y, (g, _) = _grad_of(mx, lambda a, b: nd.SVMOutput(a, b, margin=0.5, regularization_coefficient=1.5,
                                                           use_linear=lin), x, cls, head=False)
        out[f"svm_linear{lin}"] = {"y": y, "grad": g}
    # instance mode on 2-D data: for more dimensions MXNet 1.9.1's backward is not the Jacobian
    # of its own forward (graphc's is, checked by finite differences); its forward is compared
    for mode, shape in (("instance", (3, 4)), ("channel", (2, 3, 2))):
        y, (g,) = _grad_of(mx, lambda a: nd.SoftmaxActivation(a, mode=mode), _data(shape, 5))
        out[f"softmax_activation_{mode}"] = {"y": y, "grad": g}
    out["softmax_activation_instance_3d"] = {"y": nd.SoftmaxActivation(nd.array(_data((2, 3, 2), 5))).asnumpy()}
    return out


def math_cases(mx):
    nd, out = mx.nd, {}
    v = _data((2, 5), 6, -0.95, 0.95)
    y, (g,) = _grad_of(mx, nd.erfinv, v)
    out["erfinv"] = {"y": y, "grad": g}
    y, (g,) = _grad_of(mx, lambda a: nd.hard_sigmoid(a, alpha=0.3, beta=0.4), _data((3, 4), 7, -4, 4))
    out["hard_sigmoid"] = {"y": y, "grad": g}
    out["rint"] = {"y": nd.rint(nd.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.6, -2.6])).asnumpy()}
    y, (g,) = _grad_of(mx, lambda a: nd.softmin(a, axis=0, temperature=2.0), _data((3, 4), 8))
    out["softmin"] = {"y": y, "grad": g}
    xs = _data((3, 4), 24)
    length = mx.nd.array([1, 3, 4], dtype="int32")
    y, (g,) = _grad_of(mx, lambda a: nd.softmax(a, length, axis=-1, use_length=True), xs)
    out["softmax_length"] = {"y": y, "grad": g}
    for axis in (None, 1):
        y, (g,) = _grad_of(mx, lambda a: nd.cumsum(a, axis=axis), _data((2, 3), 9))
        out[f"cumsum_axis{axis}"] = {"y": y, "grad": g}
    d = _data((1, 8, 2, 3), 10)
    y, (g,) = _grad_of(mx, lambda a: nd.depth_to_space(a, block_size=2), d)
    out["depth_to_space"] = {"y": y, "grad": g}
    y, (g,) = _grad_of(mx, lambda a: nd.space_to_depth(a, block_size=2), _data((1, 2, 4, 6), 11))
    out["space_to_depth"] = {"y": y, "grad": g}
    out["reshape_like"] = {"shape": list(nd.reshape_like(nd.zeros((30, 7)), nd.zeros((15, 2, 4)), lhs_begin=0,
                                                         lhs_end=1, rhs_begin=0, rhs_end=2).shape)}
    out["argmax_channel"] = {"y": nd.argmax_channel(nd.array(_data((3, 5), 12))).asnumpy()}
    # (MXNet declares no gradient for khatri_rao; graphc's is checked by finite differences)
    out["khatri_rao"] = {"y": nd.khatri_rao(nd.array(_data((2, 3), 13)), nd.array(_data((3, 3), 14)),
                                            nd.array(_data((2, 3), 15))).asnumpy()}
    idx = nd.array([[1, 0, 1], [2, 1, 0]])
    out["ravel_multi_index"] = {"y": nd.ravel_multi_index(idx, shape=(2, 3)).asnumpy()}
    out["unravel_index"] = {"y": nd.unravel_index(nd.array([5, 1, 3]), shape=(2, 3)).asnumpy()}
    counts, edges = nd.histogram(nd.array(_data((20,), 16)), bins=4, range=(-1, 1))
    out["histogram"] = {"counts": counts.asnumpy(), "edges": edges.asnumpy()}
    counts, edges = nd.histogram(nd.array(_data((20,), 16)), bins=nd.array([-1.0, -0.2, 0.1, 0.9]))
    out["histogram_edges"] = {"counts": counts.asnumpy(), "edges": edges.asnumpy()}
    parts = nd.split_v2(nd.array(_data((2, 7), 17)), (2, 3), axis=1)
    out["split_v2"] = {f"p{i}": p.asnumpy() for i, p in enumerate(parts)}
    parts = nd.split_v2(nd.array(_data((6, 2), 18)), 3, axis=0)
    out["split_v2_sections"] = {f"p{i}": p.asnumpy() for i, p in enumerate(parts)}
    # (no gradient in MXNet; graphc's is checked by finite differences)
    out["fill_element_0index"] = {"y": nd.fill_element_0index(nd.array(_data((3, 4), 19)), nd.array(_data((3,), 20)),
                                                              nd.array([1, 0, 3])).asnumpy()}
    o = nd.zeros((3, 4))
    nd.onehot_encode(nd.array([3, 0, 1]), o)
    out["onehot_encode"] = {"y": o.asnumpy()}
    a, b = nd.array([[0, 1, 2]]), nd.array([[1], [0]])
    out["logical"] = {"and": nd.logical_and(a, b).asnumpy(), "or": nd.logical_or(a, b).asnumpy(),
                      "xor": nd.logical_xor(a, b).asnumpy()}
    out["moveaxis"] = {"shape": list(nd.moveaxis(nd.zeros((2, 3, 4)), 0, -1).shape)}
    return out


def amp_cases(mx):
    nd, out = mx.nd, {}
    h, f = nd.array([1.5], dtype="float16"), nd.array([2.5], dtype="float32")
    out["amp_multicast"] = {"dtypes": [str(np.dtype(x.dtype)) for x in nd.amp_multicast(h, f, num_outputs=2)],
                            "narrow": [str(np.dtype(x.dtype)) for x in nd.amp_multicast(h, f, num_outputs=2,
                                                                                        cast_narrow=True)]}
    out["amp_cast"] = {"dtypes": [str(np.dtype(nd.amp_cast(nd.array([1], dtype="int32"), dtype="float16").dtype)),
                                  str(np.dtype(nd.amp_cast(f, dtype="float16").dtype))]}
    out["all_finite"] = {"ok": nd.all_finite(nd.array([1.0, 2.0])).asnumpy(),
                         "inf": nd.all_finite(nd.array([1.0, np.inf])).asnumpy(),
                         "multi": nd.multi_all_finite(nd.array([1.0]), nd.array([np.nan]), num_arrays=2).asnumpy()}
    out["multi_sum_sq"] = {"y": nd.multi_sum_sq(nd.array(_data((3, 2), 21)), nd.array(_data((4,), 22)),
                                                num_arrays=2).asnumpy()}
    out["multi_lars"] = {"y": nd.multi_lars(nd.array([0.1, 0.2, 0.3]), nd.array([4.0, 0.0, 9.0]), nd.array([1.0, 1.0, 0.0]),
                                            nd.array([0.01, 0.1, 0.0]), eta=0.5, eps=1e-3, rescale_grad=2.0).asnumpy()}
    return out


def _state(seed, shape=(2, 3), low=-1.0, high=1.0):
    return _data(shape, seed, low, high)


def update_cases(mx):
    """Each update called as MXNet's optimizers call it: out=weight, states mutated in place;
    two steps, so the states' new values feed the second step."""
    nd, out = mx.nd, {}
    w0, g0 = _state(30), _state(31, low=-3, high=3)
    pos = lambda seed: _state(seed, low=0.1, high=1.0)  # noqa: E731
    specs = {
        "sgd_update": ([], dict(lr=0.1, wd=0.01, rescale_grad=0.5, clip_gradient=0.4)),
        "sgd_mom_update": ([_state(32)], dict(lr=0.1, momentum=0.9, wd=0.01, rescale_grad=0.5)),
        "nag_mom_update": ([_state(33)], dict(lr=0.1, momentum=0.9, wd=0.05, clip_gradient=1.0)),
        "adam_update": ([_state(34), pos(35)], dict(lr=0.01, beta1=0.8, beta2=0.9, epsilon=1e-6, wd=0.1,
                                                    clip_gradient=2.0)),
        "rmsprop_update": ([pos(36)], dict(lr=0.01, gamma1=0.8, epsilon=1e-6, wd=0.1, clip_weights=0.9)),
        "rmspropalex_update": ([pos(37) + 1, _state(38) * 0.1, _state(39)], dict(lr=0.01, gamma1=0.8, gamma2=0.7,
                                                                               wd=0.1, clip_gradient=2.0)),
        "ftrl_update": ([_state(40), pos(41)], dict(lr=0.1, lamda1=0.05, beta=1.5, wd=0.1, rescale_grad=0.7)),
        "ftml_update": ([pos(42), pos(43), _state(44)], dict(lr=0.1, beta1=0.6, beta2=0.9, t=3, wd=0.1,
                                                            clip_grad=2.0)),
        "signsgd_update": ([], dict(lr=0.1, wd=0.1)),
        "signum_update": ([_state(45)], dict(lr=0.1, momentum=0.8, wd=0.1, wd_lh=0.05)),
        "lamb_update_phase1": ([_state(46), pos(47)], dict(beta1=0.8, beta2=0.9, t=2, wd=0.1, rescale_grad=0.5,
                                                           clip_gradient=1.0)),
    }
    for name, (states, kw) in specs.items():
        w = nd.array(w0)
        st = [nd.array(s) for s in states]
        results = {}
        for step in range(2):
            r = getattr(nd, name)(w, nd.array(g0 * (step + 1)), *st, out=w if name != "lamb_update_phase1" else None, **kw)
            if name == "lamb_update_phase1":
                results["direction"] = r.asnumpy()
        results["weight"] = w.asnumpy()
        for i, s in enumerate(st):
            results[f"state{i}"] = s.asnumpy()
        out[name] = results
    w = nd.array(w0)
    nd.lamb_update_phase2(w, nd.array(g0), nd.array([2.0]), nd.array([0.5]), lr=0.1, lower_bound=0.1,
                          upper_bound=1.5, out=w)
    out["lamb_update_phase2"] = {"weight": w.asnumpy()}
    # fp32 masters: float16 weights, float32 master copies
    w16, w32, mom = nd.array(w0, dtype="float16"), nd.array(w0), nd.array(_state(48))
    nd.mp_sgd_mom_update(w16, nd.array(g0, dtype="float16"), mom, w32, lr=0.1, momentum=0.9, wd=0.01, out=w16)
    out["mp_sgd_mom_update"] = {"weight": w16.asnumpy(), "weight32": w32.asnumpy(), "mom": mom.asnumpy()}
    # several weights at once
    ws = [nd.array(w0), nd.array(w0 * 2)]
    moms = [nd.array(_state(49)), nd.array(_state(50))]
    args = [a for i in range(2) for a in (ws[i], nd.array(g0 * (i + 1)), moms[i])]
    nd.multi_sgd_mom_update(*args, lrs=(0.1, 0.2), wds=(0.01, 0.0), momentum=0.9, num_weights=2, out=ws)
    out["multi_sgd_mom_update"] = {"w0": ws[0].asnumpy(), "w1": ws[1].asnumpy(), "m0": moms[0].asnumpy(),
                                   "m1": moms[1].asnumpy()}
    ws = [nd.array(w0), nd.array(w0 * 2)]
    args = [a for i in range(2) for a in (ws[i], nd.array(g0 * (i + 1)))]
    nd.preloaded_multi_sgd_update(*args, nd.array([0.1, 0.2]), nd.array([0.0, 0.1]), num_weights=2,
                                  clip_gradient=1.0, out=ws)
    out["preloaded_multi_sgd_update"] = {"w0": ws[0].asnumpy(), "w1": ws[1].asnumpy()}
    w, mean, var = nd.array(w0), nd.array(_state(51)), nd.array(pos(52))
    nd.contrib.adamw_update(w, nd.array(g0), mean, var, rescale_grad=nd.array([0.5]), lr=0.01, eta=0.5, wd=0.1,
                            out=w)
    out["adamw_update"] = {"weight": w.asnumpy(), "mean": mean.asnumpy(), "var": var.asnumpy()}
    # (MXNet 1.9.1 implements _contrib_group_adagrad_update on GPUs only: tests/ops/op_cases_gap.py has it)
    ws = [nd.array(_state(54)), nd.array(_state(55, (4,)))]
    gs = [nd.array(_state(56)), nd.array(_state(57, (4,)))]
    ms = [nd.array(_state(58)), nd.array(_state(59, (4,)))]
    vs = [nd.array(pos(60)), nd.array(_state(61, (4,), 0.1, 1.0))]
    nd.contrib.multi_adamw_update(ws, gs, ms, vs, rescale_grad=0.5, lrs=[0.1, 0.2], wds=[0.01, 0.0], etas=[1.0, 0.5],
                                  out=ws)
    out["multi_adamw_update"] = {"w0": ws[0].asnumpy(), "w1": ws[1].asnumpy(), "m0": ms[0].asnumpy(),
                                 "v1": vs[1].asnumpy()}
    nd.contrib.multi_lamb_update(ws, gs, ms, vs, step_count=[2, 3], lrs=[0.1, 0.2], wds=[0.01, 0.0], out=ws,
                                 lower_bound=0.1, upper_bound=10.0)
    out["multi_lamb_update"] = {"w0": ws[0].asnumpy(), "w1": ws[1].asnumpy(), "m1": ms[1].asnumpy(),
                                "v0": vs[0].asnumpy()}
    return out


def spatial_cases(mx):
    nd, out = mx.nd, {}
    y, (g,) = _grad_of(mx, lambda a: nd.LRN(a, alpha=0.01, beta=0.6, knorm=1.5, nsize=3), _data((2, 5, 2, 3), 60))
    out["LRN"] = {"y": y, "grad": g}
    y, (g,) = _grad_of(mx, lambda a: nd.Crop(a, offset=(1, 2), h_w=(2, 3)), _data((1, 2, 4, 6), 61))
    out["Crop"] = {"y": y, "grad": g}
    out["Crop_center_like"] = {"y": nd.Crop(nd.array(_data((1, 2, 5, 6), 62)), nd.zeros((1, 1, 2, 3)), num_args=2,
                                            center_crop=True).asnumpy()}
    kw = dict(kernel=(2, 3), stride=(1, 2), dilate=(2, 1), pad=(1, 1))
    y, (g,) = _grad_of(mx, lambda a: nd.im2col(a, **kw), _data((2, 2, 5, 6), 63))
    out["im2col"] = {"y": y, "grad": g}
    y, (g,) = _grad_of(mx, lambda a: nd.col2im(a, output_size=(5, 6), **kw), _data(tuple(y.shape), 64))
    out["col2im"] = {"y": y, "grad": g}
    theta = np.array([[0.9, 0.1, 0.05, -0.2, 1.1, 0.1], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]], np.float32)
    y, (g,) = _grad_of(mx, lambda a: nd.GridGenerator(a, transform_type="affine", target_shape=(3, 4)), theta)
    out["GridGenerator_affine"] = {"y": y, "grad": g}
    y, (g,) = _grad_of(mx, lambda a: nd.GridGenerator(a, transform_type="warp"), _data((1, 2, 3, 4), 65))
    out["GridGenerator_warp"] = {"y": y, "grad": g}
    grid = _data((2, 2, 3, 4), 66, -1.2, 1.2)
    y, (g0, g1) = _grad_of(mx, nd.BilinearSampler, _data((2, 3, 4, 5), 67), grid)
    out["BilinearSampler"] = {"y": y, "g_data": g0, "g_grid": g1}
    y, (g0, g1) = _grad_of(mx, lambda a, b: nd.SpatialTransformer(a, b, target_shape=(3, 4), transform_type="affine",
                                                                  sampler_type="bilinear"),
                           _data((2, 3, 4, 5), 68), theta)
    out["SpatialTransformer"] = {"y": y, "g_data": g0, "g_loc": g1}
    rois = np.array([[0, 0.0, 0.0, 7.0, 5.0], [1, 2.2, 1.4, 6.6, 7.9], [0, 3.0, 3.0, 3.0, 3.0]], np.float32)
    feat = np.random.default_rng(69).permutation(2 * 3 * 4 * 5).reshape(2, 3, 4, 5).astype(np.float32)
    y, (g, _) = _grad_of(mx, lambda a, r: nd.ROIPooling(a, r, pooled_size=(2, 3), spatial_scale=0.5), feat, rois)
    out["ROIPooling"] = {"y": y, "grad": g}
    for label, kw in (("multiply", dict(kernel_size=1, max_displacement=2, stride1=1, stride2=1, pad_size=2)),
                      ("absdiff", dict(kernel_size=3, max_displacement=2, stride1=2, stride2=2, pad_size=3,
                                       is_multiply=False))):
        y, (g0, g1) = _grad_of(mx, lambda a, b: nd.Correlation(a, b, **kw), _data((1, 2, 6, 7), 72), _data((1, 2, 6, 7), 73))
        out[f"Correlation_{label}"] = {"y": y, "g1": g0, "g2": g1}
    return out


def image_cases(mx):
    """Deterministic image operators, and the random colour ones with min_factor == max_factor.
    MXNet 1.9.1 takes NHWC batches in to_tensor, crop and resize only; graphc in all of them."""
    nd, out = mx.nd, {}
    img = np.random.default_rng(70).integers(0, 256, (5, 6, 3)).astype(np.float32)
    batch = np.random.default_rng(71).integers(0, 256, (2, 4, 5, 3)).astype(np.float32)
    u8, fl = nd.array(img, dtype="uint8"), nd.array(img)
    out["to_tensor"] = {"hwc": nd.image.to_tensor(u8).asnumpy(), "nhwc": nd.image.to_tensor(nd.array(batch)).asnumpy()}
    y, (g,) = _grad_of(mx, lambda a: nd.image.normalize(a, mean=(0.1, 0.2, 0.3), std=(0.5, 2.0, 4.0)),
                       _data((3, 4, 5), 72))
    out["normalize"] = {"y": y, "grad": g}
    # an even height: MXNet 1.9.1's flip_top_bottom leaves the middle row of an odd height
    # unwritten (garbage), and its flips' backward passes the head gradient unflipped (graphc's
    # gradient flips it, the Jacobian's transpose, checked by finite differences)
    for name in ("flip_left_right", "flip_top_bottom"):
        out[name] = {"y": getattr(nd.image, name)(nd.array(img[:4])).asnumpy()}
    y, (g,) = _grad_of(mx, lambda a: nd.image.crop(a, x=1, y=2, width=3, height=2), img)
    out["crop"] = {"y": y, "grad": g, "batch": nd.image.crop(nd.array(batch), x=0, y=1, width=4, height=3).asnumpy()}
    out["resize"] = {"u8": nd.image.resize(u8, size=(4, 7)).asnumpy(), "float": nd.image.resize(fl, size=(9, 3)).asnumpy(),
                     "nearest": nd.image.resize(u8, size=(8, 4), interp=0).asnumpy(),
                     "keep_ratio": nd.image.resize(u8, size=4, keep_ratio=True).asnumpy(),
                     "batch": nd.image.resize(nd.array(batch, dtype="uint8"), size=(3, 3)).asnumpy()}
    out["adjust_lighting"] = {"u8": nd.image.adjust_lighting(u8, alpha=(0.1, -0.2, 0.3)).asnumpy(),
                              "float": nd.image.adjust_lighting(nd.array(batch[0]), alpha=(-1.0, 0.5, 2.0)).asnumpy()}
    for kind, factor in (("brightness", 1.7), ("contrast", 0.4), ("saturation", 0.3), ("hue", 0.3)):
        fn = getattr(nd.image, "random_" + kind)
        out["random_" + kind] = {"u8": fn(u8, min_factor=factor, max_factor=factor).asnumpy(),
                                 "float": fn(nd.array(batch[1]), min_factor=factor, max_factor=factor).asnumpy()}
    return out


def pdf_cases(mx):
    nd, out = mx.nd, {}
    pos = lambda shape, seed, lo=0.2, hi=2.0: _data(shape, seed, lo, hi)  # noqa: E731
    counts = np.array([[0, 1, 3], [2, 5, 1]], np.float32)
    specs = {
        "uniform": ([_data((2, 3), 80, 0.1, 0.9), np.zeros(2, np.float32), np.array([1.0, 2.0], np.float32)], {}),
        "normal": ([_data((2, 3), 81), _data((2,), 82), pos((2,), 83)], {}),
        "gamma": ([pos((2, 3), 84), pos((2,), 85, 1.0, 3.0), pos((2,), 86)], {}),
        "exponential": ([pos((2, 3), 87), pos((2,), 88)], {}),
        "poisson": ([counts, pos((2,), 89, 0.5, 4.0)], {}),
        "negative_binomial": ([counts, pos((2,), 90, 1.0, 4.0), pos((2,), 91, 0.2, 0.8)], {}),
        "generalized_negative_binomial": ([counts, pos((2,), 92, 0.5, 3.0), pos((2,), 93, 0.2, 0.9)], {}),
        "dirichlet": ([np.array([[[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]], [[0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]], np.float32),
                       pos((2, 3), 94, 0.5, 3.0)], {}),
    }
    for dist, (arrays, kw) in specs.items():
        for is_log in (False, True):
            fn = getattr(nd, "random_pdf_" + dist)
            y, grads = _grad_of(mx, lambda *a: fn(*a, is_log=is_log), *arrays)
            # (the sample gradient of a discrete distribution: MXNet's is zero, as graphc's)
            out[f"pdf_{dist}_log{is_log}"] = {"y": y, **{f"g{i}": g for i, g in enumerate(grads)}}
    return out


def contrib_cases(mx):
    """(count_sketch and group_adagrad_update run on GPUs only in MXNet 1.9.1: op_cases_gap.py has them)"""
    nd, out = mx.nd, {}
    feat = _data((2, 3, 5, 6), 100)
    rois = np.array([[0, 0.5, 0.5, 3.2, 2.6], [1, 1.0, 0.0, 4.0, 3.0], [0, 2.2, 1.1, 5.9, 4.3]], np.float32)
    for aligned, ratio in ((False, 2), (True, -1)):
        y, (g, _) = _grad_of(mx, lambda a, r: nd.contrib.ROIAlign(a, r, pooled_size=(2, 3), spatial_scale=0.8,
                                                                  sample_ratio=ratio, aligned=aligned), feat, rois)
        out[f"ROIAlign_aligned{aligned}"] = {"y": y, "grad": g}
    scores = _data((2, 3, 4), 101, 0.0, 1.0)
    for asc, thr, topk in ((False, 0.3, -1), (True, 0.6, 1)):
        rows, cols = nd.contrib.bipartite_matching(nd.array(scores), is_ascend=asc, threshold=thr, topk=topk)
        out[f"bipartite_matching_asc{asc}"] = {"rows": rows.asnumpy(), "cols": cols.asnumpy()}
    anchors = nd.array([[[0.1, 0.1, 0.5, 0.6], [0.2, 0.3, 0.9, 0.8], [0.0, 0.0, 0.3, 0.4]]])
    refs = nd.array([[[0.15, 0.1, 0.55, 0.7], [0.3, 0.3, 0.8, 0.9]]])
    t, m = nd.contrib.box_encode(nd.array([[1, 0, 1]]), nd.array([[1, 0, 0]]), anchors, refs,
                                 nd.array([0.0, 0.1, 0.0, -0.1]), nd.array([0.1, 0.1, 0.2, 0.2]))
    out["box_encode"] = {"targets": t.asnumpy(), "masks": m.asnumpy()}
    deltas = nd.array(_data((1, 3, 4), 102))
    out["box_decode"] = {
        "corner": nd.contrib.box_decode(deltas, anchors, std0=0.1, std1=0.1, std2=0.2, std3=0.2, clip=0.1,
                                        format="corner").asnumpy(),
        "center": nd.contrib.box_decode(deltas, anchors).asnumpy()}
    rng = np.random.default_rng(103)
    cls = rng.uniform(0, 1, (2, 4, 7)).astype(np.float32)
    cls /= cls.sum(1, keepdims=True)
    loc = rng.uniform(-0.5, 0.5, (2, 28)).astype(np.float32)
    corner = rng.uniform(0, 0.5, (1, 7, 2))
    anc = np.concatenate([corner, corner + rng.uniform(0.2, 0.5, (1, 7, 2))], -1).astype(np.float32)
    for label, kw in (("default", {}), ("forced", dict(force_suppress=True, threshold=0.3, nms_threshold=0.3)),
                      ("noclip", dict(clip=False, threshold=0.35, variances=(0.2, 0.2, 0.1, 0.1), nms_threshold=0.1))):
        out[f"MultiBoxDetection_{label}"] = {"y": nd.contrib.MultiBoxDetection(nd.array(cls), nd.array(loc),
                                                                               nd.array(anc), **kw).asnumpy()}
    corner = rng.uniform(0, 0.6, (1, 20, 2))
    anc = np.concatenate([corner, corner + rng.uniform(0.1, 0.4, (1, 20, 2))], -1).astype(np.float32)
    gt_corner = rng.uniform(0, 0.6, (2, 3, 2))
    boxes = np.concatenate([gt_corner, gt_corner + rng.uniform(0.15, 0.4, (2, 3, 2))], -1)
    label = np.concatenate([np.array([[[0], [2], [1]], [[1], [-1], [-1]]]), boxes], -1).astype(np.float32)
    label[1, 1:, 1:] = -1
    cls_pred = rng.uniform(-1, 1, (2, 3, 20)).astype(np.float32)
    for tag, kw in (("plain", dict(overlap_threshold=0.4)),
                    ("mining", dict(negative_mining_ratio=3.0, negative_mining_thresh=0.4, minimum_negative_samples=2,
                                    variances=(0.2, 0.2, 0.1, 0.1)))):
        lt, lm, ct = nd.contrib.MultiBoxTarget(nd.array(anc), nd.array(label), nd.array(cls_pred), **kw)
        out[f"MultiBoxTarget_{tag}"] = {"loc": lt.asnumpy(), "mask": lm.asnumpy(), "cls": ct.asnumpy()}
    a = nd.array([1.0, 2.0])
    out["allclose"] = {"close": nd.contrib.allclose(a, nd.array([1.0, 2.00001])).asnumpy(),
                       "far": nd.contrib.allclose(a, nd.array([1.0, 2.1]), rtol=1e-3, atol=1e-3).asnumpy()}
    return out


def all_cases(mx):
    return {**output_layer_cases(mx), **math_cases(mx), **amp_cases(mx), **update_cases(mx), **spatial_cases(mx),
            **image_cases(mx), **pdf_cases(mx), **contrib_cases(mx)}


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
