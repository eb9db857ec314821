"""NDArrays on a GPU: `nd.array(x, ctx=mx.gpu(0))`, copies between devices, and the storage
protocol that keeps graphc's host-side code (which reads `x._data` as a numpy array) working
on arrays whose values live in device memory.

An NDArray created on a gpu(k) context becomes a `GpuNDArray` (NDArray.__init__ switches the
class, as pending.py does; `__slots__ = ()` keeps the layout). Its `_data` slot holds a
`GpuStorage`: the DeviceBuffer (runtime/cuda/memory.py) with the array's shape and dtype, and a
host mirror. Operators on GPU arrays run on the device (gpu_ops.py); this module never computes.

The host mirror protocol (one authoritative copy at a time):
- device-authoritative (`host is None`): the DeviceBuffer holds the value. Operators read and
  write buffers; shape, dtype, size, ndim and `_type()` never touch the device.
- host-authoritative (`host` is a numpy array): someone read `x._data`, the numpy view of the
  value that graphc's host code (optimizers, kvstore, copyto into an array, x[key] = v) reads
  and writes in place. `_data` downloads the value once and from then on that numpy array *is*
  the value, so in-place writes to it count. The next device use (`device_buffer(x)`) uploads
  it and drops the mirror: a numpy array obtained from `_data` is the array's value only until
  then. Assigning `x._data = value` makes `value` the (host-authoritative) value.
- `asnumpy()`, printing, pickling and `np.asarray(x)` copy the value without changing which
  side is authoritative (a read from Python does not make the next operator upload).

API (for graphc.gluon and other front-end code):
- `GpuNDArray`: an NDArray; everything an NDArray offers works (values equal the CPU's).
- `device_buffer(x) -> DeviceBuffer`: x's value on the device, uploaded first if needed (for a
  view: a window with the same ptr/nbytes/device, whose free() does nothing).
- `from_buffer(buf, shape, dtype, ctx) -> GpuNDArray`: wrap a buffer a GPU program produced
  (the array owns it from then on).
- `empty(shape, dtype, ctx)`, `zeros(shape, dtype, ctx)`: device arrays without a host round trip.
- `write_buffer(dst, buf)`: overwrite dst's value in place (same size) with a device copy.
- `is_gpu(x)`: whether x is a GpuNDArray; `storage(x)`: its GpuStorage (buffer, host mirror;
  a GpuView for a view: the same protocol, `buf` and `host` being windows onto its root's).
- `graphc.ndarray.gpu_ops`: eager operators on GPU arrays (one-node GPU programs), `stats()`.
Writes that stay on the device: `x[:] = y` (y on x's GPU; out= goes through it), `x[:] = 0`,
in-place operators (`x += y`), copyto between arrays of one GPU, backward's .grad writes.
`x[:] = number/list/numpy` replaces the value without downloading the old one.
Views (MXNet's: basic slicing whose result is contiguous, and `x.reshape`, share memory): outside
autograd.record(), `x[i]`, `x[a:b]`, `x[i, a:b]` (the keys for which the CPU's
NDArray._first_axis_view returns a numpy view) are GpuNDArrays whose storage is a `GpuView`:
the root storage, a byte offset and the view's shape. `x.reshape(...)` is a view always (as the
CPU's numpy reshape), recorded as the Reshape operator while recording; a slice taken while
recording is the indexing operator's copy (its gradient), as on the CPU. Everything else
(strided keys, advanced indexing, nd.reshape) is a copy, as in MXNet. A view holds no state of
its own: the root's host mirror is the only one, so
- a view's host access (`_data`) is a numpy view into the root's host mirror (the root
  becomes host-authoritative, as if its own `_data` were read);
- a view's device access uploads the root's mirror first and is `root.ptr + offset`, a
  contiguous run (what GPU programs and cuBLAS take); device writes through it (out=, x[:] =,
  +=, copyto, a program output placed there) land in the root's memory;
- views of views refer to the root directly, and the root's buffer lives while any view does.

Not thread-safe per array: two threads writing the same GPU array race as they would on numpy.
"""
from __future__ import annotations

import math

import numpy as np

from ..ops.dtypes import canonical
from ..ops.errors import GraphcError
from ..ops.types import TensorType
from ..runtime.cuda import memory as _memory
from ..runtime.cuda.driver import require_driver
from . import advanced_index as _advanced
from .ndarray import DescribedWithoutData, NDArray, _DTYPE_NAMES

_RAW = NDArray.__dict__["_data"]         # the slot itself: holds a GpuStorage


class GpuStorage:
    """The value of one GPU array (shared by arrays that share memory: x and x.detach(); views
    refer to it through a GpuView)."""

    __slots__ = ("device", "shape", "dtype", "buf", "host")

    def __init__(self, device: int, shape: tuple, dtype: np.dtype, buf=None, host=None):
        self.device, self.shape, self.dtype = device, shape, dtype
        self.buf = buf            # DeviceBuffer or None (not allocated yet)
        self.host = host          # numpy array when host-authoritative, else None

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def device_buffer(self):
        """The buffer holding the value, uploading a host-authoritative value first."""
        host = self.host
        if host is not None:
            buf = self.buf
            if buf is None or buf.nbytes != host.nbytes:
                buf = self.buf = _memory.allocator(self.device).allocate(host.nbytes)
            if host.nbytes:
                require_driver("uploading to a GPU").memcpy_htod(self.device, buf.ptr, np.ascontiguousarray(host))
            self.host = None
        elif self.buf is None:
            raise GraphcError(f"gpu({self.device}): an array of shape {self.shape} has no value "
                              "(its storage was never written)")
        return self.buf

    def download(self) -> np.ndarray:
        """A new host array holding the value (the storage's state is unchanged)."""
        if self.host is not None:
            return self.host.copy()
        out = np.empty(self.shape, self.dtype)
        if out.nbytes:
            require_driver("downloading from a GPU").memcpy_dtoh(self.device, out, self.buf.ptr)
        return out

    def host_value(self) -> np.ndarray:
        """The numpy array that is the value from now on (downloaded once): `_data`."""
        if self.host is None:
            self.host = self.download()
        return self.host

    def written_on_device(self) -> None:
        """The buffer was just overwritten on the device: it is the value now."""
        self.host = None

    def view(self, first: int, shape: tuple) -> "GpuView":
        """The contiguous run of this value starting at element `first`, seen with `shape`."""
        return GpuView(self, first * self.dtype.itemsize, shape)


class GpuView(GpuStorage):
    """A contiguous part of a root GpuStorage (`x[1:3]`, `x.reshape(...)`): the root's bytes from
    `offset`, with the view's own shape. It keeps no value of its own (`buf` and `host` are
    windows onto the root's), so writes through either side are seen by the other and there is
    only one host mirror to keep coherent."""

    __slots__ = ("root", "offset")

    def __init__(self, root: GpuStorage, offset: int, shape: tuple):
        if isinstance(root, GpuView):
            root, offset = root.root, root.offset + offset
        self.root, self.offset = root, offset
        self.device, self.shape, self.dtype = root.device, tuple(shape), root.dtype
        if self.nbytes == 0:
            self.offset = 0               # (an empty view reads nothing; keep its pointer inside the root)
        elif offset < 0 or offset + self.nbytes > root.nbytes:
            raise GraphcError(f"gpu({root.device}) view: bytes [{offset}, {offset + self.nbytes}) of an array of "
                              f"{root.nbytes} bytes (shape {root.shape}, {root.dtype})")

    # the device side: the root's buffer (its host mirror uploaded first) from `offset`
    @property
    def buf(self):
        root = self.root
        if root.buf is None and root.host is None:
            return None
        return _ViewBuffer(root.device_buffer(), self.offset, self.nbytes)

    @buf.setter
    def buf(self, value):
        raise GraphcError(f"gpu({self.device}): a view of shape {self.shape} uses its base array's memory "
                          f"(shape {self.root.shape}); it cannot be given a buffer of its own")

    def device_buffer(self):
        return _ViewBuffer(self.root.device_buffer(), self.offset, self.nbytes)

    # the host side: a numpy view into the root's mirror while the root is host-authoritative
    @property
    def host(self):
        return None if self.root.host is None else self._window()

    @host.setter
    def host(self, value):
        if value is None:
            self.written_on_device()
        else:
            self._replace(value)

    def host_value(self) -> np.ndarray:
        self.root.host_value()
        return self._window()

    def download(self) -> np.ndarray:
        root = self.root
        if root.host is not None:
            return self._window().copy()
        out = np.empty(self.shape, self.dtype)
        if out.nbytes:
            require_driver("downloading from a GPU").memcpy_dtoh(self.device, out, root.buf.ptr + self.offset)
        return out

    def written_on_device(self) -> None:
        root = self.root
        if root.host is not None and self.nbytes:
            # the root's mirror is authoritative for the rest of it: bring this part into it
            require_driver("downloading from a GPU").memcpy_dtoh(self.device, self._window(),
                                                                 root.buf.ptr + self.offset)

    def _window(self) -> np.ndarray:
        root = self.root
        host = root.host
        if not host.flags.c_contiguous or not host.flags.writeable:
            host = root.host = np.array(host, order="C")     # (a mirror a view can be a window onto)
        first = self.offset // self.dtype.itemsize
        count = int(np.prod(self.shape, dtype=np.int64))
        return host.reshape(-1)[first:first + count].reshape(self.shape)

    def _replace(self, value) -> None:
        """The view's whole value becomes `value` (x[:] = numpy): uploaded straight into the root's
        memory while the device is authoritative (nothing downloaded), else into its mirror."""
        root = self.root
        if root.host is None and root.buf is not None:
            if self.nbytes:
                host = np.ascontiguousarray(np.broadcast_to(value, self.shape), dtype=self.dtype)
                require_driver("uploading to a GPU").memcpy_htod(self.device, root.buf.ptr + self.offset, host)
            return
        self.host_value()[...] = value


class _ViewBuffer:
    """A DeviceBuffer-like window (ptr, nbytes, device) onto part of a root's DeviceBuffer, for
    code that takes pointers from arrays. It keeps the root's buffer alive and frees nothing."""

    __slots__ = ("ptr", "nbytes", "device", "base")

    def __init__(self, base, offset: int, nbytes: int):
        self.base, self.ptr, self.nbytes, self.device = base, base.ptr + offset, nbytes, base.device

    def free(self) -> None:
        """(the memory is the root array's: it goes back to the pool with the root's buffer)"""

    def __repr__(self):
        return f"<view of {self.base!r}: {self.nbytes} bytes at {self.ptr:#x}>"


class GpuNDArray(DescribedWithoutData, NDArray):
    """An NDArray whose value is in GPU memory; see the module docstring."""

    __slots__ = ()

    # -- the storage protocol ---------------------------------------------------------------
    @property
    def _data(self):
        # host-authoritative from now on (the caller may write); a view's: a window onto its root's
        return _RAW.__get__(self).host_value()

    @_data.setter
    def _data(self, value):
        # a new value (not a write into the old one, which sharers see): its own storage
        value = np.asarray(value)
        _RAW.__set__(self, GpuStorage(self._ctx.device_id, value.shape, value.dtype, host=value))

    def _type(self) -> TensorType:
        st = _RAW.__get__(self)
        name = _DTYPE_NAMES.get(st.dtype)
        if name is None:
            name = _DTYPE_NAMES.setdefault(st.dtype, canonical(st.dtype))
        return TensorType(st.shape, name, str(self._ctx))

    # -- host reads that leave the device value authoritative -------------------------------
    def asnumpy(self) -> np.ndarray:
        return _RAW.__get__(self).download()

    def asscalar(self):
        if self.size != 1:
            raise ValueError(f"asscalar: the array has shape {self.shape}, not exactly one element")
        return self.asnumpy().reshape(())[()]

    def __array__(self, dtype=None, copy=None):
        v = self.asnumpy()
        return v if dtype is None else v.astype(dtype)

    def __bool__(self):
        if self.size == 0:
            return False
        if self.size != 1:
            raise ValueError(f"the truth value of an array with {self.size} elements is ambiguous")
        return bool(self.asnumpy().reshape(()).item())

    def __repr__(self):
        return f"\n{self.asnumpy()}\n<NDArray {'x'.join(map(str, self.shape))} @{self._ctx}>"

    def wait_to_read(self):
        """Wait for the device work that makes the value (the device's stream runs in order)."""
        require_driver("waiting for a GPU").synchronize(self._ctx.device_id)
        return self

    # -- copies -----------------------------------------------------------------------------
    def astype(self, dtype, copy=True):
        if not copy and _RAW.__get__(self).dtype == np.dtype(canonical(dtype)):
            return self
        return NDArray.astype(self, dtype, copy)

    def copy(self):
        st = _RAW.__get__(self)
        out = empty(st.shape, st.dtype, self._ctx)
        write_buffer(out, st.device_buffer())
        return out

    def detach(self):
        out = GpuNDArray.__new__(GpuNDArray)
        _init_fields(out, _RAW.__get__(self), self._ctx)     # the same memory, without the tape
        return out

    def copyto(self, other):
        """Into the NDArray `other` (device copy when both are on one GPU), or onto the device
        `other`: GPU -> CPU downloads, CPU -> GPU uploads, gpu(i) -> gpu(j) copies device to
        device where the driver can (its memcpy_peer), else through the host."""
        from ..device import as_context
        if isinstance(other, NDArray):
            if other.shape != self.shape:
                raise GraphcError(f"copyto: target shape {other.shape} differs from source {self.shape}")
            if type(other) is GpuNDArray and other.dtype == self.dtype and (
                    other._ctx == self._ctx or peer_copies()):
                write_buffer(other, device_buffer(self))     # (between GPUs: driver.memcpy_peer)
                return other
            return NDArray.copyto(self, other)       # through the host (another device or dtype)
        ctx = as_context(other)
        if ctx == self._ctx:
            out = self.copy()
        elif ctx.device_type == "gpu" and peer_copies():
            out = to_other_gpu(self, ctx)            # device to device (driver.memcpy_peer)
        else:
            out = NDArray(self.asnumpy(), ctx)       # (uploads when ctx is a GPU)
        from .. import autograd
        if autograd.is_recording() and autograd.needs_grad(self):
            source = self._ctx
            autograd.record_custom([self], [out], lambda F, ins, outs, ograds: [ograds[0].copyto(source)],
                                   "_copyto")
        return out

    # -- autograd ---------------------------------------------------------------------------
    def attach_grad(self, grad_req="write", stype=None):
        if grad_req not in ("write", "add", "null"):
            raise ValueError(f"attach_grad: grad_req must be 'write', 'add' or 'null', got {grad_req!r}")
        if stype not in (None, "default"):
            raise GraphcError(f"attach_grad(stype={stype!r}): sparse gradients are not supported on {self._ctx}")
        st = _RAW.__get__(self)
        self._grad = zeros(st.shape, st.dtype, self._ctx)
        self._grad_req = grad_req
        self._entry = None

    def _store_grad(self, g, req):
        """backward()'s write of gradient g into this .grad buffer, on the device."""
        if type(g) is not GpuNDArray or g._ctx != self._ctx:
            g = NDArray(np.asarray(g.asnumpy()), self._ctx)       # (a CPU head gradient: uploaded)
        if g.dtype != self.dtype:
            g = g.astype(self.dtype)
        if req == "add":
            from .ndarray import invoke
            g = invoke("elemwise_add", [self, g], {})
        write_buffer(self, device_buffer(g))

    # -- indexing and views ---------------------------------------------------------------
    def __getitem__(self, key):
        # what the CPU makes a view (x[i], x[a:b], x[i, a:b] outside record()) is one here too:
        # no copy, and no program per distinct key (`for row in x` would compile one per row)
        from .. import autograd
        if not autograd.is_recording():
            region = _view_region(key, _RAW.__get__(self).shape)
            if region is not None:
                return _view(self, *region)
        return NDArray.__getitem__(self, key)

    def reshape(self, *shape, **kwargs):
        """A view with the new shape (MXNet's NDArray.reshape and the CPU's share memory); while
        recording it is on the tape as the Reshape operator."""
        from .. import autograd
        from .call_cache import parse
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if "shape" in kwargs:
            shape = tuple(kwargs.pop("shape"))
        op, parsed = parse("Reshape", {"shape": shape, **kwargs})
        out_shape = op.infer_types([self._type()], parsed, "")[0].shape     # (errors name Reshape)
        out = _view(self, 0, out_shape)
        if autograd.is_recording() and op.gradient is not None and autograd.needs_grad(self):
            from .gpu_ops import _record
            _record(op, parsed, [self], [out], self._ctx)
        return out

    def __setitem__(self, key, value):
        whole = isinstance(key, slice) and key == slice(None) and self.ndim > 0
        # x[:] = y of one GPU's arrays (out=, an optimizer's write-back) stays on the device
        if whole and type(value) is GpuNDArray and (value._ctx == self._ctx or peer_copies()) \
                and value.shape == self.shape and value.dtype == self.dtype:     # (another GPU: peer)
            write_buffer(self, device_buffer(value))
            return
        if isinstance(value, NDArray):
            value = value.asnumpy()
        if whole:
            # the whole value is replaced: no need to download the old one first
            st = _RAW.__get__(self)
            v = np.asarray(value)
            if isinstance(value, (list, tuple)) or v.ndim:
                v = _advanced.fit_value(v, st.shape)
            buf = st.buf if not v.ndim and v == 0 else None
            if buf is not None and buf.nbytes == st.nbytes:
                if st.nbytes:
                    require_driver("zeroing GPU memory").memset(st.device, buf.ptr, st.nbytes)
                st.written_on_device()
                return
            new = np.empty(st.shape, st.dtype)
            new[...] = v
            st.host = new                 # host-authoritative (uploaded at the next device use)
            return
        NDArray.__setitem__(self, key, value)


def _view_region(key, shape):
    """(first element, shape) of x[key] when the CPU's NDArray._first_axis_view makes it a view
    (integers and slices whose numpy result is C-contiguous, not 0-d; a vector's x[i] is its
    (1,)-shaped slice), else None. The same numpy indexing decides, applied to a one-byte probe
    strided like x in elements (never read: only addresses are compared), so the rules and the
    IndexErrors are exactly the CPU's."""
    if not shape:
        return None
    parts = key if isinstance(key, tuple) else (key,)
    if not parts or len(parts) > len(shape) or not all(isinstance(k, slice) or _is_int(k) for k in parts):
        return None
    if _is_int(key) and len(shape) == 1:
        n = shape[0]
        i = int(key) + n if key < 0 else int(key)
        if not 0 <= i < n:
            raise IndexError(f"index {int(key)} is out of bounds for axis 0 with size {n}")
        key = slice(i, i + 1)
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(int(n), 1)
    probe = np.lib.stride_tricks.as_strided(_PROBE, shape=shape, strides=strides[::-1], writeable=False)
    try:
        sub = probe[key]
    except IndexError as e:
        raise IndexError(f"{e} (array of shape {tuple(shape)})") from None
    if not isinstance(sub, np.ndarray) or not sub.ndim or not sub.flags.c_contiguous:
        return None
    first = sub.__array_interface__["data"][0] - _PROBE_ADDR if sub.size else 0
    return first, sub.shape


_PROBE = np.zeros(1, np.uint8)            # (never read: only its address is subtracted)
_PROBE_ADDR = _PROBE.__array_interface__["data"][0]


def _is_int(k) -> bool:
    return isinstance(k, (int, np.integer)) and not isinstance(k, bool)


def _view(x, first, shape) -> "GpuNDArray":
    out = GpuNDArray.__new__(GpuNDArray)
    _init_fields(out, _RAW.__get__(x).view(first, tuple(shape)), x._ctx)
    return out


def _init_fields(arr, storage, ctx):
    _RAW.__set__(arr, storage)
    arr._ctx = ctx
    arr._entry = arr._grad = arr._job = None
    arr._grad_req = "null"
    arr._fresh_grad = False


def adopt(arr: NDArray, data, ctx) -> None:
    """NDArray.__init__ on a GPU context: `arr` becomes a GpuNDArray holding a device copy of
    `data` (uploaded now, so that device memory is used as soon as the array exists, as MXNet's)."""
    arr.__class__ = GpuNDArray
    data = np.asarray(data)
    st = GpuStorage(ctx.device_id, data.shape, data.dtype, host=data)
    st.device_buffer()
    _init_fields(arr, st, ctx)


def from_buffer(buf, shape, dtype, ctx) -> GpuNDArray:
    arr = GpuNDArray.__new__(GpuNDArray)
    _init_fields(arr, GpuStorage(ctx.device_id, tuple(shape), np.dtype(dtype), buf=buf), ctx)
    return arr


def empty(shape, dtype, ctx) -> GpuNDArray:
    """An array with an allocated, unwritten buffer (its value is whatever the block held)."""
    shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return from_buffer(_memory.allocator(ctx.device_id).allocate(nbytes), shape, dtype, ctx)


def zeros(shape, dtype, ctx) -> GpuNDArray:
    out = empty(shape, dtype, ctx)
    buf = _RAW.__get__(out).buf
    if buf.nbytes:
        require_driver("zeroing GPU memory").memset(ctx.device_id, buf.ptr, buf.nbytes)
    return out


def device_buffer(x: GpuNDArray):
    return _RAW.__get__(x).device_buffer()


def storage(x: GpuNDArray) -> GpuStorage:
    return _RAW.__get__(x)


def write_buffer(dst: GpuNDArray, buf) -> None:
    """dst's value becomes a device copy of `buf` (same byte size), in dst's own memory (arrays
    sharing it see the write, as they would in MXNet). `buf` may be on another GPU where the
    driver has `memcpy_peer` (peer_copies())."""
    st = _RAW.__get__(dst)
    if buf.nbytes != st.nbytes:
        raise GraphcError(f"gpu write: {buf.nbytes} bytes into an array of {st.nbytes} bytes "
                          f"(shape {st.shape}, {st.dtype})")
    mine = st.buf                   # (a view's: its window onto the root's buffer)
    if mine is None or mine.nbytes != st.nbytes:
        mine = st.buf = _memory.allocator(st.device).allocate(st.nbytes)
    if buf.device != st.device:
        drv = require_driver("copying between GPUs")
        if not hasattr(drv, "memcpy_peer"):
            raise GraphcError(f"gpu write: a buffer of gpu({buf.device}) into an array of gpu({st.device}), "
                              f"and the {drv.name} driver has no copy between GPUs")
        drv.memcpy_peer(st.device, mine.ptr, buf.device, buf.ptr, buf.nbytes)   # (ordered: driver.py)
        st.written_on_device()
        return
    if mine.ptr != buf.ptr and buf.nbytes:
        drv = require_driver("copying on a GPU")
        if mine.ptr < buf.ptr + buf.nbytes and buf.ptr < mine.ptr + buf.nbytes:
            # overlapping views of one array (x[0:3][:] = x[1:4]): through a scratch copy
            tmp = _memory.allocator(st.device).allocate(buf.nbytes)
            drv.memcpy_dtod(st.device, tmp.ptr, buf.ptr, buf.nbytes)
            buf = tmp
        drv.memcpy_dtod(st.device, mine.ptr, buf.ptr, buf.nbytes)
    st.written_on_device()


def peer_copies() -> bool:
    """Whether copies between two GPUs can skip the host (the driver's optional memcpy_peer)."""
    return hasattr(require_driver("copying between GPUs"), "memcpy_peer")


def to_other_gpu(source: GpuNDArray, ctx) -> GpuNDArray:
    """A copy of `source` on GPU `ctx` (another GPU), device to device."""
    st = _RAW.__get__(source)
    out = empty(st.shape, st.dtype, ctx)
    write_buffer(out, st.device_buffer())
    return out


def array_of(source: GpuNDArray, ctx, dtype) -> NDArray:
    """nd.array(source, ctx, dtype) of a GPU array: a new array (a device copy on its GPU)."""
    from ..device import as_context
    ctx = as_context(ctx) if ctx else source._ctx
    out = source
    if dtype is not None and np.dtype(canonical(dtype)) != _RAW.__get__(source).dtype:
        from .. import autograd
        with autograd.pause():                      # (a new array, off the tape, as on the CPU)
            out = source.astype(dtype)              # Cast on the device
    if ctx != source._ctx:
        if ctx.device_type == "gpu" and peer_copies():
            return to_other_gpu(out, ctx)
        return NDArray(out.asnumpy(), ctx)
    return out.copy() if out is source else out


def is_gpu(x) -> bool:
    return type(x) is GpuNDArray


def assign(dst: GpuNDArray, result, what: str) -> None:
    """dst[...] = result, an in-place operator's last step (ndarray._inplace via pending.assign)."""
    if type(result) is GpuNDArray and result._ctx == dst._ctx and result.dtype == dst.dtype:
        write_buffer(dst, device_buffer(result))
        return
    dst._data[...] = result.asnumpy() if isinstance(result, NDArray) else result


__all__ = ["GpuNDArray", "GpuStorage", "GpuView", "adopt", "array_of", "from_buffer", "empty", "zeros",
           "device_buffer", "storage", "write_buffer", "is_gpu", "assign", "peer_copies", "to_other_gpu"]
