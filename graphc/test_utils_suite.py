"""The rest of mxnet.test_utils that MXNet 1.x's own unit tests import by name: sparse random
arrays, cross-context consistency runs, optimizer comparisons, stderr silencing, environment
getters/setters and small array helpers. graphc.test_utils re-exports everything here, so
`from mxnet.test_utils import *` in a user's or MXNet's test file finds the same names (MXNet's
module also hands out `mx`, `np`, `npt` and `rnd` through that star import; tests rely on it).

Kept apart from test_utils.py so that module stays about comparisons and gradient checks. Like
test_utils, this is for tests and must never be imported by the library itself."""
from __future__ import annotations

import contextlib
import functools
import os
import random as _pyrandom
import sys

import numpy as np
import numpy.random as rnd
import numpy.testing as npt

from .ndarray import NDArray, array
from .ops.errors import GraphcError

_SPARSE = ("row_sparse", "csr")


# -- random data ----------------------------------------------------------------------------------

def random_sample(population, k):
    """k distinct items of `population`, in random order (MXNet's signature)."""
    return _pyrandom.sample(list(population), k)


def _dense_with_density(shape, density, dtype, distribution, rows_only):
    """A dense numpy array whose nonzeros cover about `density` of the elements (of the rows for
    row_sparse, whose zero pattern is per row)."""
    density = np.random.rand() if density is None else density
    values = (np.random.uniform(-1, 1, size=shape) if distribution in (None, "uniform")
              else np.random.normal(size=shape))
    values = np.where(values == 0, 0.5, values).astype(dtype)
    if rows_only:
        keep = np.random.rand(shape[0]) < density
        values[~keep] = 0
    else:
        values[np.random.rand(*shape) >= density] = 0
    return values


def rand_sparse_ndarray(shape, stype, density=None, dtype=None, distribution=None,
                        data_init=None, rsp_indices=None, modifier_func=None,
                        shuffle_csr_indices=False, ctx=None):
    """A random sparse NDArray and its parts: (arr, (data, indices)) for row_sparse and
    (arr, (data, indices, indptr)) for csr, the parts as numpy arrays."""
    from .ndarray.sparse_arrays import from_dense
    from .device import current_context
    if stype not in _SPARSE:
        raise GraphcError(f"rand_sparse_ndarray: storage type must be one of {_SPARSE}, got {stype!r}")
    if stype == "csr" and len(shape) != 2:
        raise GraphcError(f"rand_sparse_ndarray: csr arrays are 2-D, got shape {tuple(shape)}")
    dtype = np.dtype(dtype or np.float32)
    dense = _dense_with_density(tuple(shape), density, dtype, distribution, stype == "row_sparse")
    if rsp_indices is not None and stype == "row_sparse":
        keep = np.zeros(shape[0], bool)
        keep[np.asarray(rsp_indices, dtype=np.int64)] = True
        dense[~keep] = 0
        dense[keep] = np.where(dense[keep] == 0, 1, dense[keep])
    if data_init is not None:
        dense[dense != 0] = data_init
    if modifier_func is not None:
        dense = np.where(dense != 0, np.vectorize(modifier_func)(dense), 0).astype(dtype)
    arr = from_dense(dense, stype, ctx or current_context())
    parts = (arr.data.asnumpy(), arr.indices.asnumpy())
    if stype == "csr":
        parts = parts + (arr.indptr.asnumpy(),)
    return arr, parts


def rand_ndarray_any(shape, stype="default", density=None, dtype=None, modifier_func=None,
                     shuffle_csr_indices=False, distribution=None, ctx=None):
    """rand_ndarray for every storage type: dense arrays are standard normal, sparse ones come from
    rand_sparse_ndarray."""
    if stype == "default":
        from .test_utils import random_arrays, default_context
        return array(random_arrays(tuple(shape)), ctx=ctx or default_context(), dtype=dtype)
    return rand_sparse_ndarray(shape, stype, density=density, dtype=dtype,
                               modifier_func=modifier_func, distribution=distribution, ctx=ctx)[0]


def rand_coord_2d(x_low, x_high, y_low, y_high):
    return np.random.randint(x_low, x_high), np.random.randint(y_low, y_high)


def create_vector(size, dtype=np.int64):
    """[0, 1, ..., size-1] as an NDArray (MXNet's large-tensor tests use it)."""
    return array(np.arange(size, dtype=dtype), dtype=dtype)


def create_2d_tensor(rows, columns, dtype=np.int64):
    """Row i filled with i: a rows x columns NDArray."""
    return array(np.repeat(np.arange(rows, dtype=dtype)[:, None], columns, axis=1), dtype=dtype)


def assign_each(the_input, function):
    """Elementwise `function` over a numpy array, as a float32-or-input-dtype numpy array."""
    return np.vectorize(function)(the_input).astype(np.asarray(the_input).dtype) \
        if function is not None else np.asarray(the_input)


def assign_each2(input1, input2, function):
    return np.vectorize(function)(input1, input2).astype(np.asarray(input1).dtype) \
        if function is not None else np.asarray(input1)


def collapse_sum_like(a, shape):
    """Sum `a` over the axes along which `shape` was broadcast to a.shape."""
    a = np.asarray(a)
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a


def effective_dtype(dat):
    """The dtype a computation on `dat` really runs in (graphc computes in the array's dtype)."""
    return np.dtype(getattr(dat, "dtype", np.float32))


# -- comparisons ----------------------------------------------------------------------------------

def same_array(array1, array2):
    """Whether two NDArrays share storage: a write through one must show through the other."""
    array1[:] += 1
    try:
        if not np.array_equal(array1.asnumpy(), array2.asnumpy()):
            return False
    finally:
        array1[:] -= 1
    return np.array_equal(array1.asnumpy(), array2.asnumpy())


def compare_ndarray_tuple(t1, t2, rtol=None, atol=None):
    """Compare two (possibly nested) tuples of NDArrays element by element; None matches None."""
    from .test_utils import assert_almost_equal
    if t1 is None or t2 is None:
        return
    if isinstance(t1, tuple):
        for s1, s2 in zip(t1, t2):
            compare_ndarray_tuple(s1, s2, rtol, atol)
    else:
        assert_almost_equal(t1, t2, rtol=rtol, atol=atol)


def assert_almost_equal_with_err(a, b, rtol=None, atol=None, etol=None, names=("a", "b"),
                                 equal_nan=False, mismatches=(10, 10)):
    """assert_almost_equal that lets a fraction `etol` of the elements be out of tolerance."""
    from .test_utils import get_tols, get_etol, assert_almost_equal, _np
    etol = get_etol(etol)
    if etol <= 0:
        return assert_almost_equal(a, b, rtol, atol, names, equal_nan, mismatches=mismatches)
    rtol, atol = get_tols(a, b, rtol, atol)
    a, b = np.broadcast_arrays(_np(a), _np(b))
    close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    bad = 1.0 - np.count_nonzero(close) / max(close.size, 1)
    if bad > etol:
        raise AssertionError(f"{100 * bad:.3f}% of the elements of {names[0]} and {names[1]} differ "
                             f"beyond rtol={rtol:e}, atol={atol:e}; at most {100 * etol:.3f}% may")


def same_symbol_structure(sym1, sym2):
    """Whether two symbols have the same graph: the same operators, wired the same way."""
    import json
    n1, n2 = json.loads(sym1.tojson())["nodes"], json.loads(sym2.tojson())["nodes"]
    if len(n1) != len(n2):
        return False
    return all(a["op"] == b["op"] and [i[0] for i in a["inputs"]] == [i[0] for i in b["inputs"]]
               for a, b in zip(n1, n2))


# -- running symbols on several contexts ----------------------------------------------------------

def _bind_inputs(sym, spec, arg_params, aux_params, scale, dtype_of):
    shapes = {k: v for k, v in spec.items() if k not in ("ctx", "type_dict", "group2ctx")}
    arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    if arg_shapes is None:
        raise GraphcError(f"check_consistency: cannot infer the shapes of {sym.list_arguments()} "
                          f"from {shapes}")
    for name, shape in zip(sym.list_arguments(), arg_shapes):
        if name not in arg_params:
            arg_params[name] = np.random.normal(size=shape, scale=scale)
    for name, shape in zip(sym.list_auxiliary_states(), aux_shapes):
        if name not in aux_params:
            aux_params[name] = np.zeros(shape)
    args = {k: array(v, ctx=spec["ctx"], dtype=dtype_of(k)) for k, v in arg_params.items()
            if k in sym.list_arguments()}
    aux = {k: array(v, ctx=spec["ctx"], dtype=dtype_of(k)) for k, v in aux_params.items()
           if k in sym.list_auxiliary_states()}
    return args, aux


def check_consistency(sym, ctx_list, scale=1.0, grad_req="write", arg_params=None,
                      aux_params=None, tol=None, raise_on_err=True, ground_truth=None,
                      equal_nan=False, use_uniform=False, rand_type=np.float64):
    """Run `sym` (or one symbol per entry) under every context/dtype spec of ctx_list on the
    same random inputs and assert all outputs (and input gradients, unless grad_req is 'null')
    agree with the most precise run, at the tolerance of the less precise dtype. Returns the
    per-spec outputs as numpy arrays, as MXNet does."""
    from .test_utils import assert_almost_equal
    tol = tol or {np.dtype(np.float16): 1e-1, np.dtype(np.float32): 1e-3,
                  np.dtype(np.float64): 1e-5, np.dtype(np.uint8): 0, np.dtype(np.int32): 0,
                  np.dtype(np.int64): 0}
    if not isinstance(tol, dict):
        tol = {np.dtype(t): tol for t in (np.float16, np.float32, np.float64, np.uint8,
                                          np.int32, np.int64)}
    syms = sym if isinstance(sym, (list, tuple)) else [sym] * len(ctx_list)
    arg_params = dict(arg_params or {})
    aux_params = dict(aux_params or {})
    runs = []
    for s, spec in zip(syms, ctx_list):
        types = {k: np.dtype(v) for k, v in (spec.get("type_dict") or {}).items()}
        dtype_of = lambda k, types=types: types.get(k, np.dtype(np.float32))
        args, aux = _bind_inputs(s, spec, arg_params, aux_params, scale, dtype_of)
        req = grad_req if isinstance(grad_req, dict) else {k: grad_req for k in args}
        grads = {k: array(np.zeros(v.shape), ctx=spec["ctx"], dtype=v.dtype)
                 for k, v in args.items() if req.get(k, "null") != "null"}
        exe = s.bind(spec["ctx"], args=args, args_grad=grads or None, grad_req=req,
                     aux_states=aux)
        exe.forward(is_train=bool(grads))
        outs = [o.asnumpy() for o in exe.outputs]
        if grads:
            exe.backward([array(np.ones(o.shape), ctx=spec["ctx"], dtype=o.dtype) for o in outs])
        runs.append((max(types.values(), default=np.dtype(np.float32),
                         key=lambda d: d.itemsize), outs,
                     {k: g.asnumpy() for k, g in grads.items()}))
    best = max(range(len(runs)), key=lambda i: runs[i][0].itemsize)
    if ground_truth is None:
        _, ref_outs, ref_grads = runs[best]
    else:
        ref_outs, ref_grads = ground_truth, {}
    for i, (dtype, outs, grads) in enumerate(runs):
        t = tol.get(dtype, 1e-3)
        try:
            for j, (o, r) in enumerate(zip(outs, ref_outs)):
                assert_almost_equal(o, r, rtol=t, atol=t, equal_nan=equal_nan,
                                    names=(f"ctx_list[{i}] output {j}", "reference"))
            for k, g in grads.items():
                if k in ref_grads:
                    assert_almost_equal(g, ref_grads[k], rtol=t, atol=t, equal_nan=equal_nan,
                                        names=(f"ctx_list[{i}] grad of {k}", "reference"))
        except AssertionError:
            if raise_on_err:
                raise
    return [outs for _, outs, _ in runs]


def check_speed(sym, location=None, ctx=None, N=20, grad_req=None, typ="whole", **kwargs):
    """Seconds per run of `sym` (forward, or forward+backward for typ='whole'), averaged over N."""
    import time
    from .test_utils import default_context
    ctx = ctx or default_context()
    grad_req = grad_req or ("write" if typ == "whole" else "null")
    if location is None:
        exe = sym.simple_bind(ctx=ctx, grad_req=grad_req, **kwargs)
    else:
        exe = sym.simple_bind(ctx=ctx, grad_req=grad_req,
                              **{k: v.shape for k, v in location.items()})
        for k, v in location.items():
            exe.arg_dict[k][:] = v
    start = time.time()
    for _ in range(N):
        exe.forward(is_train=typ == "whole")
        if typ == "whole":
            exe.backward([array(np.ones(o.shape), ctx=ctx) for o in exe.outputs])
        for o in exe.outputs:
            o.wait_to_read()
    return (time.time() - start) / N


# -- optimizers -----------------------------------------------------------------------------------

def compare_optimizer(opt1, opt2, shape, dtype, w_stype="default", g_stype="default",
                      rtol=1e-4, atol=1e-5, compare_states=True, ntensors=1):
    """Apply one update of opt1 and of opt2 to copies of the same random weight(s) and
    gradient(s) and assert the new weights (and, with compare_states, the states) agree."""
    from .test_utils import assert_almost_equal
    shapes = shape if ntensors > 1 else [shape]
    # as MXNet's: opt2 gets the weight in w_stype (a sparse one stores every row) and the gradient in
    # g_stype; opt1 gets their dense copies (the reference optimizers of MXNet's tests are dense)
    w2 = [rand_ndarray_any(s, w_stype, density=1 if w_stype != "default" else None, dtype=dtype) for s in shapes]
    g2 = [rand_ndarray_any(s, g_stype, dtype=dtype) for s in shapes]
    w1 = [w.copy().tostype("default") for w in w2]
    g1 = [g.copy().tostype("default") for g in g2]
    idx = list(range(ntensors)) if ntensors > 1 else 0
    pick = (lambda xs: xs) if ntensors > 1 else (lambda xs: xs[0])
    state1 = (opt1.create_state_multi_precision(idx, pick(w1)) if ntensors == 1
              else [opt1.create_state_multi_precision(i, w) for i, w in zip(idx, w1)])
    state2 = (opt2.create_state_multi_precision(idx, pick(w2)) if ntensors == 1
              else [opt2.create_state_multi_precision(i, w) for i, w in zip(idx, w2)])
    if compare_states:
        compare_ndarray_tuple(state1, state2)
    opt1.update_multi_precision(idx, pick(w1), pick(g1), state1)
    opt2.update_multi_precision(idx, pick(w2), pick(g2), state2)
    if compare_states:
        compare_ndarray_tuple(state1, state2, rtol=rtol, atol=atol)
    for a, b in zip(w1, w2):
        assert_almost_equal(a.asnumpy(), b.asnumpy(), rtol=rtol, atol=atol)


# -- iterators ------------------------------------------------------------------------------------

class DummyIter:
    """Yields the first batch of `real_iter` forever: benchmarks without the data pipeline."""

    def __init__(self, real_iter):
        self.real_iter = real_iter
        self.provide_data = real_iter.provide_data
        self.provide_label = real_iter.provide_label
        self.batch_size = real_iter.batch_size
        self.the_batch = next(iter(real_iter))

    def __iter__(self):
        return self

    def __next__(self):
        return self.the_batch

    next = __next__


# -- process environment --------------------------------------------------------------------------

@contextlib.contextmanager
def discard_stderr():
    """Silence file descriptor 2 (C-level writes included) for the `with` body."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def getenv(name):
    return os.environ.get(name)


def setenv(name, value):
    """Set (or, with None, unset) an environment variable."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = str(value)


def set_env_var(key, val, default_val=""):
    """Set `key` to `val` and return its previous value (default_val when it was unset): the
    older MXNet spelling of setenv that returns what to restore."""
    prev = os.environ.get(key, default_val)
    os.environ[key] = val
    return prev


def retry(n):
    """Run a flaky test up to n times; only the last AssertionError propagates."""
    if n <= 0:
        raise ValueError(f"retry: the number of tries must be positive, got {n}")

    def decorate(test):
        @functools.wraps(test)
        def wrapper(*args, **kwargs):
            for i in range(n):
                try:
                    return test(*args, **kwargs)
                except AssertionError:
                    if i == n - 1:
                        raise
        return wrapper
    return decorate


def is_op_runnable():
    """Every graphc operator runs on the CPU backend."""
    return True


def is_cd_run():
    return os.environ.get("CD_JOB", "0") == "1"


def is_aarch64_run():
    import platform
    return platform.machine() == "aarch64"
