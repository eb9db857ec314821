"""NDArray: the eager array. Data lives in a numpy array on the CPU; every operator runs its
numpy reference through `invoke`, which also records onto the autograd tape.

With more than one device in use (graphc.device.MULTI), an array may have work queued on its
device (it is then a pending.PendingNDArray until that work is done) and `invoke` goes through
pending.invoke_multi: inputs on several devices, queued operators. With one device none of that
code runs: invoke's extra cost is one module-attribute test."""
from __future__ import annotations

import numbers

import numpy as np

from ..ops.arith import ArithmeticMixin
from ..ops.builder import Handle
from ..ops.dtypes import canonical
from ..ops.errors import GraphcError
from ..ops.types import TensorType
from ..device import Context, as_context, current_context, require_device
from .. import autograd, device as _device, eager_kernels as _eager, random as _random
from ..runtime import trace as _trace
from .call_cache import EagerNamespace, parse as _parse


_DTYPE_NAMES: dict = {}     # numpy dtype -> canonical name (NDArray._type)
# MXNet's storage-type ids (mxnet.ndarray.ndarray), which its tests and user code import
_STORAGE_TYPE_UNDEFINED, _STORAGE_TYPE_DEFAULT, _STORAGE_TYPE_ROW_SPARSE, _STORAGE_TYPE_CSR = -1, 0, 1, 2
_STORAGE_TYPE_STR_TO_ID = {"undefined": -1, "default": 0, "row_sparse": 1, "csr": 2}
_STORAGE_TYPE_ID_TO_STR = {v: k for k, v in _STORAGE_TYPE_STR_TO_ID.items()}


class NDArray(ArithmeticMixin):
    """An n-dimensional array on a device. `_entry` links it to the autograd tape when it was
    computed while recording; `_grad`/`_grad_req` are set by attach_grad()."""

    # _job: the last queued work touching the array while it is pending (pending.py)
    __slots__ = ("_data", "_ctx", "_entry", "_grad", "_grad_req", "_fresh_grad", "_job")

    def __init__(self, data: np.ndarray, ctx: Context | None = None):
        ctx = ctx or current_context()
        if ctx.device_id or ctx.device_type != "cpu":
            # a GPU the machine lacks is refused (as MXNet does); cpu(k) joins the core split
            require_device(ctx)
            if ctx.device_type == "gpu":     # a GpuNDArray holding a device copy (gpu.py)
                _gpu.adopt(self, data, ctx)
                return
        self._data = data
        self._ctx = ctx
        self._entry = None
        self._grad = None
        self._grad_req = "null"
        self._fresh_grad = False   # backward wrote .grad since the Trainer last used it (MXNet's protocol)

    # -- plumbing ---------------------------------------------------------------------------
    def _invoke(self, op, inputs, attrs):
        return invoke(op, inputs, attrs)

    def _lift(self, other):
        return array(other, ctx=self._ctx, dtype=self.dtype)

    # -- properties -------------------------------------------------------------------------
    @property
    def shape(self):
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype.type

    @property
    def size(self):
        return self._data.size

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def context(self):
        return self._ctx

    ctx = context

    @property
    def stype(self):
        return "default"

    @property
    def T(self):
        return invoke("transpose", [self], {})

    @property
    def grad(self):
        return self._grad

    @property
    def handle(self):
        return id(self)

    def _type(self) -> TensorType:
        dt = self._data.dtype
        # numpy's dtype.name is a Python-level property: every eager op asks once per input
        name = _DTYPE_NAMES.get(dt)
        if name is None:
            name = _DTYPE_NAMES.setdefault(dt, canonical(dt))
        return TensorType(self._data.shape, name, str(self._ctx))

    # -- conversions ------------------------------------------------------------------------
    def asnumpy(self) -> np.ndarray:
        return self._data.copy()

    def asscalar(self):
        if self.size != 1:
            raise ValueError(f"asscalar: the array has shape {self.shape}, not exactly one element")
        # a numpy scalar of the array's dtype (np.float32(3.5)), as MXNet returns
        return self._data.reshape(())[()]

    def item(self):
        """The one element as a Python number (numpy's item)."""
        return self.asscalar().item()

    def astype(self, dtype, copy=True):
        if not copy and self._data.dtype == np.dtype(canonical(dtype)):
            return self
        return invoke("Cast", [self], {"dtype": dtype})

    def copy(self):
        return invoke("_copy", [self], {}) if _has("_copy") else NDArray(self._data.copy(), self._ctx)

    def copyto(self, other):
        """Copy into the NDArray `other`, or onto the device `other` (a new array there). On one
        machine a copy between devices is a memory copy, after the source's pending work."""
        if isinstance(other, NDArray):
            if other.shape != self.shape:
                raise GraphcError(f"copyto: target shape {other.shape} differs from source {self.shape}")
            if other.stype != "default":
                other._data = self._data       # a sparse target re-encodes the values (sparse_arrays.py)
            elif type(other) is _gpu.GpuNDArray:
                other[:] = self._data          # uploaded, without downloading the old value
            else:
                other._data[...] = self._data
            return other
        out = NDArray(self._data.copy(), as_context(other))
        from .. import autograd
        if autograd.is_recording() and autograd.needs_grad(self):
            # as MXNet's _copyto: the copy is on the tape and its gradient is the output's
            # gradient copied back to the source's device (recorded too under create_graph)
            source = self._ctx
            autograd.record_custom([self], [out], lambda F, ins, outs, ograds: [ograds[0].copyto(source)],
                                   "_copyto")
        return out

    def as_in_context(self, ctx):
        ctx = as_context(ctx)
        return self if ctx == self._ctx else self.copyto(ctx)

    as_in_ctx = as_in_context

    def detach(self):
        if _device.MULTI and type(self) is not NDArray:
            return _pending.detach(self)
        return NDArray(self._data, self._ctx)

    def wait_to_read(self):
        """Wait until the array's pending work is done (raising its failure); see pending.py."""
        return self

    def tostype(self, stype):
        """This array in storage `stype`: itself for 'default', else a new row_sparse / csr array
        of its nonzero rows / entries (see sparse_arrays.py)."""
        if stype == "default":
            return self
        from .sparse_arrays import STYPES, from_dense
        if stype not in STYPES:
            raise GraphcError(f"tostype: storage type must be one of {STYPES}, got {stype!r}")
        return from_dense(self.asnumpy(), stype, self._ctx)

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype)

    def __len__(self):
        return self.shape[0]

    def __iter__(self):
        for i in range(self.shape[0]):
            yield self[i]

    def __bool__(self):
        if self.size == 0:
            return False        # (as MXNet: an empty array is false)
        if self.size != 1:
            raise ValueError(f"the truth value of an array with {self.size} elements is ambiguous")
        return bool(self._data.reshape(()).item())

    def __float__(self):
        return float(self.asscalar())

    def __int__(self):
        return int(self.asscalar())

    def __index__(self):
        return int(self.asscalar())

    def __repr__(self):
        # MXNet's format: numpy's str() of the values, then the shape and device
        return f"\n{self._data}\n<NDArray {'x'.join(map(str, self.shape))} @{self._ctx}>"

    def __str__(self):
        return repr(self)

    def __reduce__(self):
        """Pickle as (values, device), for multiprocessing and DataLoader workers. Like MXNet,
        the gradient and tape history stay behind, and a CPU array comes back on cpu(0)."""
        ctx = self._ctx
        place = "cpu(0)" if ctx.device_type.startswith("cpu") else str(ctx)
        return (_unpickle, (self.asnumpy(), place))

    # -- autograd ---------------------------------------------------------------------------
    def _grad_wanted(self) -> bool:
        """Asked by gradient functions (ops/declarations/matrix.py): False when the running
        backward walk discards this array's gradient, so its product need not be computed."""
        return autograd.grad_wanted(self)

    def _store_grad(self, g, req):
        """backward()'s write of gradient `g` into this .grad buffer: added ('add') or copied."""
        if _device.MULTI and (type(self) is not NDArray or type(g) is not NDArray):
            return _pending.store_grad(self, g, req)
        if req == "add":
            self._data += g._data
        else:
            self._data[...] = g._data

    def attach_grad(self, grad_req="write", stype=None):
        if grad_req not in ("write", "add", "null"):
            raise ValueError(f"attach_grad: grad_req must be 'write', 'add' or 'null', got {grad_req!r}")
        if stype not in (None, "default"):     # a sparse gradient buffer (MXNet's attach_grad(stype=))
            from .sparse import zeros as sparse_zeros
            self._grad = sparse_zeros(stype, self.shape, self._ctx, self._data.dtype)
        else:
            self._grad = NDArray(np.zeros_like(self._data), self._ctx)
        self._grad_req = grad_req
        self._entry = None

    def backward(self, out_grad=None, retain_graph=False, train_mode=True):
        autograd.backward([self], [out_grad] if out_grad is not None else None, retain_graph, train_mode)

    # -- indexing ---------------------------------------------------------------------------
    def __getitem__(self, key):
        view = self._first_axis_view(key)
        if view is not None:
            return view
        if isinstance(key, NDArray):
            return invoke("take", [self, key], {"axis": 0})
        if _advanced.is_advanced(key):
            return _advanced.advanced_getitem(self, key)
        return invoke("_basic_index", [self], {"key": encode_index(key, self.ndim)})

    def _first_axis_view(self, key):
        """MXNet 1.x: basic indexing whose result is contiguous in memory (`x[i]`, `x[a:b]`,
        `x[i, j]` on leading axes) is a view sharing x's memory, so `w[i][:] = v` and
        `x[1:3] += 1` write into x; a strided result (`x[:, 1]`, `x[::2]`) is a copy, as in
        MXNet. Recording keeps the slice operator (its gradient)."""
        if type(self) is not NDArray or _device.MULTI or autograd.is_recording() or not self.ndim:
            return None
        parts = key if isinstance(key, tuple) else (key,)
        if not parts or len(parts) > self.ndim or not all(
                isinstance(k, slice) or (isinstance(k, (int, np.integer)) and not isinstance(k, bool))
                for k in parts):
            return None
        if isinstance(key, (int, np.integer)) and self.ndim == 1:
            n = self.shape[0]
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"index {int(key)} is out of bounds for axis 0 with size {n}")
            key = slice(i, i + 1)     # a vector's element stays an array of shape (1,), as in MXNet 1.x
        try:
            view = self._data[key]
        except IndexError as e:
            raise IndexError(f"{e} (array of shape {self.shape})") from None
        if not isinstance(view, np.ndarray) or not view.ndim or not view.flags.c_contiguous:
            return None
        return NDArray(view, self._ctx)

    def __setitem__(self, key, value):
        if isinstance(key, NDArray):
            key = key._data.astype(np.int64)
        elif _advanced.is_advanced(key):
            key = _advanced.numpy_key(key)
        v = value._data if isinstance(value, NDArray) else value
        if isinstance(v, (list, tuple)) or (isinstance(v, np.ndarray) and v.ndim):
            v = _advanced.fit_value(np.asarray(v), self._data[key].shape)
        self._data[key] = v

    # -- in-place arithmetic (MXNet's `a += b` writes into a's memory: views and the kvstore's
    # stored weights see it; without these Python would rebind the name to a new array) ---------
    def _inplace(self, kind, other):
        source = self
        if autograd.is_recording() and (self._entry is not None or self._grad_req != "null"):
            if self._entry is None:
                raise ValueError(f"in-place {kind} on an array with attach_grad() while recording: its "
                                 "gradient would be lost; write `x = x + y` instead")
            # the tape keeps the old value (a copy, since it is overwritten below) and its history
            source = NDArray(self._data.copy(), self._ctx)
            source._entry = self._entry
        result = source._binary(kind, other)
        if result.shape != self.shape:
            from ..ops.errors import ShapeError
            raise ShapeError(f"in-place {kind}: the result has shape {result.shape} but the array being "
                             f"updated has shape {self.shape} (broadcasting may not grow the left operand)")
        if _device.MULTI and (type(self) is not NDArray or type(result) is not NDArray):
            _pending.assign(self, result, f"in-place {kind}")     # queued behind the result
        else:
            if not self._data.flags.writeable:
                raise ValueError(f"in-place {kind}: the array is read-only")
            self._data[...] = result._data
        self._entry = result._entry      # while recording, gradients flow through the new value
        return self

    def __iadd__(self, o): return self._inplace("add", o)
    def __isub__(self, o): return self._inplace("sub", o)
    def __imul__(self, o): return self._inplace("mul", o)
    def __itruediv__(self, o): return self._inplace("truediv", o)
    def __imod__(self, o): return self._inplace("mod", o)
    def __ipow__(self, o): return self._inplace("pow", o)

    # -- MXNet-style fluent methods ---------------------------------------------------------
    def reshape(self, *shape, **kwargs):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if "shape" in kwargs:
            shape = tuple(kwargs.pop("shape"))
        return invoke("Reshape", [self], {"shape": shape, **kwargs})

    def __getattr__(self, name):
        # x.exp(), x.sum(axis=1), x.softmax() ... : any registered operator, self as first input
        if name.startswith("_"):
            raise AttributeError(name)
        fn = getattr(_NAMESPACE, name, None)
        if fn is None:
            raise AttributeError(f"'NDArray' object has no attribute {name!r}")
        return lambda *args, **kwargs: fn(self, *args, **kwargs)


_RAW = NDArray.__dict__["_data"]      # the slot itself, under the subclasses' `_data` properties


class DescribedWithoutData:
    """Shape and dtype for NDArray subclasses whose `_data` slot holds a stand-in that knows
    them (pending.py's placeholder, gpu.py's device storage): reading them never waits for,
    nor downloads, the data. Mixed in before NDArray."""

    __slots__ = ()

    @property
    def shape(self):
        return _RAW.__get__(self).shape

    @property
    def dtype(self):
        return _RAW.__get__(self).dtype.type

    @property
    def size(self):
        return _RAW.__get__(self).size

    @property
    def ndim(self):
        return _RAW.__get__(self).ndim


def _unpickle(data, ctx):
    return NDArray(np.asarray(data), as_context(ctx))


def _has(name):
    from ..ops.registry import has_op
    return has_op(name)


def encode_index(key, ndim):
    """Turn a numpy basic-index key into a hashable, printable attribute value."""
    if not isinstance(key, tuple):
        key = (key,)
    out = []
    for k in key:
        if isinstance(k, slice):
            out.append(("s", k.start, k.stop, k.step))
        elif k is None:
            out.append(("n",))
        elif k is Ellipsis:
            out.append(("e",))
        elif isinstance(k, (numbers.Integral, np.integer)):
            out.append(("i", int(k)))
        else:
            raise IndexError(f"unsupported index {k!r}: use ints, slices, None, ... or an NDArray of indices")
    return tuple(out)


def invoke(op_name, inputs, attrs, name=None):
    """Run one operator eagerly: check types (errors name the op and shapes), run the numpy
    reference (or, for a hot matrix product or convolution, its compiled one-op program),
    record onto the tape if autograd is recording."""
    for x in inputs:
        if type(x) is not NDArray:     # (the common case, all plain arrays, skips this)
            if any(isinstance(x, Handle) for x in inputs):
                # nd.* called on symbols while tracing: build the graph instead of failing
                builder = next(x for x in inputs if isinstance(x, Handle)).builder
                return builder.invoke(op_name, inputs, attrs, name)
            inputs = [x if isinstance(x, NDArray) else array(x) for x in inputs]
            if any(getattr(x, "stype", "default") != "default" for x in inputs):
                # operators with a sparse rule (nd.take on csr rows) keep MXNet's storage type;
                # the rest fall back to the dense operator, as MXNet's storage fallback does
                from . import sparse_ops
                op, parsed = _parse(op_name, attrs)
                result = sparse_ops.dispatch(op.name, inputs, parsed)
                if result is not NotImplemented:
                    return result
                return _apply(op, parsed, inputs, name)
            break
    op, parsed = _parse(op_name, attrs)
    return _apply(op, parsed, inputs, name)


def _apply(op, parsed, inputs, name):
    """invoke() from the parsed operator on NDArray inputs."""
    if _device.MULTI and inputs:
        if type(inputs[0]) is _gpu.GpuNDArray:
            return _gpu_ops.invoke(op, parsed, inputs, name)     # a one-node GPU program
        return _pending.invoke_multi(op, parsed, inputs, name)
    in_types, out_types = _infer(op, parsed, inputs, name)
    t0 = _trace.now() if _trace.imperative else 0     # mx.profiler records eager operators
    arrays = [x._data for x in inputs]
    # hot matrix products run as compiled one-op programs (graphc/eager_kernels.py); None: numpy
    outs = _eager.run(op, in_types, out_types, arrays, parsed) if op.name in _eager.OPS else None
    if outs is None:
        outs = op.run(arrays, parsed, rng=_random.generator(), training=autograd.is_training())
    if t0:
        _trace.span(op.name, "operator", t0, _trace.now())
    ctx = inputs[0]._ctx if inputs else as_context(parsed.get("ctx") if isinstance(parsed.get("ctx"), str) else None)
    results = [NDArray(np.asarray(o), ctx) for o in outs]
    for out_index, in_index in op.mutates:
        # auxiliary state (BatchNorm's moving mean/var): the op returns its new value
        inputs[in_index]._data[...] = results[out_index]._data
    return finish_invoke(op, parsed, inputs, results)


_INFERRED: dict = {}     # (op, attrs, input shapes/dtypes/contexts) -> (in_types, out_types)
MAX_INFERRED = 4096


def _infer(op, parsed, inputs, name):
    """Input and output types of one eager application, checked (errors name the op and node).
    A training loop applies the same ops to the same shapes every step, so a signature's
    inference is remembered: a hit costs one tuple and a dict lookup instead of building a
    TensorType per input and running the op's shape rule. Only plain dense NDArrays with inputs
    (creation ops read the current context; sparse and pending arrays type themselves)."""
    key = None
    if inputs:
        sig = [op.name, parsed]
        for x in inputs:
            if type(x) is not NDArray:
                sig = None
                break
            d = x._data
            sig += (d.shape, d.dtype, x._ctx)
        if sig is not None:
            key = tuple(sig)
            try:
                hit = _INFERRED.get(key)
            except TypeError:          # an attribute value that does not hash: infer each time
                key = hit = None
            if hit is not None:
                return hit
    in_types = [x._type() for x in inputs]
    out_types = op.infer_types(in_types, parsed, f"'{name}'" if name else "")
    if key is not None:
        if len(_INFERRED) >= MAX_INFERRED:
            _INFERRED.clear()
        _INFERRED[key] = (in_types, out_types)
    return in_types, out_types


def finish_invoke(op, parsed, inputs, results):
    """Record the application onto the tape (when recording) and return the visible outputs."""
    if autograd.is_recording() and op.gradient is not None and any(autograd.needs_grad(x) for x in inputs):
        autograd.record_op(op, parsed, inputs, results)
    n = op.n_visible(parsed)
    return results[0] if n == 1 else list(results[:n])     # (MXNet returns several outputs as a list)


def array(source_array, ctx=None, dtype=None) -> NDArray:
    source = source_array     # MXNet's keyword name: nd.array(source_array=...)
    if getattr(source, "stype", "default") != "default" or getattr(source, "format", None) == "csr":
        from .sparse import array as sparse_array     # a sparse NDArray or scipy matrix stays sparse (MXNet)
        return sparse_array(source, ctx=ctx, dtype=dtype)
    if isinstance(source, NDArray):
        if type(source) is _gpu.GpuNDArray:
            return _gpu.array_of(source, ctx, dtype)      # (a device copy, no host round trip)
        data = source._data.astype(canonical(dtype) if dtype else source._data.dtype, copy=True)
        return NDArray(data, as_context(ctx) if ctx else source._ctx)
    if dtype is None:  # MXNet 1.x: float32 unless the source is an NDArray
        dtype = "float32"
    data = np.array(source, dtype=canonical(dtype), copy=True)
    return NDArray(data, as_context(ctx))


_NAMESPACE = EagerNamespace(lambda op, ins, attrs, name: invoke(op, ins, attrs, name),
                            lambda a: isinstance(a, (NDArray, Handle)), NDArray, _apply)


from . import pending as _pending  # noqa: E402  (it subclasses NDArray)
from . import advanced_index as _advanced  # noqa: E402  (it builds NDArrays)
from . import gpu as _gpu, gpu_ops as _gpu_ops  # noqa: E402  (GpuNDArray subclasses NDArray)
