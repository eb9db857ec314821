"""MXNet 1.x behaviours of the hand-built symbol API, run alike under Apache MXNet 1.9.1 and
graphc: `python symbol1x_cases.py mxnet|graphc` prints {case: answer} as JSON, and
test_symbol_mxnet1x.py compares graphc's answers with the recorded ones
(mxnet_symbol1x_reference.json; re-record with
`bench/.venvs/mxnet/bin/python tests/frontend/symbol1x_cases.py mxnet > tests/frontend/mxnet_symbol1x_reference.json`)
and, where MXNet's venv exists, with live ones.

Covered: partial shape inference both ways (0 = unknown), infer_shape's (None, None, None) when
incomplete, infer_type(_partial), sym._internal / nd._internal, SliceChannel as one grouped
symbol, get_children, composition, pickling, pow/hypot/maximum on symbol-number mixes, bool(),
operator-level lr_mult/wd_mult/ctx_group attributes and Executor.reshape's shared memory."""
import json
import pickle
import sys
import warnings

import numpy as np


def _shapes(triple):
    return None if triple[0] is None else [[list(s) if s is not None else None for s in part] for part in triple]


def _named(sym, arg_shapes):
    return {n: (list(s) if s is not None else None) for n, s in zip(sym.list_arguments(), arg_shapes)}


def partial_inference_cases(mx):
    sym, out = mx.sym, {}
    a, b = sym.Variable("a", shape=(0, 10)), sym.Variable("b", shape=(12, 0))
    out["elemwise_unify"] = _named(a + b, (a + b).infer_shape()[0])

    a = sym.Variable("a", shape=(0, 10))
    fc = sym.FullyConnected(data=a, num_hidden=21, name="fc")
    d = fc + sym.Variable("c", shape=(5, 0))
    out["fc_batch_from_output"] = _named(d, d.infer_shape()[0])

    a = sym.Variable("a", shape=(0, 10))
    sl = sym.SliceChannel(data=a, num_outputs=10, axis=1, squeeze_axis=True, name="sl")
    d = sl[1] + sym.Variable("c", shape=(5,))
    out["slice_squeezed"] = _named(d, d.infer_shape()[0])
    a = sym.Variable("a", shape=(0, 15, 0))
    d = sym.SliceChannel(data=a, num_outputs=3, name="sl")[2] + sym.Variable("c", shape=(3, 5, 2))
    out["slice_kept_axis"] = _named(d, d.infer_shape()[0])

    a = sym.Variable("a", shape=(0, 4, 0, 0))
    conv = sym.Convolution(data=a, num_filter=6, kernel=(3, 3), pad=(1, 1), name="conv")
    d = conv + sym.Variable("c", shape=(2, 6, 9, 7))
    out["conv_stride1_spatial"] = _named(d, d.infer_shape()[0])

    a, b = sym.Variable("a", shape=(0, 10)), sym.Variable("b", shape=(0, 5))
    d = sym.Variable("d", shape=(2, 0)) + sym.Concat(a, b, num_args=2, dim=1, name="cat")
    out["concat_split_output"] = _named(d, d.infer_shape()[0])

    data, prev = sym.Variable("data"), sym.Variable("prevstate")
    x2h = sym.FullyConnected(data=data, name="x2h", num_hidden=8)
    h2h = sym.FullyConnected(data=prev, name="h2h", num_hidden=8)
    net = sym.Activation(data=sym.elemwise_add(x2h, h2h), name="out", act_type="relu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out["incomplete_is_none"] = _shapes(net.infer_shape(data=(4, 6)))
        out["incomplete_warns"] = any("Cannot decide shape" in str(w.message) for w in caught)
    out["partial_answer"] = _shapes(net.infer_shape_partial(data=(4, 6)))
    out["completed_by_state"] = _shapes(net.infer_shape(data=(4, 6), prevstate=(4, 8)))

    a = sym.Variable("a", shape=(2, 3))
    c = sym.elemwise_add(a, sym.Variable("b"))
    out["given_overrides_var_shape"] = _shapes(c.infer_shape(a=(5, 6)))
    out["var_shape_used"] = _shapes(c.infer_shape())

    w, shift = sym.Variable("weight"), sym.Variable("wshift", shape=(1,))
    wt = sym._internal._identity_with_attr_like_rhs(sym.broadcast_add(w, shift), w)
    net = sym.FullyConnected(data=sym.Variable("data"), weight=wt, num_hidden=11, no_bias=True, name="fc")
    out["backward_through_identity_like_rhs"] = _named(net, net.infer_shape(data=(7, 3))[0])

    x, y = sym.Variable("x"), sym.Variable("y")
    out["dot_partial"] = _shapes(sym.dot(x, y).infer_shape_partial(x=(0, 3, 4), y=(4, 5)))
    out["batch_dot_partial"] = _shapes(sym.batch_dot(x, y).infer_shape_partial(x=(0, 3, 4), y=(0, 4, 5)))
    out["batch_dot_undecidable"] = _shapes(sym.batch_dot(x, y).infer_shape_partial(x=(0, 3, 4), y=(0, 0, 5)))
    out["transpose_partial"] = _shapes(sym.transpose(x, axes=(0, 2, 1)).infer_shape_partial(x=(0, 3, 7)))
    out["unknown_rank"] = _shapes(sym.sin(sym.var("z")).infer_shape_partial())
    out["var_zero_dims"] = _shapes(sym.var("v", shape=(0, 3)).infer_shape_partial())

    return out


def infer_type_cases(mx):
    sym, out = mx.sym, {}
    data, prev = sym.Variable("data"), sym.Variable("prevstate")
    x2h = sym.FullyConnected(data=data, name="x2h", num_hidden=8)
    h2h = sym.FullyConnected(data=prev, name="h2h", num_hidden=8)
    net = sym.elemwise_add(x2h, h2h)
    names = lambda part: [None if t is None else np.dtype(t).name for t in part]   # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["incomplete"] = net.infer_type() == (None, None, None)
    out["partial"] = [names(p) for p in net.infer_type_partial()]
    out["backward_from_one_input"] = [names(p) for p in net.infer_type(prevstate="float16")]
    return out


def namespace_cases(mx):
    sym, nd, out = mx.sym, mx.nd, {}
    x, y = sym.var("x"), sym.var("y")
    xv, yv = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), np.array([[0.5, -1.0], [2.0, 1.5]], np.float32)
    feeds = {"x": nd.array(xv), "y": nd.array(yv)}

    def run(s):
        names = s.list_arguments()
        return s.eval(**{k: feeds[k] for k in names})[0].asnumpy().round(5).tolist()
    out["_plus"] = run(sym._internal._plus(x, y))
    out["_Plus"] = run(sym._internal._Plus(x, y))
    out["_mul_scalar"] = run(sym._internal._mul_scalar(x, scalar=3.0))
    out["_MulScalar"] = run(sym._internal._MulScalar(x, scalar=3.0))
    out["_greater_scalar"] = run(sym._internal._greater_scalar(x, scalar=2.5))
    out["nd._plus"] = nd._internal._plus(feeds["x"], feeds["y"]).asnumpy().tolist()
    out["nd._rminus_scalar"] = nd._internal._rminus_scalar(feeds["x"], scalar=1.0).asnumpy().tolist()
    out["pow_number_symbol"] = run(sym.pow(2, x))
    out["pow_symbol_number"] = run(sym.pow(x, 2))
    out["pow_symbols"] = run(sym.pow(x, y))
    out["power_numbers"] = sym.power(2, 3)
    out["rpow_operator"] = run(2 ** x)
    out["maximum_mixed"] = run(sym.maximum(x, 2.5)) + run(sym.minimum(2.5, x))
    out["hypot_symbols"] = run(sym.hypot(x, y))
    out["hypot_mixed"] = run(sym.hypot(x, 4.0)) + run(sym.hypot(4.0, x))
    try:
        bool(x)
        out["bool"] = "no error"
    except Exception as exc:        # noqa: BLE001  (the class is the answer)
        out["bool"] = type(exc).__name__
    return out


def structure_cases(mx):
    sym, out = mx.sym, {}
    data = sym.Variable("data")
    fc1 = sym.FullyConnected(data=data, name="fc1", num_hidden=10)
    fc2 = sym.FullyConnected(data=fc1, name="fc2", num_hidden=100)
    out["children"] = fc2.get_children().list_outputs()
    out["grandchildren"] = fc2.get_children().get_children().list_outputs()
    out["var_children"] = fc2.get_children()["fc2_weight"].get_children() is None

    sliced = sym.SliceChannel(sym.Variable("data"), num_outputs=3, name="slice")
    out["slice_is_symbol"] = type(sliced).__name__
    out["slice_len"] = len(sliced)
    out["slice_outputs"] = sliced.list_outputs()
    out["slice_item_outputs"] = sliced[1].list_outputs()
    out["slice_children"] = sliced.get_children().list_outputs()
    out["concat_children"] = sym.Concat(*list(sliced), name="cat").get_children().list_outputs()
    out["slice_bound_outputs"] = [list(o.shape) for o in
                                  sliced.simple_bind(mx.cpu(), data=(2, 6), grad_req="null").forward()]

    net2 = sym.FullyConnected(name="fc3", num_hidden=10)
    net2 = sym.Activation(data=net2, act_type="relu", name="relu")
    net2 = sym.FullyConnected(data=net2, name="fc4", num_hidden=20)
    composed = net2(fc3_data=fc2, name="composed")
    out["composed_arguments"] = composed.list_arguments()
    out["composed_outputs"] = composed.list_outputs()
    out["original_untouched"] = net2.list_arguments()
    out["composed_shapes"] = _shapes(composed.infer_shape(data=(2, 5)))
    z = sym.elemwise_add(sym.var("p"), sym.var("q"), name="z")
    z._compose(p=sym.var("r") * 2, name="zz")
    out["compose_in_place"] = [z.list_arguments(), z.list_outputs()]
    try:
        net2(fc3_data=fc2, fc3_weight=data)
        out["unknown_is_fine"] = True
    except Exception:                # noqa: BLE001
        out["unknown_is_fine"] = False
    try:
        net2(nothere=fc2)
        out["bad_keyword"] = "no error"
    except Exception:                # noqa: BLE001
        out["bad_keyword"] = "error"

    copies = pickle.loads(pickle.dumps([fc2, composed]))
    out["pickle_roundtrip"] = [c.list_arguments() for c in copies] + [c.list_outputs() for c in copies]
    out["pickle_shapes"] = _shapes(copies[1].infer_shape(data=(3, 5)))
    return out


def attribute_cases(mx):
    sym, out = mx.sym, {}
    x = sym.var("x")
    fc = sym.FullyConnected(x, num_hidden=2, lr_mult=2.0, wd_mult=0, name="fcl")
    keys = ("__lr_mult__", "__wd_mult__", "lr_mult", "wd_mult", "__ctx_group__")
    pick = lambda attrs: {k: v for k, v in attrs.items() if k in keys}   # noqa: E731
    out["op_attrs"] = pick(fc.list_attr())
    out["weight_attrs"] = pick(fc.attr_dict()["fcl_weight"])
    fc = sym.FullyConnected(x, num_hidden=2, attr={"lr_mult": "3"}, ctx_group="dev1", name="fcm")
    out["attr_dict_and_ctx_group"] = {k: pick(v) for k, v in fc.attr_dict().items()}
    bias = sym.Variable("fc1_bias", lr_mult=1.0)
    fc = sym.FullyConnected(data=x, bias=bias, name="fc1", num_hidden=4, lr_mult=0)
    out["keyword_input_after_gap"] = fc.list_arguments()
    out["gap_weight_attrs"] = {k: pick(v) for k, v in fc.attr_dict().items()}
    act = sym.Activation(x, act_type="relu", __layout__="TNC", name="act")
    out["dunder_attr"] = act.attr("__layout__")
    return out


def executor_cases(mx):
    sym, out = mx.sym, {}
    y = sym.FullyConnected(sym.Variable("x"), num_hidden=4, name="fc")
    exe = y.simple_bind(mx.cpu(), x=(5, 4), grad_req="null")
    exe.arg_arrays[0][:] = 1
    exe.arg_arrays[1][:] = mx.nd.ones((4, 4))
    exe.arg_arrays[2][:] = 0
    small = exe.reshape(x=(3, 4))
    out["down_sized_forward"] = small.forward(is_train=False)[0].asnumpy().tolist()
    out["down_sized_writes_through"] = exe.outputs[0].asnumpy()[:3].tolist()
    exe.arg_arrays[1][:] = 2
    out["down_sized_shares_weight"] = small.arg_arrays[1].asnumpy()[0].tolist()
    big = exe.reshape(allow_up_sizing=True, x=(6, 4))
    big.arg_arrays[0][:] = 0
    out["up_sized_data_is_new"] = exe.arg_arrays[0].asnumpy()[0].tolist()
    out["up_sized_weight_shared"] = big.arg_arrays[1].asnumpy()[0].tolist()
    try:
        exe.reshape(x=(6, 4))
        out["up_size_refused"] = False
    except Exception:                # noqa: BLE001
        out["up_size_refused"] = True
    try:
        exe.reshape(x=(3, 5))        # changes fc_weight, which was not given
        out["unspecified_change_refused"] = False
    except Exception:                # noqa: BLE001
        out["unspecified_change_refused"] = True
    out["partial_shaping_allows_it"] = list(exe.reshape(partial_shaping=True, allow_up_sizing=True, x=(3, 5))
                                            .arg_dict["fc_weight"].shape)
    return out


def all_cases(mx):
    out = {}
    for group in (partial_inference_cases, infer_type_cases, namespace_cases, structure_cases, attribute_cases,
                  executor_cases):
        out.update({f"{group.__name__[:-6]}.{k}": v for k, v in group(mx).items()})
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    if sys.argv[1] == "mxnet":
        import mxnet as mx_module
    else:
        import graphc as mx_module
    print(json.dumps(_jsonable(all_cases(mx_module)), indent=1, sort_keys=True))
