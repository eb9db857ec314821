"""Sparse storage cases run alike under Apache MXNet 1.9.1 and graphc: `python sparse_cases.py
mxnet|graphc` prints {case: {name: value}} as JSON. Each operator case records the result's
storage type, its dense values and (for sparse results) the stored indices; the optimizer cases
record the weight and states after three lazy steps with different rows. MXNet's answers are in
mxnet_sparse_reference.json (test_sparse_mxnet.py compares them, and re-runs MXNet live when its
venv is installed)."""
import json
import sys

import numpy as np

DENSE = np.array([[0, 1, 0, 0], [0, 0, 0, 0], [2, 0, 3, 0], [0, 0, 0, -4], [0, 0, 0, 0]], np.float32)
OTHER = np.arange(20, dtype=np.float32).reshape(5, 4) / 7 - 1


def _describe(x):
    out = {"stype": x.stype, "value": x.asnumpy().astype(np.float64).tolist(), "shape": list(x.shape)}
    if x.stype == "row_sparse":
        out["indices"] = x.indices.asnumpy().astype(np.int64).tolist()
    if x.stype == "csr":
        # MXNet's csr results of arithmetic may carry spare capacity past nnz in .indices (garbage):
        # the layout is compared only where MXNet's is exact (len(indices) == indptr[-1])
        indptr = x.indptr.asnumpy().astype(np.int64)
        indices = x.indices.asnumpy().astype(np.int64)
        if len(indices) == indptr[-1]:
            out["indices"], out["indptr"] = indices.tolist(), indptr.tolist()
    return out


def operator_cases(mx):
    nd, sp = mx.nd, mx.nd.sparse
    c, r = nd.array(DENSE).tostype("csr"), nd.array(DENSE).tostype("row_sparse")
    c2, r2 = nd.array(OTHER * (DENSE != 0) + (DENSE == 0) * (OTHER > 0.8)).tostype("csr"), \
        nd.array(np.where(np.arange(5)[:, None] % 2 == 0, OTHER, 0)).tostype("row_sparse")
    d = nd.array(OTHER)
    rhs = nd.array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
    rhs_t = nd.array(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3))
    lhs = nd.array(np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5))
    cases = {
        "csr_plus_csr": lambda: c + c2, "rsp_plus_rsp": lambda: r + r2, "rsp_minus_rsp": lambda: r - r2,
        "csr_minus_csr": lambda: c - c2, "csr_plus_dense": lambda: c + d, "rsp_plus_dense": lambda: r + d,
        "dense_plus_rsp": lambda: d + r, "rsp_times_rsp": lambda: r * r2, "csr_times_csr": lambda: c * c2,
        "rsp_times_dense": lambda: r * d, "csr_times_dense": lambda: c * d, "dense_times_rsp": lambda: d * r,
        "csr_times_scalar": lambda: c * 2.5, "scalar_times_rsp": lambda: 2.5 * r, "rsp_div_scalar": lambda: r / 4,
        "rsp_plus_scalar": lambda: r + 1, "elemwise_add_rsp": lambda: sp.elemwise_add(r, r2),
        "elemwise_add_csr_dense": lambda: sp.elemwise_add(c, d), "elemwise_mul_dense_csr": lambda: sp.elemwise_mul(d, c),
        "elemwise_mul_dense_rsp": lambda: sp.elemwise_mul(d, r), "elemwise_sub_rsp_dense": lambda: sp.elemwise_sub(r, d),
        "sparse_add_rsp": lambda: sp.add(r, r2), "sparse_multiply_csr_dense": lambda: sp.multiply(c, d),
        "dot_csr_dense": lambda: sp.dot(c, rhs), "dot_csr_t_dense": lambda: sp.dot(c, rhs_t, transpose_a=True),
        "dot_dense_csr": lambda: sp.dot(lhs, c), "dot_csr_rsp": lambda: sp.dot(c, nd.array(rhs.asnumpy()).tostype("row_sparse")),
        "retain": lambda: sp.retain(r, nd.array([0, 3, 4])),
        "slice_rows": lambda: c[1:4], "slice_row": lambda: c[2], "slice_neg": lambda: c[-2],
        "slice_cols": lambda: sp.slice(c, begin=(0, 1), end=(5, 4)),
        "sum_csr": lambda: sp.sum(c), "sum_csr_axis0": lambda: sp.sum(c, axis=0),
        "sum_csr_axis1_keepdims": lambda: sp.sum(c, axis=1, keepdims=True), "mean_csr_axis1": lambda: sp.mean(c, axis=1),
        "sum_rsp_axis0": lambda: sp.sum(r, axis=0),
        "sqrt_rsp": lambda: sp.sqrt(nd.array(np.abs(DENSE)).tostype("row_sparse")), "square_csr": lambda: sp.square(c),
        "abs_csr": lambda: sp.abs(c), "negative_rsp": lambda: -r, "relu_csr": lambda: sp.relu(c),
        "exp_rsp_falls_back": lambda: nd.exp(r), "zeros_like_rsp": lambda: sp.zeros_like(r),
        "tostype_to_default": lambda: c.tostype("default"),
        "row_sparse_array": lambda: sp.row_sparse_array((np.array([[1, 2], [3, 4]], np.float32), np.array([1, 3])),
                                                        shape=(4, 2)),
        "csr_matrix": lambda: sp.csr_matrix((np.array([1, 2, 3], np.float32), np.array([2, 0, 1]),
                                             np.array([0, 1, 1, 3])), shape=(3, 3)),
        "zeros_csr": lambda: sp.zeros("csr", (2, 3)), "zeros_rsp": lambda: sp.zeros("row_sparse", (3, 2)),
    }
    return {name: _describe(fn()) for name, fn in cases.items()}


def embedding_case(mx):
    nd = mx.nd
    w = nd.array(OTHER)
    w.attach_grad(stype="row_sparse")
    head = nd.array(np.linspace(0.5, 2, 24, dtype=np.float32).reshape(2, 3, 4))
    with mx.autograd.record():
        y = nd.Embedding(nd.array([[4, 0, 4], [2, 1, 0]]), w, input_dim=5, output_dim=4, sparse_grad=True)
        loss = (y * head).sum()
    loss.backward()
    return {"out": y.asnumpy().tolist(), "grad": _describe(w.grad)}


_GRADS = [([1, 3], 0), ([0, 3, 4], 1), ([3], 2)]


def _rsp_grad(mx, rows, seed):
    vals = np.random.default_rng(seed).uniform(-2, 2, (len(rows), 3)).astype(np.float32)
    return mx.nd.sparse.row_sparse_array((vals, np.array(rows)), shape=(5, 3))


def optimizer_cases(mx):
    settings = {
        "sgd_lazy_momentum_wd": ("sgd", dict(learning_rate=0.1, momentum=0.9, wd=0.05, rescale_grad=0.5)),
        "sgd_lazy_clip": ("sgd", dict(learning_rate=0.2, wd=0.1, clip_gradient=0.5)),
        "sgd_standard_update": ("sgd", dict(learning_rate=0.1, momentum=0.9, wd=0.05, lazy_update=False)),
        "adam_lazy_wd": ("adam", dict(learning_rate=0.05, wd=0.02, rescale_grad=0.5)),
        "adam_standard_update": ("adam", dict(learning_rate=0.05, wd=0.02, lazy_update=False)),
        "adagrad_sparse": ("adagrad", dict(learning_rate=0.1, rescale_grad=0.5, clip_gradient=1.0)),
    }
    out = {}
    for name, (kind, kw) in settings.items():
        opt = mx.optimizer.create(kind, **kw)
        w = mx.nd.array(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3))
        state = opt.create_state(0, w)
        for rows, seed in _GRADS:
            opt.update(0, w, _rsp_grad(mx, rows, seed), state)
        states = state if isinstance(state, (tuple, list)) else [state] if state is not None else []
        out[name] = {"weight": w.asnumpy().tolist(), "states": [s.asnumpy().tolist() for s in states]}
    return out


def trainer_case(mx):
    """Embedding(sparse_grad=True) + lazy SGD with momentum through gluon.Trainer, 3 steps."""
    net = mx.gluon.nn.Embedding(6, 3, sparse_grad=True)
    net.initialize(mx.init.Constant(0.25))
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01})
    batches = [[[2, 0], [2, 2]], [[1, 0], [4, 4]], [[5, 5], [5, 1]]]
    for step, batch in enumerate(batches):
        with mx.autograd.record():
            y = net(mx.nd.array(batch))
            loss = (y * y * (step + 1)).sum()
        loss.backward()
        grad_rows = net.weight.grad().indices.asnumpy().tolist()
        trainer.step(2)
    return {"weight": net.weight.data().asnumpy().tolist(), "last_grad_rows": grad_rows}


def all_cases(mx):
    cases = {"op_" + k: v for k, v in operator_cases(mx).items()}
    cases["embedding_sparse_grad"] = embedding_case(mx)
    cases.update({"opt_" + k: v for k, v in optimizer_cases(mx).items()})
    cases["trainer_embedding_sgd"] = trainer_case(mx)
    return cases


if __name__ == "__main__":
    if sys.argv[1] == "mxnet":
        import mxnet as mx_module
    else:
        import graphc as mx_module
    print(json.dumps(all_cases(mx_module)))
