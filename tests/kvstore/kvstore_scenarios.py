"""KVStore scenarios written once against the API graphc and Apache MXNet 1.9.1 share.

`run_all(mx)` runs every scenario with `mx` = graphc or mxnet and returns {name: result}, where a
result is plain JSON (numbers as Python floats, so float32 values compare exactly) and a call
that raises is recorded as the string "error". Under MXNet's own Python:

    python kvstore_scenarios.py OUT.json

writes what MXNet gives; tests/kvstore/mxnet_reference.json holds that output, and the tests
compare graphc's run with it (and, where MXNet is installed, re-check the file against MXNet).

The only place the two differ on purpose is sparse storage: graphc has none, so a row_sparse
array here is a dense one (`_sparse`), and row_sparse_pull's dense `out` must equal MXNet's
row_sparse `out.asnumpy()`. A scenario that could only pass by a departure documented in
graphc/kvstore/store.py (e.g. shape checks at push) is tested separately, not here.
"""
import json
import sys
import tempfile

import numpy as np


def _np(x):
    return x.asnumpy().astype(np.float64).tolist()


def _attempt(fn):
    try:
        return fn()
    except Exception:       # noqa: BLE001  (what matters is that both raise)
        return "error"


def _sparse(mx, a):
    return a.tostype("row_sparse") if mx.__name__ == "mxnet" else a


def _sparse_zeros(mx, shape, ctx=None):
    if mx.__name__ == "mxnet":
        return mx.nd.sparse.zeros("row_sparse", shape, ctx=ctx)
    return mx.nd.zeros(shape, ctx=ctx)


def push_sums_devices_and_pull_broadcasts(mx):
    out = {}
    for name in ("local", "device"):
        kv = mx.kv.create(name)
        kv.init(3, mx.nd.ones((2, 3)))
        kv.push(3, [mx.nd.ones((2, 3), ctx=mx.cpu(i)) * (i + 1) for i in range(3)])
        outs = [mx.nd.zeros((2, 3), ctx=mx.cpu(i)) for i in range(2)]
        kv.pull(3, out=outs)
        out[name] = [_np(o) for o in outs] + [kv.type, kv.rank, kv.num_workers]
    return out


def key_and_value_forms(mx):
    kv = mx.kv.create("local")
    kv.init([5, 7, 9], [mx.nd.ones((2,)) * k for k in (5, 7, 9)])
    outs = [[mx.nd.zeros((2,)), mx.nd.zeros((2,), ctx=mx.cpu(1))], mx.nd.zeros((2,))]
    kv.pull([5, 9], out=outs)
    kv.push([7, 5, 7], [mx.nd.ones((2,)), mx.nd.ones((2,)) * 2, [mx.nd.ones((2,)) * 3, mx.nd.ones((2,)) * 4]])
    a, b = mx.nd.zeros((2,)), mx.nd.zeros((2,))
    kv.pull([7, 5], out=[a, b])
    dup = [mx.nd.zeros((2,)), mx.nd.zeros((2,))]
    kv.pull([9, 9], out=dup)
    return [[_np(o) for o in outs[0]], _np(outs[1]), _np(a), _np(b), [_np(o) for o in dup]]


def str_keys_and_mixing(mx):
    kv = mx.kv.create("local")
    kv.init(["w", "b"], [mx.nd.ones((2,)), mx.nd.zeros((1,))])
    kv.push("w", mx.nd.ones((2,)) * 6)
    o = mx.nd.zeros((2,))
    kv.pull("w", out=o)
    return [_np(o),
            _attempt(lambda: kv.init([1, "x"], [mx.nd.ones((1,)), mx.nd.ones((1,))])),
            _attempt(lambda: kv.init(4, mx.nd.ones((1,)))),
            _attempt(lambda: kv.pull(0, out=mx.nd.zeros((1,)))),
            _attempt(lambda: kv.push(2.5, mx.nd.ones((1,))))]


def init_rules(mx):
    kv = mx.kv.create("local")
    kv.init(3, mx.nd.ones((2,)))
    res = [_attempt(lambda: kv.init(3, mx.nd.ones((2,)))),
           _attempt(lambda: kv.init(8, [mx.nd.ones((2,)), mx.nd.ones((2,))])),
           _attempt(lambda: kv.push(99, mx.nd.ones((2,)))),
           _attempt(lambda: kv.pull(99, out=mx.nd.ones((2,)))),
           _attempt(lambda: kv.pull(3)),
           _attempt(lambda: kv.push([3, 4], [mx.nd.ones((2,))])),
           _attempt(lambda: kv.push(3, np.ones(2, np.float32))),
           _attempt(lambda: kv.init([], []))]
    return res


def pushpull_forms(mx):
    kv = mx.kv.create("device")
    kv.init([0, 1], [mx.nd.zeros((2,)), mx.nd.zeros((3,))])
    vals = [mx.nd.ones((2,)), mx.nd.ones((2,), ctx=mx.cpu(1)) * 2]
    kv.pushpull(0, vals)
    single = mx.nd.zeros((2,))
    kv.pushpull(0, [mx.nd.ones((2,)), mx.nd.ones((2,)) * 5], out=single)
    outs = [mx.nd.zeros((2,)), [mx.nd.zeros((3,)), mx.nd.zeros((3,))]]
    kv.pushpull([0, 1], [mx.nd.ones((2,)) * 7, mx.nd.ones((3,)) * 8], out=outs)
    return [[_np(v) for v in vals], _np(single), _np(outs[0]), [_np(o) for o in outs[1]]]


def broadcast_once_per_key(mx):
    kv = mx.kv.create("local")
    outs = [mx.nd.zeros((2,)), mx.nd.zeros((2,), ctx=mx.cpu(1))]
    kv.broadcast(20, mx.nd.ones((2,)) * 4, out=outs)
    again = _attempt(lambda: kv.broadcast(20, mx.nd.ones((2,)), out=mx.nd.zeros((2,))))
    listed = _attempt(lambda: kv.broadcast(21, [mx.nd.ones((2,)), mx.nd.ones((2,))], out=mx.nd.zeros((2,))))
    o = mx.nd.zeros((2,))
    kv.pull(20, out=o)
    return [[_np(x) for x in outs], again, listed, _np(o)]


def updater_sees_merged_sum(mx):
    seen = []

    def upd(key, merged, stored):
        seen.append([repr(key), _np(merged), _np(stored)])
        stored[:] = stored + merged * 2

    res = []
    for key in (5, "a"):
        kv = mx.kv.create("local")
        kv._set_updater(upd)
        kv.init(key, mx.nd.ones((2,)))
        kv.push(key, [mx.nd.ones((2,)), mx.nd.ones((2,), ctx=mx.cpu(1)) * 3])
        vals = [mx.nd.ones((2,)), mx.nd.ones((2,))]
        kv.pushpull(key, vals)
        res.append([_np(v) for v in vals])
    return [seen, res]


def updater_key_order(mx):
    seen = []

    def upd(key, merged, stored):
        seen.append([repr(key), _np(merged)])

    kv = mx.kv.create("local")
    kv._set_updater(upd)
    kv.init([9, 2, 5], [mx.nd.zeros((1,))] * 3)
    kv.push([5, 9, 2, 5], [mx.nd.ones((1,)) * v for v in (1, 2, 3, 4)])
    kv = mx.kv.create("local")
    kv._set_updater(upd)
    kv.init(["z", "a"], [mx.nd.zeros((1,))] * 2)
    kv.init("m", mx.nd.zeros((1,)))
    kv.push(["m", "a", "z"], [mx.nd.ones((1,)) * v for v in (1, 2, 3)])
    return seen


def set_optimizer_updates_on_push(mx):
    res = {}
    for name, make in (("sgd", lambda: mx.optimizer.SGD(learning_rate=0.1, momentum=0.9, rescale_grad=0.5)),
                       ("adam", lambda: mx.optimizer.Adam(learning_rate=0.01, wd=0.001)),
                       ("plain", lambda: mx.optimizer.SGD())):
        kv = mx.kv.create("device")
        w = mx.nd.array(np.linspace(-1, 1, 4, dtype=np.float32).reshape(2, 2))
        kv.init(3, w)
        kv.set_optimizer(make())
        for t in range(3):
            kv.push(3, [mx.nd.ones((2, 2)) * (t + 1), mx.nd.array([[0.5, -1.0], [2.0, 0.25]], ctx=mx.cpu(1))])
        kv.pull(3, out=w)
        res[name] = _np(w)
    return res


def optimizer_states_round_trip(mx):
    def opt():
        return mx.optimizer.SGD(learning_rate=0.1, momentum=0.9)

    def pushes(kv, n):
        for _ in range(n):
            kv.push(3, [mx.nd.ones((2, 2)), mx.nd.ones((2, 2)) * 2])

    tmp = tempfile.mkdtemp()
    res = {"no_updater": _attempt(lambda: mx.kv.create("local").save_optimizer_states(tmp + "/x"))}
    ref = mx.kv.create("device")
    ref.init(3, mx.nd.zeros((2, 2)))
    ref.set_optimizer(opt())
    pushes(ref, 3)
    ref.save_optimizer_states(tmp + "/plain")
    ref.save_optimizer_states(tmp + "/dumped", dump_optimizer=True)
    pushes(ref, 2)
    w = mx.nd.zeros((2, 2))
    ref.pull(3, out=w)
    res["reference"] = _np(w)
    for fname in ("plain", "dumped"):
        kv = mx.kv.create("device")
        start = mx.nd.zeros((2, 2))
        ref_w = mx.nd.zeros((2, 2))
        kv.init(3, start)
        kv.set_optimizer(mx.optimizer.SGD(learning_rate=0.5, momentum=0.9))
        res[fname + "_load_without_weights_first"] = "ok"
        kv.load_optimizer_states(f"{tmp}/{fname}")
        o = kv._updater.optimizer
        res[fname + "_counters"] = [o.lr, o.num_update]
        pushes(kv, 2)
        kv.pull(3, out=ref_w)
        res[fname] = _np(ref_w)
    fresh = mx.kv.create("local")
    fresh.init(3, mx.nd.zeros((2, 2)))
    res["load_no_updater"] = _attempt(lambda: fresh.load_optimizer_states(tmp + "/plain"))
    return res


def device_sum_order(mx):
    res = {}
    for name in ("local", "device"):
        for n in (2, 3, 4, 5, 6, 9):
            kv = mx.kv.create(name)
            kv.init(0, mx.nd.zeros((2,)))
            big_first = [mx.nd.array([1.0, 3e-8], ctx=mx.cpu(0))] + \
                        [mx.nd.array([3e-8, 1.0], ctx=mx.cpu(i)) for i in range(1, n)]
            o = mx.nd.zeros((2,))
            kv.push(0, big_first)
            kv.pull(0, out=o)
            res[f"{name}{n}"] = _np(o)
            kv.push(0, big_first[::-1])
            kv.pull(0, out=o)
            res[f"{name}{n}rev"] = _np(o)
    kv = mx.kv.create("local")
    kv.init(0, mx.nd.zeros((1,), dtype="float16"))
    kv.push(0, [mx.nd.array([1.0], dtype="float16")] + [mx.nd.array([2 ** -11], dtype="float16")] * 2)
    o = mx.nd.zeros((1,), dtype="float16")
    kv.pull(0, out=o)
    res["float16"] = _np(o)
    return res


def dtypes(mx):
    kv = mx.kv.create("local")
    kv.init(0, mx.nd.ones((2,)))
    kv.push(0, mx.nd.array([1.1, 2.5], dtype="float64"))
    o32, o16 = mx.nd.zeros((2,)), mx.nd.zeros((2,), dtype="float16")
    kv.pull(0, out=o32)
    kv.pull(0, out=o16)
    kv.init(1, mx.nd.ones((2,), dtype="int32"))
    kv.push(1, [mx.nd.ones((2,), dtype="int32") * 3, mx.nd.ones((2,), dtype="int32")])
    oi = mx.nd.zeros((2,), dtype="int32")
    kv.pull(1, out=oi)
    return [_np(o32), str(o32.dtype), _np(o16), str(np.dtype(o16.dtype)), _np(oi), str(np.dtype(oi.dtype))]


def capabilities(mx):
    res = {}
    for name in ("local", "device", "LOCAL", "local_allreduce_cpu", "local_update_cpu", "local_allreduce_device",
                 "teststore"):
        kv = mx.kv.create(name)
        res[name] = [kv.type, kv.rank, kv.num_workers, _attempt(lambda: kv.is_capable("optimizer")),
                     _attempt(lambda: kv.is_capable("OPTIMIZER")), _attempt(lambda: kv.is_capable("sparsity"))]
    kv = mx.kv.create("local")
    res["barrier"] = repr(kv._barrier())
    res["not_a_string"] = _attempt(lambda: mx.kv.create(3))
    return res


def compression_rules(mx):
    def gc(name, params):
        return _attempt(lambda: mx.kv.create(name).set_gradient_compression(params) or "ok")

    return {"local": gc("local", {"type": "2bit", "threshold": 0.5}),
            "local_allreduce_cpu": gc("local_allreduce_cpu", {"type": "2bit"}),
            "device": gc("device", {"type": "2bit", "threshold": 0.5}),
            "local_allreduce_device": gc("local_allreduce_device", {"type": "2bit", "threshold": 0.5}),
            "default_threshold": gc("device", {"type": "2bit"}),
            "1bit": gc("device", {"type": "1bit", "threshold": 0.5}),
            "none": gc("device", {"type": "none"}),
            "no_type": gc("device", {"threshold": 1}),
            "negative": gc("device", {"type": "2bit", "threshold": -1}),
            "zero": gc("device", {"type": "2bit", "threshold": 0}),
            "not_a_dict": gc("device", "2bit")}


def compressed_pushes(mx):
    """Two devices, a size that is not a multiple of 16, values around the threshold."""
    rng = np.random.RandomState(0)
    grads = (rng.randn(6, 2, 37) * 0.4).astype(np.float32)
    kv = mx.kv.create("device")
    kv.set_gradient_compression({"type": "2bit", "threshold": 0.5})
    kv.init(0, mx.nd.zeros((37,)))
    steps = []
    for t in range(6):
        kv.push(0, [mx.nd.array(grads[t, 0], ctx=mx.cpu(0)), mx.nd.array(grads[t, 1], ctx=mx.cpu(1))])
        o = mx.nd.zeros((37,))
        kv.pull(0, out=o)
        steps.append(_np(o))
    return steps


def compression_variants(mx):
    g = [0.3, 0.6, -0.7, 0.1]
    res = {}
    kv = mx.kv.create("device")
    kv.set_gradient_compression({"type": "2bit", "threshold": 0.5})
    kv.init(1, mx.nd.zeros((4,)))
    o = mx.nd.zeros((4,))
    seq = []
    for _ in range(3):
        kv.push(1, mx.nd.array(g))
        kv.pull(1, out=o)
        seq.append(_np(o))
    res["single_device_keeps_residual"] = seq
    kv = mx.kv.create("device")
    kv.init(1, mx.nd.zeros((4,)))
    kv.set_gradient_compression({"type": "2bit", "threshold": "0.25"})
    kv.push(1, mx.nd.array(g))
    kv.pull(1, out=o)
    res["set_after_init_string_threshold"] = _np(o)
    kv = mx.kv.create("device")
    kv.set_gradient_compression({"type": "2bit", "threshold": 0.5})
    kv.init(1, mx.nd.ones((4,)))
    kv.set_optimizer(mx.optimizer.SGD(learning_rate=0.1))
    kv.push(1, [mx.nd.array(g), mx.nd.array(g, ctx=mx.cpu(1))])
    kv.pull(1, out=o)
    res["with_optimizer"] = _np(o)
    vals = [mx.nd.array(g), mx.nd.array(g, ctx=mx.cpu(1))]
    kv.pushpull(1, vals)
    res["pushpull"] = [_np(v) for v in vals]
    kv = mx.kv.create("device")
    kv.set_gradient_compression({"type": "2bit", "threshold": 0.1})
    kv.init(2, mx.nd.zeros((3,)))
    seq = []
    for _ in range(4):
        kv.push(2, mx.nd.array([0.1, -0.1, 0.1 / 3]))
        o3 = mx.nd.zeros((3,))
        kv.pull(2, out=o3)
        seq.append(_np(o3))
    res["exact_threshold"] = seq
    for dt in ("float16", "float64"):
        kv = mx.kv.create("device")
        kv.set_gradient_compression({"type": "2bit", "threshold": 0.5})
        kv.init(1, mx.nd.zeros((4,), dtype=dt))

        def push_pull(kv=kv, dt=dt):
            kv.push(1, mx.nd.array(g, dtype=dt))
            out = mx.nd.zeros((4,), dtype=dt)
            kv.pull(1, out=out)
            return _np(out)
        res[dt] = _attempt(push_pull)
    return res


def row_sparse_pull_rows(mx):
    kv = mx.kv.create("local")
    kv.init(1, _sparse(mx, mx.nd.array(np.arange(12, dtype=np.float32).reshape(4, 3))))
    res = []
    for ids in ([0, 2], [3, 1, 3], [2, 2], []):
        o = _sparse_zeros(mx, (4, 3))
        kv.row_sparse_pull(1, out=o, row_ids=mx.nd.array(ids, dtype="int64"))
        res.append(_np(o))
    outs = [_sparse_zeros(mx, (4, 3)), _sparse_zeros(mx, (4, 3), ctx=mx.cpu(1))]
    kv.row_sparse_pull(1, out=outs, row_ids=mx.nd.array([1.0, 2.0]))
    res.append([_np(o) for o in outs])
    outs = [_sparse_zeros(mx, (4, 3)), _sparse_zeros(mx, (4, 3))]
    kv.row_sparse_pull(1, out=outs, row_ids=[mx.nd.array([3], dtype="int64"), mx.nd.array([0, 1])])
    res.append([_np(o) for o in outs])
    res.append(_attempt(lambda: kv.row_sparse_pull(1, out=outs, row_ids=[mx.nd.array([1])] * 3)))
    res.append(_attempt(lambda: kv.row_sparse_pull(1, out=outs[0])))
    dense = mx.nd.zeros((4, 3))
    kv.pull(1, out=dense, ignore_sparse=False)
    res.append(_np(dense))
    return res


def _trainer_run(mx, kvstore, update_on_kvstore, compression=None, steps=3, split=False):
    ctxs = [mx.cpu(0), mx.cpu(1)]
    p = mx.gluon.Parameter("w", shape=(4,), init=mx.init.Constant(0.5))
    p.initialize(ctx=ctxs)
    trainer = mx.gluon.Trainer([p], "sgd", {"learning_rate": 0.1, "momentum": 0.9}, kvstore=kvstore,
                               update_on_kvstore=update_on_kvstore, compression_params=compression)
    xs = [mx.nd.array([1.0, -2.0, 0.3, 0.7]), mx.nd.array([0.5, 1.5, -0.2, 0.1], ctx=ctxs[1])]
    for _ in range(steps):
        with mx.autograd.record():
            losses = [(p.data(c) * x * p.data(c)).sum() for c, x in zip(ctxs, xs)]
        for loss in losses:
            loss.backward()
        if split:
            trainer.allreduce_grads()
            trainer.update(2)
        else:
            trainer.step(2)
    return [[_np(p.data(c)) for c in ctxs], repr(trainer._update_on_kvstore),
            None if trainer._kvstore is None else trainer._kvstore.type]


def trainer_with_stores(mx):
    res = {}
    for kv in ("device", "local", None):
        for on_kv in (None, True, False):
            res[f"{kv}-{on_kv}"] = _attempt(lambda: _trainer_run(mx, kv, on_kv))
    res["split-on-kvstore"] = _attempt(lambda: _trainer_run(mx, "device", None, split=True))
    res["split-off-kvstore"] = _attempt(lambda: _trainer_run(mx, "device", False, split=True))
    res["compressed-device"] = _attempt(lambda: _trainer_run(mx, "device", None, {"type": "2bit", "threshold": 0.5}))
    res["compressed-local"] = _attempt(lambda: _trainer_run(mx, "local", None, {"type": "2bit", "threshold": 0.5}))
    res["teststore"] = _attempt(lambda: _trainer_run(mx, mx.kv.create("teststore"), None))
    res["teststore-on-kv"] = _attempt(lambda: _trainer_run(mx, mx.kv.create("teststore"), True))
    return res


SCENARIOS = [push_sums_devices_and_pull_broadcasts, key_and_value_forms, str_keys_and_mixing, init_rules,
             pushpull_forms, broadcast_once_per_key, updater_sees_merged_sum, updater_key_order,
             set_optimizer_updates_on_push, optimizer_states_round_trip, device_sum_order, dtypes, capabilities,
             compression_rules, compressed_pushes, compression_variants, row_sparse_pull_rows,
             trainer_with_stores]


def run_all(mx):
    return {fn.__name__: fn(mx) for fn in SCENARIOS}


if __name__ == "__main__":
    import mxnet
    with open(sys.argv[1], "w") as f:
        json.dump(run_all(mxnet), f, indent=1, sort_keys=True)
