"""An optimizer as JSON, so that worker 0 can hand it to the parameter servers ('dist_async').

graphc optimizers refuse pickle (their states go to MXNet-format files), and a server must not
run code a message names, so only plain data travels: numbers, strings, lists, dicts, and
objects of graphc's own Optimizer and LRScheduler classes (rebuilt from their attributes).
The Parameters in `param_dict` stay behind; their lr_mult and wd_mult travel per index, which
the optimizer consults the same way.
"""
from __future__ import annotations

import importlib
import json
import numbers

import numpy as np

from ..dist.errors import DistributedError

__all__ = ["dumps", "loads"]

_SKIPPED = {"param_dict", "_buffers", "_fused", "_index_update_count"}


def _allowed():
    from ..gluon.lr_scheduler import LRScheduler
    from ..gluon.optimizer import Optimizer
    return (Optimizer, LRScheduler)


def _encode(value, where):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (numbers.Integral, numbers.Real)) or isinstance(value, np.generic):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [_encode(v, f"{where}[{i}]")
                                                                for i, v in enumerate(value)]}
    if isinstance(value, dict):
        return {"dict": [[_encode(k, where), _encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    if isinstance(value, _allowed()):
        cls = type(value)
        state = {k: _encode(v, f"{where}.{k}") for k, v in vars(value).items() if k not in _SKIPPED}
        return {"object": f"{cls.__module__}:{cls.__qualname__}", "state": state}
    raise DistributedError(f"dist_async: the optimizer cannot be sent to the servers: {where} is a "
                           f"{type(value).__name__}; only numbers, strings, lists, dicts and graphc "
                           "optimizers and learning-rate schedulers travel")


def _decode(value):
    if not isinstance(value, dict):
        return value
    if "list" in value:
        return [_decode(v) for v in value["list"]]
    if "tuple" in value:
        return tuple(_decode(v) for v in value["tuple"])
    if "dict" in value:
        return {_decode(k): _decode(v) for k, v in value["dict"]}
    module, _, name = value["object"].partition(":")
    if not module.startswith("graphc."):
        raise DistributedError(f"dist_async: refusing to rebuild {value['object']!r}: not a graphc class")
    cls = importlib.import_module(module)
    for part in name.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and issubclass(cls, _allowed())):
        raise DistributedError(f"dist_async: refusing to rebuild {value['object']!r}: not an optimizer or "
                               "learning-rate scheduler")
    obj = cls.__new__(cls)
    obj.__dict__.update({k: _decode(v) for k, v in value["state"].items()})
    return obj


def dumps(optimizer) -> str:
    """`optimizer` as JSON text (with its Parameters' lr_mult and wd_mult folded in by index)."""
    state_lr = dict(optimizer.lr_mult)
    state_wd = dict(optimizer.wd_mult)
    for index, param in getattr(optimizer, "param_dict", {}).items():
        state_lr[index] = param.lr_mult
        state_wd[index] = param.wd_mult
    saved = optimizer.lr_mult, optimizer.wd_mult
    optimizer.lr_mult, optimizer.wd_mult = state_lr, state_wd
    try:
        return json.dumps(_encode(optimizer, "optimizer"))
    finally:
        optimizer.lr_mult, optimizer.wd_mult = saved


def loads(text):
    """The optimizer `dumps` described, ready to update weights."""
    optimizer = _decode(json.loads(text))
    optimizer.param_dict = {}
    optimizer._buffers = {}
    counts = getattr(optimizer, "_all_index_update_counts", None)
    if counts is None:
        counts = optimizer._all_index_update_counts = {0: {}}
    optimizer._index_update_count = counts.setdefault(0, {})
    return optimizer
