"""Cases for MXNet 1.x behaviours that MXNet's own unit tests (test_ndarray.py, test_operator.py,
test_random.py) rely on, run alike under Apache MXNet 1.9.1 and graphc:
`python mxnet_unittest_fix_cases.py mxnet|graphc` prints {case: {name: list}} as JSON.
test_nd_mxnet_unittest_semantics.py compares graphc's answers with the recorded ones
(mxnet_unittest_fix_reference.json) and, where MXNet's venv exists, with live ones.
Inputs are fixed numpy arrays, so both systems see the same numbers."""
import json
import sys

import numpy as np


def _data(shape, seed, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _weights(shape):
    return np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape).astype(np.float32)


def _grads(mx, fn, *arrays, dtype="float32"):
    """(value of fn(*arrays), gradients of sum(value * fixed weights))."""
    xs = [mx.nd.array(a, dtype=dtype) for a in arrays]
    for x in xs:
        x.attach_grad()
    with mx.autograd.record():
        y = fn(*xs)
    y.backward(mx.nd.array(_weights(y.shape), dtype=dtype))
    return y.asnumpy(), [x.grad.asnumpy() for x in xs]


def case_advanced_getitem(mx):
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    keys = {"pairs": ([1, 0], [2, 1]), "slice_between": ([1, 0], slice(None), [3, 1]),
            "int_then_lists": (0, [2, 1], [0, 0]), "list_axis0": [1, 0, 1],
            "slice_then_list": (slice(None), [0, 2]), "nested": ([[0], [1]], [[1, 2]]),
            "tuple_part": ([1, 0], slice(1, 3), (2, 3))}
    out = {}
    for name, key in keys.items():
        y, (g,) = _grads(mx, lambda a: a[key], x)
        out[name] = y
        out[name + "_shape"] = np.array(y.shape, dtype=np.float32)
        out[name + "_grad"] = g
    a = mx.nd.array(x)
    out["nd_keys"] = a[mx.nd.array([1, 0]), mx.nd.array([2, 0])].asnumpy()
    return out


def case_setitem(mx):
    a = mx.nd.zeros((2, 3, 4))
    a[1, 2, 3] = [7]                       # a one-element list into one element
    a[[0, 1], [1, 2]] = 5                  # an advanced key
    a[0, [0, 2], 1:3] = np.array([[1, 2], [3, 4]], dtype=np.float32)
    a[(1, [0], mx.nd.array([[1]]))] = 9    # an NDArray inside the key
    return {"a": a.asnumpy()}


def case_truth_and_lists(mx):
    x = mx.nd.array(np.arange(12, dtype=np.float32).reshape(3, 4))
    parts = mx.nd.split(x, num_outputs=2, axis=1)
    return {"empty_is_false": [float(bool(mx.nd.array([])))],
            "one_zero": [float(bool(mx.nd.zeros((1,))))],
            "one_one": [float(bool(mx.nd.ones((1, 1))))],
            "split_is_list": [float(isinstance(parts, list))],
            "topk_both_is_list": [float(isinstance(mx.nd.topk(x, ret_typ="both", k=2), list))],
            "split_1": parts[1].asnumpy()}


def case_creation_out(mx):
    y = mx.nd.zeros((2, 3))
    same = [mx.nd.ones((2, 3), out=y) is y]
    ones = y.asnumpy().copy()
    same.append(mx.nd.full((2, 3), 5, out=y) is y)
    full = y.asnumpy().copy()
    same.append(mx.nd.zeros((2, 3), out=y) is y)
    zeros = y.asnumpy().copy()
    u = mx.nd.zeros((3, 4), dtype="float64")
    same.append(mx.nd.random.uniform(2, 3, out=u) is u)
    drawn = u.asnumpy()
    return {"same": np.array(same, dtype=np.float32), "ones": ones, "full": full, "zeros": zeros,
            "uniform_in_range": [float(drawn.min() >= 2 and drawn.max() < 3 and drawn.std() > 0)],
            "uniform_dtype_f64": [float(u.dtype == np.float64)]}


def case_broadcast_like_axes(mx):
    lhs, rhs = mx.nd.ones((1, 3)), mx.nd.ones((2, 3))
    out = {"none": mx.nd.broadcast_like(lhs, rhs).asnumpy(),
           "lhs_only_empty": mx.nd.broadcast_like(lhs, rhs, lhs_axes=()).asnumpy()}
    try:
        mx.nd.broadcast_like(lhs, rhs, lhs_axes=(), rhs_axes=())
        out["both_empty_raises"] = [0.0]
    except mx.base.MXNetError:
        out["both_empty_raises"] = [1.0]
    return out


def case_head_gradients(mx):
    x = mx.nd.array(_data((3, 4), 1))
    x.attach_grad()
    with mx.autograd.record():
        s = mx.nd.shape_array(x)
    s.backward(mx.nd.ones((5, 6)))          # no gradient rule reads it: any shape goes
    shape_grad = x.grad.asnumpy().copy()
    # an executor copies a float32 head gradient into its float64 output's gradient
    v = mx.sym.Variable("v", dtype="float64")
    exe = (v * v).simple_bind(mx.cpu(), v=(2, 3), type_dict={"v": "float64"})
    exe.arg_dict["v"][:] = _data((2, 3), 2)
    exe.forward(is_train=True)
    exe.backward([mx.nd.array(_weights((2, 3)))])
    d = mx.nd.array(_data((2, 3), 2))
    d.attach_grad()
    with mx.autograd.record():
        y = d * 3
    y.backward(mx.nd.array(_weights((6,))))       # same size, other shape: read as flat memory
    return {"shape_array_grad": shape_grad, "f64_executor_grad": exe.grad_dict["v"].asnumpy(),
            "flat_head_grad": d.grad.asnumpy()}


def case_batchnorm_variants(mx):
    data = _data((4, 3, 2, 2), 3)
    gamma, beta = _data((3,), 4, 0.5, 1.5), _data((3,), 5)
    mean, var = _data((3,), 6), _data((3,), 7, 0.5, 1.5)
    args = [mx.nd.array(a) for a in (data, gamma, beta, mean, var)]
    s = mx.sym.BatchNorm_v1(mx.sym.Variable("x"), name="bn", fix_gamma=False)
    exe = s.bind(mx.cpu(), args={"x": args[0], "bn_gamma": args[1], "bn_beta": args[2]},
                 aux_states={"bn_moving_mean": args[3], "bn_moving_var": args[4]})
    v1 = exe.forward(is_train=False)[0]
    with mx.autograd.record():
        sync = mx.nd.contrib.SyncBatchNorm(*args, fix_gamma=False, output_mean_var=True, key="h5")
        plain = mx.nd.BatchNorm(*args, fix_gamma=False, output_mean_var=True)
    return {"v1_inference": v1.asnumpy(), "sync_out": sync[0].asnumpy(), "sync_mean": sync[1].asnumpy(),
            "sync_var": sync[2].asnumpy(), "plain_invstd": plain[2].asnumpy(),
            "v1_arguments": [float(len(s.list_arguments())), float(len(s.list_auxiliary_states()))]}


def case_bilinear_upsampling(mx):
    out = {}
    for scale in (1, 2, 3, 4):
        k = 2 * scale - scale % 2
        x, w = _data((1, 2, 3, 3), 10 + scale), _data((2, 1, k, k), 20 + scale)
        sym = mx.sym.UpSampling(mx.sym.Variable("data"), mx.sym.Variable("weight"), sample_type="bilinear",
                                scale=scale, num_filter=2, num_args=2)
        arg_shapes, out_shapes, _ = sym.infer_shape(data=(1, 2, 3, 3))
        y, (gx, gw) = _grads(mx, lambda a, b: mx.nd.UpSampling(a, b, sample_type="bilinear", scale=scale,
                                                               num_filter=2, num_args=2), x, w)
        out[f"s{scale}_weight_shape"] = np.array(arg_shapes[1], dtype=np.float32)
        out[f"s{scale}_out_shape"] = np.array(out_shapes[0], dtype=np.float32)
        out[f"s{scale}_y"], out[f"s{scale}_gx"], out[f"s{scale}_gw"] = y, gx, gw
    return out


def case_dot_nd_transposed(mx):
    out = {}
    for name, ash, bsh, ta, tb in [("plain", (2, 3, 4), (4, 2, 3), False, False),
                                   ("ta", (4, 3, 2), (4, 2, 3), True, False),
                                   ("tb", (2, 3, 4), (3, 2, 4), False, True),
                                   ("both", (4, 3, 2), (3, 2, 4), True, True),
                                   ("vec_mat_tb", (3,), (2, 3), False, True)]:
        y, (ga, gb) = _grads(mx, lambda a, b: mx.nd.dot(a, b, transpose_a=ta, transpose_b=tb),
                             _data(ash, 30), _data(bsh, 31), dtype="float64")
        out[name], out[name + "_ga"], out[name + "_gb"] = y, ga, gb
    return out


def case_softmax_output_probability_labels(mx):
    out = {}
    for name, kw, shape in [("plain", {}, (3, 4)), ("preserve_shape", {"preserve_shape": True}, (3, 4, 2)),
                            ("multi_output", {"multi_output": True}, (3, 4, 2)),
                            ("scaled_batch", {"grad_scale": 2.0, "normalization": "batch"}, (3, 4))]:
        label = mx.nd.array(_data(shape, 40, 0.0, 1.0))
        y, (g,) = _grads(mx, lambda a: mx.nd.SoftmaxOutput(a, label, **kw), _data(shape, 41))
        out[name], out[name + "_grad"] = y, g
    return out


def case_as_list(mx):
    from_tuple = mx.base._as_list((1, 2))
    return {"scalar": np.array(mx.base._as_list(3), dtype=np.float32),
            "tuple_kept": [float(isinstance(from_tuple, tuple))],
            "list_kept": [float(len(mx.base._as_list([4, 5])))]}


CASES = [case_advanced_getitem, case_setitem, case_truth_and_lists, case_creation_out,
         case_broadcast_like_axes, case_head_gradients, case_batchnorm_variants, case_bilinear_upsampling,
         case_dot_nd_transposed, case_softmax_output_probability_labels, case_as_list]


def all_cases(mx):
    return {c.__name__[len("case_"):]: c(mx) for c in CASES}


def _jsonable(answers):
    return {case: {k: np.asarray(v, dtype=np.float64).round(6).tolist() for k, v in values.items()}
            for case, values in answers.items()}


if __name__ == "__main__":
    if sys.argv[1:] == ["mxnet"]:
        import mxnet as mx
    else:
        import graphc as mx
    print(json.dumps(_jsonable(all_cases(mx))))
