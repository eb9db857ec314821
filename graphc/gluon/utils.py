"""Gluon helpers: splitting a batch across devices, clipping gradients by their global norm,
and the small pieces Block and Parameter share (hook handles, indentation for reprs).

This module must stay free of Block/Parameter imports: both import it.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from collections import OrderedDict

import numpy as np

__all__ = ["split_data", "split_and_load", "clip_global_norm", "check_sha1", "download",
           "shape_is_known", "HookHandle"]


def shape_is_known(shape) -> bool:
    """True when every dimension is known (MXNet 1.x legacy shapes use 0 for 'unknown')."""
    if shape is None:
        return False
    return all(d is not None and d > 0 for d in shape)


def _indent(s_, num_spaces):
    """Indent every line but the first (MXNet's repr layout)."""
    lines = s_.split("\n")
    if len(lines) == 1:
        return s_
    first = lines.pop(0)
    return first + "\n" + "\n".join((num_spaces * " ") + line for line in lines)


def _slice_axis(data, axis, begin, end):
    key = (slice(None),) * axis + (slice(begin, end),)
    return data[key]


def split_data(data, num_slice, batch_axis=0, even_split=True):
    """Split `data` into `num_slice` parts along `batch_axis` (views of the batch)."""
    size = data.shape[batch_axis]
    if even_split and size % num_slice != 0:
        raise ValueError(
            f"data with shape {data.shape} cannot be evenly split into {num_slice} slices along axis "
            f"{batch_axis}. Use a batch size that's multiple of {num_slice} or set even_split=False to "
            "allow uneven partitioning of data.")
    step = size // num_slice
    if not even_split and size < num_slice:  # fewer samples than devices: one sample each
        step, num_slice = 1, size
    return [_slice_axis(data, batch_axis, i * step, (i + 1) * step if i < num_slice - 1 else size)
            for i in range(num_slice)]


def split_and_load(data, ctx_list, batch_axis=0, even_split=True):
    """Split a batch along `batch_axis` and put slice i on ctx_list[i]."""
    from .. import ndarray as nd
    if isinstance(data, np.ndarray):
        # sliced on the host, each slice copied once to its device (not the whole batch to the
        # first device and the slices on from there)
        return [nd.array(s, ctx=ctx, dtype=data.dtype)
                for s, ctx in zip(split_data(data, len(ctx_list), batch_axis, even_split), ctx_list)]
    if not isinstance(data, nd.NDArray):
        data = nd.array(data, ctx=ctx_list[0])
    if len(ctx_list) == 1:
        return [data.as_in_context(ctx_list[0])]
    slices = split_data(data, len(ctx_list), batch_axis, even_split)
    return [s.as_in_context(ctx) for s, ctx in zip(slices, ctx_list)]


_SQUARES_CHUNK = 1 << 16


def _sum_of_squares(x) -> float:
    """sum(x*x) in one pass without a float64 copy of x: BLAS dot products over chunks of 2^16
    elements (float32 rounding stays ~1e-7 relative within a chunk), summed in float64."""
    flat = x.reshape(-1)
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float64)
    return float(sum(float(np.dot(c, c)) for c in (flat[i:i + _SQUARES_CHUNK]
                                                    for i in range(0, flat.size, _SQUARES_CHUNK))))


def clip_global_norm(arrays, max_norm, check_isfinite=True):
    """Rescale `arrays` in place so that the 2-norm of all of them together is at most
    `max_norm`; returns the norm before clipping (a float, or an NDArray when
    check_isfinite=False, as MXNet)."""
    from .. import ndarray as nd
    if len(arrays) == 0:
        raise ValueError("clip_global_norm: no arrays given")
    on_gpu = [a.context.device_type == "gpu" and a.stype == "default" for a in arrays]
    squares = sum(_sum_of_squares(a._data) for a, g in zip(arrays, on_gpu) if not g)
    if any(on_gpu):
        squares += _gpu_sum_of_squares([a for a, g in zip(arrays, on_gpu) if g])
    total_norm = float(np.sqrt(squares))
    if check_isfinite and not np.isfinite(total_norm):
        warnings.warn(UserWarning("nan or inf is detected. Clipping results will be undefined."), stacklevel=2)
    scale = min(max_norm / (total_norm + 1e-8), 1.0)
    for a, gpu in zip(arrays, on_gpu):
        if gpu:
            if scale != 1.0:
                _scale_on_device(a, scale)
        else:
            a._data *= a._data.dtype.type(scale)
    if check_isfinite:
        return total_norm
    return nd.array([total_norm], ctx=arrays[0].context, dtype=arrays[0].dtype)


def _gpu_sum_of_squares(arrays) -> float:
    """sum(x*x) over GPU arrays, computed on their devices: one scalar downloaded per device
    (reading the arrays' values on the host would copy every gradient there each step)."""
    from .. import autograd, ndarray as nd
    per_device = {}
    with autograd.pause():
        for a in arrays:
            s = nd.sum(nd.square(a.astype("float32", copy=False)))
            ctx = a.context
            per_device[ctx] = s if ctx not in per_device else per_device[ctx] + s
    return float(sum(float(s.asscalar()) for s in per_device.values()))


def _scale_on_device(a, scale):
    """a *= scale in a's own GPU memory (a gradient whose arrays others hold)."""
    from .. import autograd
    with autograd.pause():
        a *= a.dtype(scale)


def check_sha1(filename, sha1_hash):
    sha1 = hashlib.sha1()
    with open(filename, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha1.update(chunk)
    return sha1.hexdigest() == sha1_hash


def download(url, path=None, overwrite=False, sha1_hash=None, retries=5, verify_ssl=True):
    """Return the local file for `url` when it is already there (graphc does no network I/O
    itself: fetch files with your own tools and point `path` at them)."""
    fname = url.split("/")[-1] if path is None else (
        os.path.join(path, url.split("/")[-1]) if os.path.isdir(path) else path)
    if os.path.exists(fname) and not overwrite and (sha1_hash is None or check_sha1(fname, sha1_hash)):
        return fname
    raise OSError(f"download: {fname!r} is not present locally and graphc does not fetch {url!r}; "
                  "download it yourself and pass its path")


class HookHandle:
    """Returned by register_forward_hook / register_forward_pre_hook; `detach()` removes it."""

    _next_id = 0

    def __init__(self):
        self._hooks_dict_ref = None
        self._id = None

    def attach(self, hooks_dict: OrderedDict, hook):
        if self._hooks_dict_ref is not None:
            raise RuntimeError("The same handle cannot be attached twice.")
        HookHandle._next_id += 1
        self._id = HookHandle._next_id
        hooks_dict[self._id] = hook
        self._hooks_dict_ref = hooks_dict

    def detach(self):
        if self._hooks_dict_ref is not None:
            self._hooks_dict_ref.pop(self._id, None)
            self._hooks_dict_ref = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.detach()
