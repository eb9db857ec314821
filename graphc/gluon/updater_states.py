"""The optimizer-states file: what `Trainer.save_states` and `KVStore.save_optimizer_states`
write, and what their `load_*` counterparts read.

One MXNet-format .params file (graphc.formats.mxnet_params): every state array (momentum, Adam's
moments, a float16 weight's master copy...) under a name of its own, plus one uint8 entry
holding a JSON description: the optimizer's name, for each Updater the nesting of its states
per key and, when the optimizer is dumped, its counters (num_update, per-key update counts,
lr, wd, Nadam's m_schedule). No pickle: loading a file never runs code from it. An lr_scheduler
is code, so it is not saved; the one the loading optimizer already has stays.

Keys are ints for the Trainer, and ints or strings for a KVStore (whose updater receives a str
key as bytes and, like MXNet's, files its state under the str): the description records which.
A 'bytes' key of a file written before the Updater decoded them comes back as the str.
"""
from __future__ import annotations

import json

import numpy as np

from ..ndarray import NDArray

__all__ = ["save_updater_states", "load_updater_states", "META"]

META = "__graphc_trainer_states__"


def _key_kind(keys):
    kinds = {"int" if isinstance(k, (int, np.integer)) else "bytes" if isinstance(k, bytes) else "str"
             for k in keys}
    if len(kinds) > 1:
        raise ValueError(f"optimizer states: keys mix types {sorted(kinds)}; a states file holds one key type")
    return kinds.pop() if kinds else "int"


def _encode_key(k):
    return k.decode() if isinstance(k, bytes) else str(k)


def _decode_key(s, kind):
    return int(s) if kind == "int" else s


def save_updater_states(fname, optimizer, updaters, dump_optimizer=True):
    """Write the states of `updaters` (graphc.gluon.optimizer.Updater) of `optimizer` to `fname`."""
    from ..formats.mxnet_params import save_params
    arrays = {}

    def encode(state, name):
        if state is None:
            return None
        if isinstance(state, NDArray):
            arrays[name] = state.asnumpy()
            return name
        if isinstance(state, (tuple, list)):
            return [encode(s, f"{name}.{j}") for j, s in enumerate(state)]
        raise TypeError(f"cannot save optimizer state of type {type(state).__name__}")

    keys = [k for u in updaters for k in u.states]
    kind = _key_kind(keys)
    meta = {"optimizer": type(optimizer).__name__.lower(), "key_type": kind,
            "updaters": [{_encode_key(k): encode(st, f"u{u}:{_encode_key(k)}") for k, st in upd.states.items()}
                         for u, upd in enumerate(updaters)]}
    if dump_optimizer:
        o = optimizer
        meta.update({"num_update": o.num_update, "lr": o.lr, "wd": o.wd,
                     "counts": {str(dev): {_encode_key(k): c for k, c in counts.items()}
                                for dev, counts in o._all_index_update_counts.items()}})
        if hasattr(o, "m_schedule"):
            meta["m_schedule"] = o.m_schedule
    arrays[META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8).copy()
    save_params(fname, arrays)


def load_updater_states(fname, optimizer, updaters, contexts):
    """Restore what save_updater_states wrote into `updaters` (states placed on contexts[u]) and,
    when the file holds them, `optimizer`'s counters. The optimizer must be of the saved kind."""
    from ..formats.mxnet_params import load_params
    arrays = load_params(fname)
    if META not in arrays:
        raise ValueError(f"{fname}: not a graphc optimizer-states file (no {META} entry)")
    meta = json.loads(bytes(arrays[META]).decode())
    o = optimizer
    if meta["optimizer"] != type(o).__name__.lower():
        raise ValueError(f"{fname}: states of optimizer {meta['optimizer']!r}, but the optimizer here is "
                         f"{type(o).__name__.lower()!r}")
    kind = meta.get("key_type", "int")
    if "num_update" in meta:
        o.num_update = meta["num_update"]
        o._all_index_update_counts = {int(dev): {_decode_key(k, kind): c for k, c in counts.items()}
                                      for dev, counts in meta["counts"].items()}
        o._index_update_count = o._all_index_update_counts.setdefault(0, {})
        if "lr" in meta:
            o.lr, o.wd = meta["lr"], meta["wd"]
        if "m_schedule" in meta:
            o.m_schedule = meta["m_schedule"]

    def decode(tree, ctx):
        if tree is None:
            return None
        if isinstance(tree, str):
            return NDArray(arrays[tree].copy(), ctx)
        return tuple(decode(t, ctx) for t in tree)

    saved_all = meta["updaters"]
    for u, updater in enumerate(updaters):
        saved = saved_all[u] if u < len(saved_all) else saved_all[0]
        updater.states = {_decode_key(k, kind): decode(tree, contexts[u]) for k, tree in saved.items()}
        updater.states_synced = {k: True for k in updater.states}
