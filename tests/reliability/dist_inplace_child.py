"""One rank of test_dist_inplace_allreduce.py (run under MPICH's mpiexec.gforker -n 2):

    python dist_inplace_child.py OUT_DIR

Checks the kvstore's direct (unpacked, in-place) all-reduce of big keys against the packed path
and writes what it saw: OUT_DIR/rank<r>.json (facts) and OUT_DIR/rank<r>.npz (arrays).
"""
import json
import os
import sys

import numpy as np

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.kvstore.mpi_transport import DIRECT_ENV

# keys: two big ones (float32, float64) that go direct, two small ones that are packed
SHAPES = {0: ((320, 300), np.float32), 1: ((7,), np.float32), 2: ((190, 180), np.float64), 3: ((5, 3), np.float32)}
BIG = (0, 2)
PACKED_KB = "1000000"       # a threshold no key reaches: every key packed, the previous path


def values(rank, step):
    """The arrays `rank` pushes at `step` (any rank can compute every rank's)."""
    rng = np.random.RandomState(1000 * step + rank)
    return {k: rng.randn(*shape).astype(dtype) for k, (shape, dtype) in SHAPES.items()}


class _Recorder:
    """Stands in for the transport's communicator, recording each Iallreduce's buffers."""

    def __init__(self, comm, MPI):
        self._comm, self._MPI, self.calls = comm, MPI, []

    def Iallreduce(self, send, recv, op):
        self.calls.append(("in_place" if send is self._MPI.IN_PLACE else _address(send), _address(recv),
                           int(np.asarray(recv).size)))
        return self._comm.Iallreduce(send, recv, op=op)

    def __getattr__(self, name):
        return getattr(self._comm, name)


def _nd(array):
    return nd.array(array, dtype=array.dtype)


def _address(array):
    return int(np.asarray(array).__array_interface__["data"][0])


def _store(packed):
    if packed:
        os.environ[DIRECT_ENV] = PACKED_KB
    else:
        os.environ.pop(DIRECT_ENV, None)
    kv = mx.kv.create("dist_sync")
    os.environ.pop(DIRECT_ENV, None)
    keys = sorted(SHAPES)
    kv.init(keys, [_nd(np.zeros(s, d)) for s, d in SHAPES.values()])
    return kv, keys


def store_paths(rank, facts, arrays):
    """pushpull(keys, grads) (out is the pushed array), pushpull with separate outputs, and
    push + pull, on a direct store and on a packed one."""
    for packed in (False, True):
        tag = "packed" if packed else "direct"
        kv, keys = _store(packed)
        recorder = kv._transport._comm = _Recorder(kv._transport._comm, kv._transport._MPI)
        grads = [_nd(values(rank, 0)[k]) for k in keys]
        before = {k: _address(grads[k]._data) for k in keys}
        kv.pushpull(keys, grads)
        facts[f"{tag}_inplace_calls"] = list(recorder.calls)
        facts[f"{tag}_grad_addresses"] = [before[k] for k in keys]
        facts[f"{tag}_grad_addresses_after"] = [_address(grads[k]._data) for k in keys]
        facts[f"{tag}_bucket_elements"] = sum(b.size for b in kv._transport._buffers.values())
        for k in keys:
            arrays[f"{tag}_inplace_{k}"] = grads[k].asnumpy()
            pulled = _nd(np.zeros(*SHAPES[k]))
            kv.pull(k, out=pulled)
            arrays[f"{tag}_inplace_pulled_{k}"] = pulled.asnumpy()
        # separate outputs: the pushed arrays must stay as they were
        recorder.calls = []
        pushed = [_nd(values(rank, 1)[k]) for k in keys]
        outs = [_nd(np.zeros(*SHAPES[k])) for k in keys]
        kv.pushpull(keys, pushed, out=outs)
        facts[f"{tag}_outs_calls"] = list(recorder.calls)
        facts[f"{tag}_stored_addresses"] = [_address(kv._store[k]._data) for k in keys]
        for k in keys:
            arrays[f"{tag}_outs_{k}"] = outs[k].asnumpy()
            arrays[f"{tag}_outs_pushed_{k}"] = pushed[k].asnumpy()
        # push, then pull
        recorder.calls = []
        kv.push(keys, [_nd(values(rank, 2)[k]) for k in keys])
        facts[f"{tag}_push_calls"] = list(recorder.calls)
        for k in keys:
            pulled = _nd(np.zeros(*SHAPES[k]))
            kv.pull(k, out=pulled)
            arrays[f"{tag}_push_{k}"] = pulled.asnumpy()
        # with an updater: the output gets the updated value, the pushed gradient stays
        kv._set_updater(lambda key, merged, stored: stored.__setitem__(slice(None), stored * 0.5 + merged))
        grads = [_nd(values(rank, 3)[k]) for k in keys]
        kv.pushpull(keys, grads)
        for k in keys:
            arrays[f"{tag}_updater_{k}"] = grads[k].asnumpy()


def build(seed):
    mx.random.seed(seed)
    net = gluon.nn.HybridSequential()
    # the first weight (300 x 260 float32, 305 KB) goes direct, the rest is packed
    net.add(gluon.nn.Dense(300, activation="relu", in_units=260), gluon.nn.Dense(4, in_units=300))
    net.initialize(mx.init.Xavier())
    return net


def training(rank, facts, arrays):
    """A few SGD steps with every update_on_kvstore mode, direct and packed, with a store the
    Trainer creates itself ('dist_sync') and with one passed in."""
    rng = np.random.RandomState(5 + rank)
    x, y = rng.randn(3, 8, 260).astype(np.float32), rng.randint(0, 4, (3, 8)).astype(np.float32)
    for uok in (None, True, False):
        for own in (False, True):
            for packed in (False, True):
                tag = f"train_{uok}_{'own' if own else 'given'}_{'packed' if packed else 'direct'}"
                if packed:
                    os.environ[DIRECT_ENV] = PACKED_KB
                net = build(seed=11)
                trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9},
                                        kvstore="dist_sync" if own else mx.kv.create("dist_sync"),
                                        update_on_kvstore=uok)
                loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
                for step in range(3):
                    with autograd.record():
                        loss = loss_fn(net(nd.array(x[step])), nd.array(y[step]))
                    loss.backward()
                    trainer.step(8)
                os.environ.pop(DIRECT_ENV, None)
                for i, p in enumerate(net.collect_params().values()):
                    arrays[f"{tag}_{i}"] = p.data().asnumpy()
                if uok is False and own and not packed:
                    try:
                        trainer._kvstore.pull(0, out=nd.zeros((300, 260)))
                        facts["unkept_pull"] = "no error"
                    except Exception as e:  # noqa: BLE001
                        facts["unkept_pull"] = f"{type(e).__name__}: {e}"


def main():
    out = sys.argv[1]
    kv = mx.kv.create("dist_sync")
    rank = kv.rank
    facts, arrays = {"rank": rank, "num_workers": kv.num_workers}, {}
    store_paths(rank, facts, arrays)
    training(rank, facts, arrays)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(facts, f)
    np.savez(os.path.join(out, f"rank{rank}.npz"), **arrays)


if __name__ == "__main__":
    main()
