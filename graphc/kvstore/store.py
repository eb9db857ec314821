"""KVStore: MXNet 1.9.1's KVStore API (python/mxnet/kvstore/kvstore.py) over a Transport.

A store holds one dense array per key. `push` sums the copies of a key coming from several
devices (local.DeviceReduction, in MXNet's order) and then over workers (the Transport); with an
updater or optimizer set, the sum updates the stored value (`updater(key, merged, stored)`),
without one it replaces it. `pull` copies the stored value to every output array. 'local' and
'device' run with local.SingleProcessTransport; a distributed transport drops in unchanged
(transport.py states the contract). The store never touches an engine or a device queue: graphc
runs eagerly, so `priority` only orders nothing and is accepted for compatibility.

Where graphc departs from MXNet, on purpose:
* MXNet's 'local' store keeps a reference to a single pushed array (a later write to that array
  changes the stored value); graphc stores a copy.
* A pushed or pulled array whose shape differs from the stored one is refused at once naming the
  key and both shapes (MXNet accepts such a push and fails on a later pull).
* The stored values are dense. `row_sparse_pull` into a RowSparseNDArray gives it the rows
  asked for (MXNet's); into a dense `out`, those rows and zeros elsewhere. Row-sparse pushes
  (Embedding(sparse_grad=True) gradients) in one process are summed as row_sparse and handed to
  the updater as such, so lazy optimizers stay lazy (sparse_push.py); across workers they are
  summed densely (the transport moves dense buffers), which gives the same values.
* A distributed store that a gluon.Trainer creates for itself with update_on_kvstore=False
  keeps no copy of the summed gradients (they are summed in the gradients' own memory, and
  nobody else holds the store); a pull from it raises instead of returning a stale value.
"""
from __future__ import annotations

import numpy as np

from ..ndarray import NDArray
from ..ops.errors import GraphcError, ShapeError
from . import compression as gc, gpu_push
from .base import KVStoreBase
from .keys import flatten
from .sparse_push import all_row_sparse, push_row_sparse, rows_into, write_out

__all__ = ["KVStore"]


class KVStore(KVStoreBase):
    """A key-value store of kind `name` ('local', 'device', ...). Create it with kv.create()."""

    def __init__(self, name, transport, reduction):
        self._type = name
        self._transport = transport
        self._reduction = reduction
        self._store: dict = {}          # key -> NDArray holding the stored value
        self._order: dict = {}          # key -> rank in MXNet's update order (see _sorted)
        self._key_type = None           # 'int' or 'str': MXNet allows one kind of key per store
        self._updater = None
        self._compression = None
        # False only on a store a Trainer created for itself with update_on_kvstore=False: the
        # sums pushpull writes into the gradients are then not copied into the store, whose
        # value nobody can pull (see _check_unkept)
        self._keeps_sums = True
        self._unkept: set = set()       # keys whose stored value is not their last sum

    def __repr__(self):
        return f"<KVStore {self._type!r}: {len(self._store)} keys, rank {self.rank}/{self.num_workers}>"

    # -- identity ---------------------------------------------------------------------------
    @property
    def type(self):
        return self._type

    @property
    def rank(self):
        return self._transport.rank

    @property
    def num_workers(self):
        return self._transport.num_workers

    def is_capable(self, capability):
        if capability.lower() == KVStoreBase.OPTIMIZER:
            return True
        raise ValueError(f"Unknown capability: {capability}")

    def _barrier(self):
        """Wait until every worker reaches this point (nothing to wait for in one process)."""
        self._transport.barrier()

    # -- keys -------------------------------------------------------------------------------
    def _pairs(self, op, key, value, what="value"):
        pairs, kind = flatten(op, key, value, what)
        if kind is not None:
            if self._key_type is not None and kind != self._key_type:
                raise GraphcError(f"kvstore.{op}: key {pairs[0][0]!r} is {kind}, but this store already holds "
                                  f"{self._key_type} keys; mixed key types are not allowed")
        return pairs, kind

    def _stored(self, op, key):
        stored = self._store.get(key)
        if stored is None:
            raise GraphcError(f"kvstore.{op}: key {key!r} has not been initialised; call kv.init({key!r}, value) first")
        return stored

    def _grouped(self, op, pairs):
        """Values grouped per key, keys in MXNet's update order: ints ascending, str keys in the
        order they were first initialised (MXNet numbers them so, then sorts the numbers)."""
        groups: dict = {}
        for k, v in pairs:
            self._stored(op, k)
            groups.setdefault(k, []).append(v)
        return sorted(groups.items(), key=lambda kv: self._order[kv[0]])

    def _check_unkept(self, op, key):
        if key in self._unkept:
            raise GraphcError(f"kvstore.{op}: key {key!r} holds no value: this store belongs to a Trainer with "
                              "update_on_kvstore=False, which keeps the summed gradients in the parameters' "
                              "gradients only; pass your own store (kvstore=kv.create(...)) to pull from it")

    @staticmethod
    def _check_shape(op, key, stored, array, what):
        if tuple(array.shape) != tuple(stored.shape):
            raise ShapeError(f"kvstore.{op}: key {key!r} holds shape {tuple(stored.shape)} but {what} has shape "
                             f"{tuple(array.shape)}")

    # -- init / broadcast -------------------------------------------------------------------
    def init(self, key, value):
        """Store a copy of each value under its key (rank 0's value when there are workers).
        A key is initialised once: initialising it again, by init or broadcast, is an error."""
        pairs, kind = self._pairs("init", key, value)
        seen = set()
        for k, _ in pairs:
            if k in self._store or k in seen:
                raise GraphcError(f"kvstore.init: duplicate init of key {k!r}; call kv.init or kv.broadcast once "
                                  "per key")
            seen.add(k)
        self._transport.agree("kvstore.init", [(k, f"shape {tuple(v.shape)} {np.dtype(v.dtype).name}")
                                               for k, v in pairs])
        for k, v in pairs:
            # (a GPU value is downloaded as a copy: reading v._data would leave it host-held)
            value = v.asnumpy() if v.context.device_type == "gpu" else np.array(v._data, copy=True)
            data = self._transport.broadcast(k, value, 0)
            self._store[k] = NDArray(data, v.context)
            self._order[k] = k if kind == "int" else len(self._order)
        if kind is not None:
            self._key_type = kind

    def broadcast(self, key, value, out, priority=0):
        """Initialise `key` with `value` (rank 0's) and pull it into `out`."""
        self.init(key, value)
        self.pull(key, out=out, priority=priority)

    # -- push / pull ------------------------------------------------------------------------
    def push(self, key, value, priority=0):
        """Sum each key's values over devices and workers; update the stored value with the sum
        (updater or optimizer set) or replace it by the sum (none set).

        The keys of one call go to the transport as a stream: a distributed transport buckets
        them and starts each bucket's transfer while the next keys are still being summed over
        devices, and the update of a key runs as soon as its sum arrives. Distributed stores
        stream the keys last-first (the order backward produces gradients); every store
        updates each key exactly as MXNet does. With no updater, a distributed transport sums a
        big key straight into the stored value (no copy)."""
        self._push("push", key, value, None)

    def _push(self, op, key, value, out):
        """push(key, value); with `out` (pushpull's outputs), write the sums of the keys whose
        single output is the pushed array itself into that array's own memory, and return those
        keys: their outputs need no pull."""
        pairs, _ = self._pairs(op, key, value)
        groups = self._grouped(op, pairs)
        for k, values in groups:        # refuse a bad shape before anything is sent
            stored = self._stored(op, k)
            for slot, v in enumerate(values):
                self._check_shape(op, k, stored, v, f"the value pushed from {v.context} (#{slot})")
        if self.num_workers == 1 and all_row_sparse(groups):
            return push_row_sparse(self, op, key, groups, out)
        if gpu_push.applies(self, groups):
            return gpu_push.push(self, groups)      # summed and updated on the GPU
        if self.num_workers > 1:
            groups = groups[::-1]
        in_place = self._in_place_keys(op, key, pairs, out) if self.num_workers > 1 else {}
        dist_compression = self._compression if "dist" in self._type else None
        written = set()
        for k, merged in self._transport.allreduce_stream(self._device_sums_to(groups, in_place),
                                                             dist_compression):
            stored = self._store[k]
            if self._updater is None:
                target = in_place.get(k)
                if target is not None:
                    if merged is not target:
                        np.copyto(target, merged)
                    written.add(k)
                    if self._keeps_sums:
                        np.copyto(stored._data, target)
                    else:
                        self._unkept.add(k)
                    continue
                self._unkept.discard(k)
                if merged is not stored._data:
                    # a copy: a distributed transport's packed sums live in a buffer its next call reuses
                    np.copyto(stored._data, merged)
                continue
            self._updater(k.encode() if isinstance(k, str) else k, NDArray(merged, stored.context), stored)
            if tuple(stored.shape) != tuple(merged.shape):
                raise ShapeError(f"kvstore.{op}: the updater changed the shape of key {k!r} from "
                                 f"{tuple(merged.shape)} to {tuple(stored.shape)}")
        return written

    def _in_place_keys(self, op, key, pairs, out):
        """key -> the numpy buffer of the one array pushed for it, for each key whose pushpull
        output is that same array (Trainer.allreduce_grads' pushpull(keys, grads)) and whose
        buffer no other key's pushed array overlaps; only when no updater runs (an updater
        needs the sum, and the output gets the updated weight, not the sum)."""
        if out is None or self._updater is not None:
            return {}
        out_pairs, _ = self._pairs(op, key, out, "output")
        pushed, outs = {}, {}
        for k, v in pairs:
            pushed.setdefault(k, []).append(v)
        for k, o in out_pairs:
            outs.setdefault(k, []).append(o)
        chosen = {}
        for k, vs in pushed.items():
            os_ = outs.get(k, [])
            if len(vs) == 1 and len(os_) == 1 and os_[0] is vs[0] and vs[0].stype == "default":
                data = vs[0]._data
                if isinstance(data, np.ndarray) and data.dtype == self._store[k]._data.dtype:
                    chosen[k] = data
        # two keys pushing overlapping memory would each be summed into it: neither goes in place
        arrays = [(k, v._data) for k, v in pairs if isinstance(v._data, np.ndarray)]
        for k, data in list(chosen.items()):
            if any(j != k and np.shares_memory(data, other) for j, other in arrays):
                del chosen[k]
        return chosen

    def _device_sums(self, groups):
        """(key, sum over this process's devices) for each group, produced lazily."""
        for k, merged, _ in self._device_sums_to(groups, {}):
            yield k, merged

    def _device_sums_to(self, groups, in_place):
        """(key, sum over this process's devices, where the sum should go) for each group,
        produced lazily. The destination (None: anywhere) is the pushed array itself for the
        keys of `in_place`, else the stored value when no updater runs: a distributed transport
        sums a big key straight into it, skipping a copy."""
        for k, values in groups:
            stored = self._store[k]._data
            dtype = stored.dtype
            arrays = [np.asarray(v._data, dtype=dtype) for v in values]
            dest = in_place.get(k)
            if dest is None and self._updater is None:
                dest = stored
            if len(arrays) == 1 and self.num_workers > 1:
                # nothing to sum here, and the distributed transport packs (copies) the array
                # into its bucket or sums it where `dest` says: no copy of every gradient
                yield k, arrays[0], dest
                continue
            merged = self._reduction.reduce(k, arrays, lambda s, k=k, vs=values: f"key {k!r} from {vs[s].context}")
            yield k, merged, (stored if dest is stored else None)

    def pull(self, key, out=None, priority=0, ignore_sparse=True):
        """Copy each key's stored value into its output array(s), casting to their dtype."""
        if out is None:
            raise GraphcError("kvstore.pull: out= is required (the NDArray or list of NDArrays to fill)")
        pairs, _ = self._pairs("pull", key, out, "output")
        self._pull(pairs, ())

    def _pull(self, pairs, skip):
        for k, o in pairs:
            stored = self._stored("pull", k)
            if k in skip:
                self._check_shape("pull", k, stored, o, f"the output on {o.context}")
                continue
            self._check_unkept("pull", k)
            self._check_shape("pull", k, stored, o, f"the output on {o.context}")
            if not gpu_push.pull_into(o, stored):
                write_out(o, stored._data)

    def pushpull(self, key, value, out=None, priority=0):
        """push(key, value) then pull(key, out), into `value` itself when `out` is None.

        With no updater on a distributed store, a big key whose output is the pushed array
        itself is summed in that array's memory (MPI_IN_PLACE): no bucket copy and no pull."""
        out = value if out is None else out
        written = self._push("pushpull", key, value, out)
        pairs, _ = self._pairs("pull", key, out, "output")
        self._pull(pairs, written)

    def row_sparse_pull(self, key, out=None, priority=0, row_ids=None):
        """Pull only the rows `row_ids` (1-D, any order, repeats allowed) of each key's value;
        the other rows of `out` become zero. One row_ids array for a list of outputs fills the
        first and copies it to the rest, as MXNet does."""
        if out is None or row_ids is None:
            raise GraphcError("kvstore.row_sparse_pull: out= and row_ids= are both required")
        if isinstance(row_ids, NDArray):
            row_ids = [row_ids]
        if not isinstance(row_ids, list):
            raise GraphcError(f"kvstore.row_sparse_pull: row_ids should be an NDArray or a list of NDArrays, "
                              f"got {type(row_ids).__name__}")
        single = len(row_ids) == 1 and isinstance(out, list)
        first = [out[0]] if single else out
        pairs, _ = self._pairs("row_sparse_pull", key, first, "output")
        id_pairs, _ = flatten("row_sparse_pull", key, row_ids, "row_ids")
        if len(id_pairs) != len(pairs):
            raise GraphcError(f"kvstore.row_sparse_pull: the number of row_ids ({len(id_pairs)}) doesn't match the "
                              f"number of outputs ({len(pairs)})")
        for (k, o), (_, ids) in zip(pairs, id_pairs):
            stored = self._stored("row_sparse_pull", k)
            self._check_unkept("row_sparse_pull", k)
            self._check_shape("row_sparse_pull", k, stored, o, f"the output on {o.context}")
            if o.stype == "row_sparse":
                rows_into(o, stored._data, _row_ids(k, stored._data, ids))
            else:
                o._data[...] = _selected_rows(k, stored._data, ids)
        if single:
            for o in out[1:]:
                self._check_shape("row_sparse_pull", key, out[0], o, f"the output on {o.context}")
                out[0].copyto(o)

    # -- updates ----------------------------------------------------------------------------
    def set_optimizer(self, optimizer):
        """Update stored values with `optimizer` on every push (Trainer's update_on_kvstore)."""
        from ..gluon import optimizer as opt
        self._set_updater(opt.get_updater(optimizer))

    def _set_updater(self, updater):
        """Call `updater(key, merged, stored)` on every push instead of replacing the stored
        value; it must update `stored` (an NDArray) in place or through its [:] setter. A str key
        reaches it as bytes, as in MXNet (its C API hands string keys to Python so)."""
        if not callable(updater):
            raise GraphcError(f"kvstore: the updater must be callable, got {type(updater).__name__}")
        self._updater = updater

    set_updater = _set_updater   # graphc's earlier public name

    def save_optimizer_states(self, fname, dump_optimizer=False):
        """Write the optimizer's per-key states (momentum, moments...) to `fname` in graphc's
        states file (gluon/updater_states.py, no pickle); `dump_optimizer` adds its counters,
        learning rate and weight decay."""
        from ..gluon.updater_states import save_updater_states
        updater = self._optimizer_updater("save_optimizer_states")
        save_updater_states(fname, updater.optimizer, [updater], dump_optimizer=dump_optimizer)

    def load_optimizer_states(self, fname):
        """Restore what save_optimizer_states wrote (the optimizer must be of the same kind)."""
        from ..gluon.updater_states import load_updater_states
        updater = self._optimizer_updater("load_optimizer_states")
        ctx = next(iter(self._store.values())).context if self._store else None
        load_updater_states(fname, updater.optimizer, [updater], [ctx])

    def _optimizer_updater(self, op):
        if self._updater is None:
            raise GraphcError(f"kvstore.{op}: no optimizer is set on this store (call kv.set_optimizer first)")
        if not hasattr(self._updater, "states") or not hasattr(self._updater, "optimizer"):
            raise GraphcError(f"kvstore.{op}: the store's updater is a plain function, which has no optimizer "
                              "states; set them with kv.set_optimizer(optimizer)")
        return self._updater

    # -- compression ------------------------------------------------------------------------
    def set_gradient_compression(self, compression_params):
        """2-bit compression of what is pushed ({'type': '2bit', 'threshold': 0.5}): per device on
        'device' stores, per worker on dist stores; MXNet refuses it on the other kinds."""
        if "device" not in self._type and "dist" not in self._type:
            raise GraphcError(f"Gradient compression is not supported for this type of kvstore ({self._type!r}); "
                              "use 'device' or a dist store")
        self._compression = gc.from_params(compression_params)
        if "dist" not in self._type:
            self._reduction.set_compression(self._compression)


def _selected_rows(key, data, ids):
    """`data` with every row not named in `ids` set to zero."""
    rows = _row_ids(key, data, ids)
    result = np.zeros_like(data)
    result[rows] = data[rows]
    return result


def _row_ids(key, data, ids):
    """The row ids of `ids` as int64, checked against the rows of `data`."""
    if data.ndim == 0:
        raise ShapeError(f"kvstore.row_sparse_pull: key {key!r} holds a scalar, which has no rows")
    rows = np.asarray(ids._data).reshape(-1)
    if rows.dtype.kind == "f" and np.any(rows != np.floor(rows)):
        raise GraphcError(f"kvstore.row_sparse_pull: row_ids for key {key!r} must be whole numbers, got {rows}")
    rows = rows.astype(np.int64)
    bad = rows[(rows < 0) | (rows >= data.shape[0])]
    if bad.size:
        raise GraphcError(f"kvstore.row_sparse_pull: row id {int(bad[0])} is out of range for key {key!r} with "
                          f"{data.shape[0]} rows")
    return rows
