"""The KVStore itself (graphc/kvstore/store.py, __init__.py): what graphc adds to MXNet's
behaviour (clear errors, no aliasing), the states file, the registry, and the Transport seam a
distributed store plugs into. MXNet parity, call for call, is test_kvstore_vs_mxnet.py."""
import numpy as np
import pytest

import graphc as mx
from graphc import nd
from graphc.formats.mxnet_params import load_params
from graphc.kvstore import DeviceReduction, KVStore, KVStoreBase, Transport


def test_push_sums_and_pull_broadcasts():
    kv = mx.kv.create("local")
    kv.init("w", nd.zeros((2,)))
    kv.push("w", [nd.ones((2,)), nd.ones((2,)) * 2])
    outs = [nd.zeros((2,)), nd.zeros((2,), ctx=mx.cpu(1))]
    kv.pull("w", out=outs)
    for o in outs:
        np.testing.assert_array_equal(o.asnumpy(), [3, 3])


def test_unknown_kinds_are_refused_clearly():
    # the real distributed kinds run under MPI: tests/kvstore/test_dist.py launches them
    with pytest.raises(mx.GraphcError, match="unknown kvstore type 'bogus'"):
        mx.kv.create("bogus")
    with pytest.raises(mx.GraphcError, match="unknown distributed kvstore type 'dist_bogus'"):
        mx.kv.create("dist_bogus")
    with pytest.raises(TypeError, match="must be a string"):
        mx.kv.create(None)


def test_shape_mismatch_names_the_key_and_both_shapes():
    kv = mx.kv.create("device")
    kv.init("fc1_weight", nd.zeros((2, 3)))
    with pytest.raises(mx.ShapeError, match=r"key 'fc1_weight' holds shape \(2, 3\) but the value pushed from "
                                            r"cpu\(1\) \(#1\) has shape \(3, 2\)"):
        kv.push("fc1_weight", [nd.ones((2, 3)), nd.ones((3, 2), ctx=mx.cpu(1))])
    with pytest.raises(mx.ShapeError, match=r"key 'fc1_weight' holds shape \(2, 3\) but the output"):
        kv.pull("fc1_weight", out=nd.zeros((6,)))
    out = nd.ones((2, 3))
    kv.pull("fc1_weight", out=out)          # the refused push changed nothing
    np.testing.assert_array_equal(out.asnumpy(), np.zeros((2, 3)))


def test_errors_name_the_key():
    kv = mx.kv.create("local")
    kv.init(3, nd.ones((2,)))
    with pytest.raises(mx.GraphcError, match="duplicate init of key 3"):
        kv.init([4, 3], [nd.ones((2,)), nd.ones((2,))])
    with pytest.raises(mx.GraphcError, match="key 4 has not been initialised"):
        kv.pull(4, out=nd.ones((2,)))       # the refused init stored nothing
    with pytest.raises(mx.GraphcError, match="key 'a' is str, but this store already holds int keys"):
        kv.init("a", nd.ones((2,)))
    with pytest.raises(mx.GraphcError, match="must be an int or a str, got 2.5"):
        kv.push(2.5, nd.ones((2,)))
    with pytest.raises(mx.GraphcError, match="2 keys need a list of 2 values, got 1"):
        kv.push([3, 3], [nd.ones((2,))])


def test_store_keeps_a_copy_not_the_pushed_array():
    kv = mx.kv.create("local")
    kv.init(0, nd.zeros((2,)))
    grad = nd.ones((2,))
    kv.push(0, grad)
    grad[:] = 7                     # MXNet's local store would now hold 7 (it keeps a reference)
    out = nd.zeros((2,))
    kv.pull(0, out=out)
    np.testing.assert_array_equal(out.asnumpy(), [1, 1])


def test_updater_must_keep_the_shape():
    kv = mx.kv.create("local")
    kv.init(0, nd.zeros((2,)))

    def reshaping(key, merged, stored):
        stored._data = np.zeros(3, np.float32)

    kv._set_updater(reshaping)
    with pytest.raises(mx.ShapeError, match="updater changed the shape of key 0"):
        kv.push(0, nd.ones((2,)))


def test_row_sparse_pull_refuses_rows_out_of_range():
    kv = mx.kv.create("local")
    kv.init(1, nd.ones((4, 3)))
    with pytest.raises(mx.GraphcError, match="row id 5 is out of range for key 1 with 4 rows"):
        kv.row_sparse_pull(1, out=nd.zeros((4, 3)), row_ids=nd.array([0, 5], dtype="int64"))


def test_compression_is_refused_on_local_stores_and_float16_is_named():
    with pytest.raises(mx.GraphcError, match="not supported for this type of kvstore \\('local'\\)"):
        mx.kv.create("local").set_gradient_compression({"type": "2bit"})
    kv = mx.kv.create("device")
    kv.set_gradient_compression({"type": "2bit", "threshold": 0.5})
    kv.init("h", nd.zeros((4,), dtype="float16"))
    with pytest.raises(mx.DTypeError, match="key 'h' from cpu\\(0\\) is float16"):
        kv.push("h", nd.ones((4,), dtype="float16"))


def test_optimizer_states_file_is_params_format_and_restores_str_keys(tmp_path):
    def store():
        kv = mx.kv.create("device")
        kv.init(["w", "b"], [nd.zeros((2, 2)), nd.zeros((2,))])
        kv.set_optimizer(mx.optimizer.Adam(learning_rate=0.05))
        return kv

    def push(kv):
        kv.push(["w", "b"], [[nd.ones((2, 2)), nd.ones((2, 2), ctx=mx.cpu(1))], nd.array([0.5, -1.0])])

    a = store()
    for _ in range(3):
        push(a)
    fname = str(tmp_path / "kv.states")
    a.save_optimizer_states(fname, dump_optimizer=True)
    arrays = load_params(fname)                     # an MXNet .params file, no pickle inside
    assert "u0:w.0" in arrays and "u0:b.1" in arrays
    b = store()
    b.load_optimizer_states(fname)
    # (MXNet's Updater files a store's bytes key under its str, so lr_mult and states go by name)
    assert sorted(b._updater.states) == ["b", "w"]
    assert b._updater.optimizer.num_update == 3
    # weights are not optimizer state: give b the same weights, then both must move alike
    for key, shape in (("w", (2, 2)), ("b", (2,))):
        w = nd.zeros(shape)
        a.pull(key, out=w)
        b._store[key]._data[...] = w.asnumpy()
    push(a)
    push(b)
    for key, shape in (("w", (2, 2)), ("b", (2,))):
        wa, wb = nd.zeros(shape), nd.zeros(shape)
        a.pull(key, out=wa)
        b.pull(key, out=wb)
        np.testing.assert_array_equal(wa.asnumpy(), wb.asnumpy())
    wrong = mx.kv.create("local")
    wrong.init("w", nd.zeros((2, 2)))
    wrong.set_optimizer(mx.optimizer.SGD())
    with pytest.raises(ValueError, match="'adam'.*'sgd'"):
        wrong.load_optimizer_states(fname)
    plain = mx.kv.create("local")
    plain._set_updater(lambda k, m, s: None)
    with pytest.raises(mx.GraphcError, match="plain function"):
        plain.save_optimizer_states(fname)


def test_a_registered_store_is_created_by_name():
    @KVStoreBase.register
    class EchoStore(KVStoreBase):
        @property
        def type(self):
            return "echostore"

    try:
        assert mx.kv.create("EchoStore").type == "echostore"
        assert mx.kv.create("teststore").is_capable("optimizer") is False
    finally:
        KVStoreBase.kv_registry.pop("echostore")


class TwoWorkers(Transport):
    """A stand-in for the MPI transport: this worker is rank 1 of 2 and the other worker pushes
    the same values, so every sum over workers doubles."""

    def __init__(self):
        self.calls = []

    @property
    def rank(self):
        return 1

    @property
    def num_workers(self):
        return 2

    def allreduce(self, key, array, compression=None):
        self.calls.append(("allreduce", key, compression))
        return array * 2

    def broadcast(self, key, array, root=0):
        self.calls.append(("broadcast", key, root))
        return np.full_like(array, 9)       # rank 0's value wins

    def barrier(self):
        self.calls.append(("barrier",))


def test_a_transport_plugs_in_without_changing_the_store():
    transport = TwoWorkers()
    kv = KVStore("dist_sync", transport, DeviceReduction("cpu"))
    assert (kv.rank, kv.num_workers, kv.type) == (1, 2, "dist_sync")
    kv.init(0, nd.zeros((2,)))
    out = nd.zeros((2,))
    kv.pull(0, out=out)
    np.testing.assert_array_equal(out.asnumpy(), [9, 9])
    kv.set_gradient_compression({"type": "2bit", "threshold": 0.5})
    kv.set_optimizer(mx.optimizer.SGD(learning_rate=0.1))
    kv.pushpull(0, [nd.ones((2,)), nd.ones((2,), ctx=mx.cpu(1))], out=out)
    np.testing.assert_allclose(out.asnumpy(), [9 - 0.1 * 4] * 2, rtol=1e-6)  # 2 devices x 2 workers
    kv._barrier()
    assert transport.calls[0] == ("broadcast", 0, 0)
    assert transport.calls[1][:2] == ("allreduce", 0)
    assert float(transport.calls[1][2].threshold) == 0.5     # dist: compression is the transport's
    assert kv._reduction.compression is None                 # ... not applied between devices
    assert transport.calls[2] == ("barrier",)
