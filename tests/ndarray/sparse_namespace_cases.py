"""Cases run alike under Apache MXNet 1.9.1 and graphc (`python sparse_namespace_cases.py
mxnet|graphc` prints {case: value} as JSON): the nd.sparse functions beyond the sparse operators
(add_n, concat, broadcast_mul, the lazy optimizer updates, dense fallbacks), comparisons with a
scalar, in-place arithmetic and copyto on sparse arrays, gradients with sparse storage
(attach_grad(stype=), dot with a csr lhs), sym.sparse graphs, row_sparse gluon Parameters and
nd.load_frombuffer. MXNet's answers are in mxnet_sparse_namespace_reference.json;
test_sparse_namespace_mxnet.py compares them (and re-runs MXNet live when its venv exists)."""
import json
import os
import sys
import tempfile

import numpy as np

DENSE = np.array([[1, 0, 2], [0, 0, 0], [3, 4, 0], [0, 5, 0]], np.float32)
GRAD = np.array([[0, 0, 0], [1, 2, 3], [0, 0, 0], [4, 5, 6]], np.float32)


def describe(x):
    out = {"stype": x.stype, "value": x.asnumpy().astype(np.float64).tolist()}
    if x.stype == "row_sparse":
        out["indices"] = x.indices.asnumpy().astype(np.int64).tolist()
    return out


def namespace_cases(mx):
    nd, sp = mx.nd, mx.nd.sparse
    r, c = nd.array(DENSE).tostype("row_sparse"), nd.array(DENSE).tostype("csr")
    r2 = nd.array(DENSE * 2 + np.eye(4, 3, dtype=np.float32)).tostype("row_sparse")
    cases = {
        "add_n_rsp": lambda: sp.add_n(r, r2), "elementwise_sum_rsp": lambda: sp.ElementWiseSum(r, r2, r),
        "add_n_rsp_dense": lambda: sp.add_n(r, nd.array(DENSE)),
        "concat_csr_dim0": lambda: sp.concat(c, c, dim=0), "concat_csr_dim1": lambda: sp.concat(c, c, dim=1),
        "broadcast_mul_csr_column": lambda: sp.broadcast_mul(c, nd.array([[1], [2], [3], [4]])),
        "broadcast_div_csr_row": lambda: sp.broadcast_div(c, nd.array([[1, 2, 4]])),
        "stop_gradient_rsp": lambda: sp.stop_gradient(r), "exp_rsp": lambda: sp.exp(r), "cbrt_rsp": lambda: sp.cbrt(r),
        "sigmoid_csr": lambda: sp.sigmoid(c),
        "fully_connected_csr": lambda: sp.FullyConnected(c, nd.array(np.arange(6).reshape(2, 3)), num_hidden=2,
                                                         no_bias=True),
        "rsp_gt_0": lambda: r > 0, "rsp_ge_0": lambda: r >= 0, "csr_eq_1": lambda: c == 1, "csr_ne_0": lambda: c != 0,
        "rsp_lt_2": lambda: r < 2, "rsp_le_neg1": lambda: r <= -1,
    }
    return {name: describe(fn()) for name, fn in cases.items()}


def update_cases(mx):
    nd, sp = mx.nd, mx.nd.sparse
    grad = nd.array(GRAD).tostype("row_sparse")
    start = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = {}
    for lazy in (True, False):
        w, mom = nd.array(start), nd.ones((4, 3))
        sp.sgd_mom_update(w, grad, mom, lr=0.1, momentum=0.9, wd=0.1, lazy_update=lazy, out=w)
        out[f"sgd_mom_lazy_{lazy}"] = {"weight": w.asnumpy().tolist(), "mom": mom.asnumpy().tolist()}
        w = nd.array(start)
        sp.sgd_update(w, grad, lr=0.1, wd=0.1, rescale_grad=0.5, clip_gradient=2.0, lazy_update=lazy, out=w)
        out[f"sgd_lazy_{lazy}"] = {"weight": w.asnumpy().tolist()}
        w, mean, var = nd.array(start), nd.ones((4, 3)), nd.ones((4, 3))
        sp.adam_update(w, grad, mean, var, lr=0.1, wd=0.1, lazy_update=lazy, out=w)
        out[f"adam_lazy_{lazy}"] = {"weight": w.asnumpy().tolist(), "mean": mean.asnumpy().tolist(),
                                    "var": var.asnumpy().tolist()}
    w, z, n = nd.array(start), nd.ones((4, 3)), nd.ones((4, 3))
    sp.ftrl_update(w, grad, z, n, lr=0.1, wd=0.1, out=w)
    out["ftrl_dense_weight"] = {"weight": w.asnumpy().tolist(), "z": z.asnumpy().tolist(), "n": n.asnumpy().tolist()}
    w, hist = nd.array(start), nd.ones((4, 3))
    sp.adagrad_update(w, grad, hist, lr=0.1, epsilon=1e-5, clip_gradient=2.5, out=w)
    out["adagrad"] = {"weight": w.asnumpy().tolist(), "history": hist.asnumpy().tolist()}
    w = nd.array(start + 1).tostype("row_sparse")
    sp.sgd_update(w, grad, lr=0.1, wd=0.1, out=w)
    out["sgd_row_sparse_weight"] = describe(w)
    return out


def inplace_cases(mx):
    nd = mx.nd
    out = {}
    for stype in ("row_sparse", "csr"):
        x, y = nd.array(DENSE).tostype(stype), nd.array(GRAD + DENSE).tostype(stype)
        x += y
        out[f"iadd_{stype}"] = describe(x)
        x *= nd.array(GRAD).tostype(stype)
        out[f"imul_{stype}"] = describe(x)
        target = nd.array(GRAD).tostype(stype)
        nd.array(DENSE).copyto(target)
        out[f"copyto_dense_into_{stype}"] = describe(target)
        dense = nd.zeros((4, 3))
        nd.array(DENSE).tostype(stype).copyto(dense)
        out[f"copyto_{stype}_into_dense"] = describe(dense)
        out[f"num_aux_{stype}"] = nd.array(DENSE).tostype(stype)._num_aux
    return out


def grad_cases(mx):
    nd, autograd = mx.nd, mx.autograd
    out = {}
    for stype in ("default", "row_sparse", "csr"):
        x = nd.array(DENSE).tostype(stype)
        x.attach_grad()
        with autograd.record():
            y = x * 2
        y.backward(out_grad=nd.ones_like(y).tostype(stype) if stype != "default" else nd.ones_like(y))
        out[f"x_times_2_{stype}"] = describe(x.grad)
        for grad_stype in ("default", "row_sparse", "csr"):
            z = nd.zeros((2, 2), stype=stype)
            z.attach_grad(stype=grad_stype)
            out[f"grad_buffer_{stype}_{grad_stype}"] = [z.grad.stype, z.detach().stype]
    lhs = nd.array(np.array([[1, 0, 0, 2], [0, 0, 3, 0]], np.float32)).tostype("csr")
    for name, rhs in (("rsp", nd.array(np.ones((4, 3), np.float32)).tostype("row_sparse")),
                      ("dense_rsp_grad", nd.ones((4, 3)))):
        rhs.attach_grad(stype="row_sparse" if name != "rsp" else None)
        with autograd.record():
            y = nd.dot(lhs, rhs)
        y.backward()
        out[f"dot_csr_{name}"] = describe(rhs.grad)
    return out


def symbol_cases(mx):
    out = {}
    S = mx.sym.sparse
    out["var_storage_type"] = mx.sym.var("w", stype="row_sparse").attr("__storage_type__")
    x, w, i = mx.sym.var("x"), mx.sym.var("w"), mx.sym.var("i")
    graphs = {"dot": S.dot(x, w), "cast_storage": S.cast_storage(x, stype="csr"), "exp": S.exp(x),
              "add_n": S.add_n(x, x, x), "sum_axis0": S.sum(x, axis=0), "clip": S.clip(x, a_min=-1, a_max=2),
              "slice": S.slice(x, begin=(1, 0), end=(3, 2)), "elemwise_mul": S.elemwise_mul(x, x),
              "embedding": S.Embedding(i, w, input_dim=3, output_dim=3, sparse_grad=True),
              "concat": S.concat(x, x, dim=0), "where": S.where(x > 0, x, -x), "norm": S.norm(x),
              "relu": S.relu(x - 1)}
    xv = DENSE * np.array([1, -1, 1], np.float32)
    for name, sym in graphs.items():
        args = {"x": mx.nd.array(xv), "w": mx.nd.array(np.arange(9).reshape(3, 3)),
                "i": mx.nd.array([0, 2])}
        ex = sym.bind(mx.cpu(), {k: v for k, v in args.items() if k in sym.list_arguments()})
        out[f"sym_{name}"] = ex.forward()[0].asnumpy().astype(np.float64).tolist()

    class Retain(mx.gluon.HybridBlock):
        def hybrid_forward(self, F, a, idx):
            return F.sparse.retain(a, idx) * 2
    net = Retain()
    net.hybridize()
    out["hybrid_retain"] = net(mx.nd.array(xv).tostype("row_sparse"),
                               mx.nd.array([1, 3], dtype="int64")).asnumpy().tolist()
    return out


def parameter_cases(mx):
    gluon, out = mx.gluon, {}
    p = gluon.Parameter("weight", shape=(4, 3), stype="row_sparse", grad_stype="row_sparse",
                        init=mx.init.Constant(2.0))
    p.initialize(ctx=mx.cpu(0))
    out["data_stype"] = p._data[0].stype
    out["grad_stype"] = p.grad(mx.cpu(0)).stype
    out["var_storage_type"] = p.var().attr("__storage_type__")
    try:
        p.row_sparse_data(mx.nd.array([0, 2]))
        out["rows_before_trainer"] = "no error"
    except RuntimeError:
        out["rows_before_trainer"] = "RuntimeError"
    gluon.Trainer([p], "sgd")
    out["rows_after_trainer"] = describe(p.row_sparse_data(mx.nd.array([2, 0, 2])))
    for kw in ({"stype": "bogus"}, {"grad_stype": "bogus"}):
        try:
            gluon.Parameter("bad", shape=(2, 2), **kw)
            out[f"invalid_{sorted(kw)[0]}"] = "no error"
        except AssertionError:
            out[f"invalid_{sorted(kw)[0]}"] = "AssertionError"
    params = gluon.ParameterDict("net_")
    params.get("w", shape=(4, 3), stype="row_sparse", init=mx.init.Constant(3.0))
    params.initialize(ctx=mx.cpu())
    gluon.Trainer(params, "sgd")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.params")
        params.save(path)
        with open(path, "rb") as f:
            loaded = mx.nd.load_frombuffer(f.read())
        out["saved_record"] = describe(loaded["net_w"])
        dense = gluon.ParameterDict("net_")
        dense.get("w", shape=(4, 3))
        dense.load(path, mx.cpu())
        out["loaded_into_dense"] = describe(dense.get("w").data(mx.cpu()))
    return out


def buffer_cases(mx):
    nd, out = mx.nd, {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "a.params")
        nd.save(path, [nd.array(DENSE), nd.array(DENSE).tostype("csr")])
        with open(path, "rb") as f:
            buf = f.read()
        out["list"] = [describe(x) for x in nd.load_frombuffer(buf)]
        try:
            nd.load_frombuffer(buf[:-10])
            out["truncated"] = "no error"
        except mx.base.MXNetError:
            out["truncated"] = "MXNetError"
    return out


def all_cases(mx):
    out = {}
    for group in (namespace_cases, update_cases, inplace_cases, grad_cases, symbol_cases, parameter_cases,
                  buffer_cases):
        for name, value in group(mx).items():
            out[f"{group.__name__[:-6]}.{name}"] = value
    return out


if __name__ == "__main__":
    if sys.argv[1:] == ["mxnet"]:
        import mxnet as module
    else:
        import graphc as module
    json.dump(all_cases(module), sys.stdout, sort_keys=True)
