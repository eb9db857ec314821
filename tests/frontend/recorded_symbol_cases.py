"""Cases run under graphc and under MXNet 1.9.1 (test_recorded_symbol_mxnet.py): the symbol
autograd recorded (autograd.get_symbol), variable attributes through a JSON / pickle round trip,
sparse arrays accepted at creation and refused by check_format, take on csr rows, and
Parameter.row_sparse_data carrying the parameter's gradient, and atomic symbols
(Symbol._gen_atomic_symbol) composed anew.

`python recorded_symbol_cases.py mxnet` prints MXNet's answers as JSON (run it with MXNet's venv
to re-record mxnet_recorded_symbol_reference.json)."""
import json
import pickle
import sys

import numpy as np


def recorded_symbol(mx):
    x = mx.nd.array([[1., -2., 3.], [0.5, 4., -1.]])
    z = mx.nd.array([[2., 1., 0.], [-3., 1., 2.]])
    w = mx.nd.array([[0.25, 0., 1.], [1., 2., 3.]])
    x.attach_grad()
    z.attach_grad()
    with mx.autograd.record():
        y = mx.nd.relu(x * x + 2 * z - 1) + w
        q = mx.nd.sum(y, axis=1)
    s = mx.autograd.get_symbol(q)
    nodes = json.loads(s.tojson())["nodes"]
    args = dict(zip(s.list_arguments(), (x, z, w)))
    with mx.autograd.record():
        y2 = x * x + 2 * z
    return {"arguments": s.list_arguments(), "outputs": s.list_outputs(),
            "ops": [n["op"] for n in nodes], "names": [n["name"] for n in nodes],
            "eval": s.eval(**args)[0].asnumpy().tolist(), "recorded": q.asnumpy().tolist(),
            "shapes": [list(t) for t in s.infer_shape(**{k: v.shape for k, v in args.items()})[1]],
            "two_leaves": mx.autograd.get_symbol(y2).list_arguments(),
            "leaf": mx.autograd.get_symbol(x).list_arguments()}


def variable_attributes(mx):
    with mx.AttrScope(group="4", data="great"):
        data = mx.sym.Variable("data", attr={"dtype": "data", "group": "1", "force_mirroring": "True"},
                               lr_mult=1, shape=(2, 3))
        other = mx.sym.Variable("data2")
    net = mx.sym.FullyConnected(data + other, num_hidden=3, name="fc", attr={"__k__": "v"})
    loaded = mx.sym.load_json(net.tojson())
    return {"pickled": pickle.loads(pickle.dumps(data)).list_attr(),
            "loaded_data": loaded.attr_dict()["data"], "loaded_data2": loaded.attr_dict()["data2"],
            "loaded_fc": loaded.attr_dict()["fc"],
            "json_data": json.loads(net.tojson())["nodes"][0].get("attrs", {})}


def _raises(fn):
    try:
        fn()
        return False
    except Exception:           # MXNetError under MXNet, GraphcError under graphc
        return True


def check_format(mx):
    out = {}
    csr_cases = {"indptr_jumps": ([0, 2, 1], [0, 5, 2, 3]), "unsorted_columns": ([2, 1, 1], [0, 2, 2, 3]),
                 "indptr_end": ([1, 2, 1], [0, 2, 2, 4]), "negative_indptr": ([0, 2, 1], [0, -2, 2, 3]),
                 "column_out_of_range": ([0, 5, 1], [0, 2, 2, 3]), "valid": ([0, 2, 1], [0, 2, 2, 3])}
    for name, (indices, indptr) in csr_cases.items():
        a = mx.nd.sparse.csr_matrix(([7, 8, 9], indices, indptr), shape=(3, 4))
        out[f"csr_{name}"] = [_raises(a.check_format), _raises(lambda: a.check_format(False))]
    for name, indices in {"row_out_of_range": [1, 4], "unsorted": [1, 0], "negative": [1, -2],
                          "repeated": [1, 1], "valid": [0, 2]}.items():
        a = mx.nd.sparse.row_sparse_array(([[1, 2], [3, 4]], indices), shape=(3, 2))
        out[f"rsp_{name}"] = [_raises(a.check_format), _raises(lambda: a.check_format(False))]
    out["csr_lengths_differ_at_creation"] = _raises(
        lambda: mx.nd.sparse.csr_matrix(([7, 8, 9], [0, 1], [0, 1, 2, 3]), shape=(3, 4)))
    return out


def take_csr(mx):
    a = mx.nd.sparse.csr_matrix(([7., 8, 9, 1, 2], [0, 2, 1, 0, 3], [0, 2, 3, 3, 5]), shape=(4, 4))
    out = {}
    for mode in ("clip", "wrap"):
        r = a.take(mx.nd.array([3, -1, 0, 6, 1.7, 2]), mode=mode)
        out[mode] = {"stype": r.stype, "dense": r.asnumpy().tolist(), "indptr": r.indptr.asnumpy().tolist(),
                     "indices": r.indices.asnumpy().tolist()}
    out["other_axis"] = a.take(mx.nd.array([1]), axis=1).stype
    return out


def pulled_rows(mx):
    gluon = mx.gluon
    out = {}
    for update_on_kvstore in (None, False):
        params = gluon.ParameterDict()
        x = params.get("x", shape=(6, 2), stype="row_sparse", grad_stype="row_sparse")
        params.initialize(ctx=[mx.cpu(0), mx.cpu(1)], init="ones")
        try:
            trainer = gluon.Trainer(params, "sgd", {"learning_rate": 0.5}, kvstore="local",
                                    update_on_kvstore=update_on_kvstore)
            rows = mx.nd.array([4, 1, 4])
            ws = x.list_row_sparse_data(rows)
            with mx.autograd.record():
                for k, w in enumerate(ws):
                    y = (w * (k + 2)).sum()
                    y.backward()
            entry = {"indices": ws[0].indices.asnumpy().tolist(), "grad": x.grad(mx.cpu(0)).asnumpy().tolist()}
            trainer.step(1)
            entry["after"] = x.row_sparse_data(mx.nd.arange(0, 6)).asnumpy().tolist()
        except Exception as exc:
            entry = type(exc).__name__
        out[str(update_on_kvstore)] = entry
    return out


def atomic_symbol(mx):
    data = mx.sym.var("data")
    fc = mx.sym.FullyConnected(data, num_hidden=4, name="fc")
    a = fc._gen_atomic_symbol()
    named = a(data=mx.sym.var("x"), name="new")
    positional = a(mx.sym.var("x"), mx.sym.var("w"))
    split = mx.sym.split(data, num_outputs=3, name="sp")._gen_atomic_symbol()
    split_outputs = split.list_outputs()
    split._compose(mx.sym.var("y"), name="zz")
    bn = mx.sym.BatchNorm(data, name="bn")._gen_atomic_symbol()(data=data)
    return {"atomic": [a.name, a.list_arguments(), a.list_outputs(), a.list_attr()],
            "named": [named.name, named.list_arguments(), named.list_outputs()],
            "positional": [positional.name, positional.list_arguments()], "unfilled": a().list_arguments(),
            "split": [split_outputs, split.list_arguments(), split.list_outputs()],
            "batchnorm": [bn.list_arguments(), bn.list_auxiliary_states()]}


CASES = {"atomic_symbol": atomic_symbol, "recorded_symbol": recorded_symbol, "variable_attributes": variable_attributes,
         "check_format": check_format, "take_csr": take_csr, "pulled_rows": pulled_rows}


def all_cases(mx):
    return {name: fn(mx) for name, fn in CASES.items()}


if __name__ == "__main__" and sys.argv[1:] == ["mxnet"]:
    import warnings
    warnings.filterwarnings("ignore")
    import mxnet
    np.random.seed(0)
    print(json.dumps(all_cases(mxnet), indent=1, sort_keys=True))
