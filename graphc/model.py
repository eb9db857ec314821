"""mx.model: MXNet 1.x's checkpoint files and the record a batch-end callback receives.

A checkpoint is `prefix-symbol.json` plus `prefix-%04d.params` whose arrays are named
'arg:<name>' and 'aux:<name>'. Both go through graphc.formats (MXNet's own byte layouts, written
atomically), so a checkpoint written here loads in MXNet 1.9.1 and the other way round. The
legacy FeedForward model API is not provided; Module (graphc.module) replaces it."""
from __future__ import annotations

import logging
from collections import namedtuple

__all__ = ["BatchEndParam", "save_checkpoint", "load_checkpoint", "load_params"]

BatchEndParam = namedtuple("BatchEndParams", ["epoch", "nbatch", "eval_metric", "locals"])


def _params_file(prefix, epoch):
    return "%s-%04d.params" % (prefix, epoch)


def save_params_file(fname, arg_params, aux_params):
    """Write arg_params/aux_params (name -> NDArray or numpy) as one 'arg:'/'aux:' .params file."""
    import numpy as np
    from .formats.mxnet_params import save_params

    def host(v):
        return v.asnumpy() if hasattr(v, "asnumpy") else np.asarray(v)
    arrays = {f"arg:{k}": host(v) for k, v in arg_params.items()}
    arrays.update({f"aux:{k}": host(v) for k, v in (aux_params or {}).items()})
    save_params(fname, arrays)


def load_params_file(fname):
    """(arg_params, aux_params) as NDArrays from an 'arg:'/'aux:' .params file; names without
    either prefix are refused, since nothing says which kind they are."""
    from .formats.mxnet_params import load_params as read
    from .ndarray import array
    arg_params, aux_params = {}, {}
    for key, value in read(fname).items():
        kind, sep, name = key.partition(":")
        if not sep or kind not in ("arg", "aux"):
            raise ValueError(f"{fname}: array {key!r} is named neither 'arg:<name>' nor 'aux:<name>'; "
                             "not a Module/model checkpoint (a Gluon save_parameters file?)")
        (arg_params if kind == "arg" else aux_params)[name] = array(value, dtype=value.dtype)
    return arg_params, aux_params


def save_checkpoint(prefix, epoch, symbol, arg_params, aux_params, remove_amp_cast=True):
    """prefix-symbol.json (when symbol is given) and prefix-<epoch:04d>.params."""
    if symbol is not None:
        symbol.save("%s-symbol.json" % prefix, remove_amp_cast=remove_amp_cast)
    fname = _params_file(prefix, epoch)
    save_params_file(fname, arg_params, aux_params)
    logging.info('Saved checkpoint to "%s"', fname)


def load_params(prefix, epoch):
    """(arg_params, aux_params) of checkpoint `epoch`."""
    fname = _params_file(prefix, epoch)
    arg_params, aux_params = load_params_file(fname)
    if not arg_params and not aux_params:
        logging.warning("Params file '%s' is empty", fname)
    return arg_params, aux_params


def load_checkpoint(prefix, epoch):
    """(symbol, arg_params, aux_params) of checkpoint `epoch`."""
    from .symbol import load
    symbol = load("%s-symbol.json" % prefix)
    arg_params, aux_params = load_params(prefix, epoch)
    return symbol, arg_params, aux_params
