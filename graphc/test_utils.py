"""mxnet.test_utils for graphc: the helpers MXNet's own operator tests and users' test suites call
(tolerant comparisons, random arrays and shapes, symbolic forward/backward and finite-difference
gradient checks, environment scoping), with MXNet's signatures and default tolerances.

MXNet binds a symbol into an executor; graphc has none, so a symbol runs here as a SymbolBlock
whose inputs are all of the symbol's arguments, and gradients come from autograd. This module is
for tests: it must never be imported by the library itself."""
from __future__ import annotations

import contextlib
import numbers
import os

import numpy as np

from . import autograd
from .device import Context, current_context
from .ndarray import NDArray, array
from .ops.errors import GraphcError

# -- contexts and dtypes --------------------------------------------------------------------------

def default_context():
    """The device tests run on: the current default context."""
    return current_context()


def set_default_context(ctx):
    Context.default_ctx = ctx


def default_dtype():
    return np.float32


_RTOL = {np.float16: 1e-2, np.float32: 1e-4, np.float64: 1e-5}
_ATOL = {np.float16: 1e-1, np.float32: 1e-3, np.float64: 1e-20}
_EPS = {np.float16: 1.0 / 2 ** 6, np.float32: 1.0 / 2 ** 9, np.float64: 1.0 / 2 ** 14}


def _by_dtype(table):
    """MXNet's per-dtype tolerance tables; integer and bool types compare exactly."""
    out = {np.dtype(k): v for k, v in table.items()}
    for t in (np.bool_, np.int8, np.uint8, np.int32, np.uint32, np.int64, np.uint64):
        out[np.dtype(t)] = 0
    return out


def default_rtols():
    return _by_dtype(_RTOL)


def default_atols():
    return _by_dtype(_ATOL)


def default_numeric_eps():
    return {np.dtype(k): v for k, v in _EPS.items()}


def get_tolerance(dat, tol, default_tol):
    """`tol` itself when a number, else its (or the default table's) entry for dat's dtype."""
    if isinstance(tol, numbers.Number):
        return tol
    dtype = np.dtype(getattr(dat, "dtype", np.float64))
    return (tol or {}).get(dtype, default_tol.get(dtype, 0))


def get_tols(x, y, rtol, atol):
    """The looser of the two operands' tolerances (a float16 side sets the bar)."""
    x, y = (np.asarray(v) if isinstance(v, numbers.Number) else v for v in (x, y))
    return (max(get_tolerance(x, rtol, default_rtols()), get_tolerance(y, rtol, default_rtols())),
            max(get_tolerance(x, atol, default_atols()), get_tolerance(y, atol, default_atols())))


def get_atol(atol=None, dtype=np.dtype(np.float64)):
    return default_atols()[np.dtype(dtype)] if atol is None else atol


def get_rtol(rtol=None, dtype=np.dtype(np.float64)):
    return default_rtols()[np.dtype(dtype)] if rtol is None else rtol


def get_etol(etol=None):
    return 0 if etol is None else etol


# -- comparisons ----------------------------------------------------------------------------------

def _np(x):
    return x.asnumpy() if isinstance(x, NDArray) else np.asarray(x)


def same(a, b):
    """Exact equality of values and shapes."""
    return np.array_equal(_np(a), _np(b))


def _check_shapes(a, b):
    if a.shape != b.shape:
        raise AssertionError(f"a.shape = {a.shape} and b.shape = {b.shape} are not equal")


def almost_equal(a, b, rtol=None, atol=None, equal_nan=False, use_broadcast=True):
    a, b = _np(a), _np(b)
    if not use_broadcast:
        _check_shapes(a, b)
    return np.allclose(a, b, rtol=get_rtol(rtol), atol=get_atol(atol), equal_nan=equal_nan)


def _violations(a, b, rtol, atol):
    """Per element: |a-b| over the allowed tolerance (> 1 fails); equal infinities count as 0."""
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(np.equal(a, b), 0, np.abs(a.astype(np.float64) - b.astype(np.float64)))
        return diff / (atol + rtol * np.abs(b.astype(np.float64)) + 1e-20)


def assert_almost_equal(a, b, rtol=None, atol=None, names=("a", "b"), equal_nan=False,
                        use_broadcast=True, mismatches=(10, 10)):
    """Raise AssertionError naming the worst element when a and b differ beyond the tolerances
    (defaults by dtype, as MXNet's)."""
    if not use_broadcast:
        _check_shapes(_np(a), _np(b))
    rtol, atol = get_tols(a, b, rtol, atol)
    a, b = _np(a), _np(b)
    if a.dtype == np.bool_ and b.dtype == np.bool_:
        np.testing.assert_equal(a, b)
        return
    if np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan):
        return
    a, b = np.broadcast_arrays(a, b)
    v = _violations(a, b, rtol, atol)
    if equal_nan:
        v = np.where(np.isnan(a) & np.isnan(b), 0, v)
    v = np.where(np.isnan(v), np.inf, v)
    bad = int(np.count_nonzero(v > 1))
    if a.ndim == 0:
        raise AssertionError(f"Error {float(v):f} exceeds tolerance rtol={rtol:e}, atol={atol:e}: "
                             f"{names[0]}={a}, {names[1]}={b}")
    order = np.argsort(-v, axis=None)[:max(1, mismatches[0])]
    worst = [np.unravel_index(i, v.shape) for i in order if v.flat[i] > 1]
    lines = [f"  {tuple(int(j) for j in idx)}: {names[0]}={a[idx]!r}, {names[1]}={b[idx]!r}, "
             f"error {v[idx]:f}" for idx in worst]
    raise AssertionError(
        f"Error {float(v.max()):f} exceeds tolerance rtol={rtol:e}, atol={atol:e} (mismatch "
        f"{100.0 * bad / max(a.size, 1):f}%, {bad} of {a.size} elements). Worst locations:\n"
        + "\n".join(lines))


def assert_allclose(a, b, rtol=1e-07, atol=0, equal_nan=True):
    assert_almost_equal(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


def assert_almost_equal_ignore_nan(a, b, rtol=None, atol=None, names=("a", "b")):
    """Compare where neither side is NaN (NaN positions are zeroed on both sides)."""
    a, b = np.copy(_np(a)), np.copy(_np(b))
    nan = np.isnan(a) | np.isnan(b)
    a[nan] = 0
    b[nan] = 0
    assert_almost_equal(a, b, rtol, atol, names)


def assert_exception(f, exception_type, *args, **kwargs):
    """Assert that f(*args, **kwargs) raises exception_type."""
    try:
        f(*args, **kwargs)
    except exception_type:
        return
    raise AssertionError(f"{getattr(f, '__name__', f)} did not raise {exception_type.__name__}")


# -- random data ----------------------------------------------------------------------------------

def random_arrays(*shapes):
    """Standard-normal numpy arrays of default_dtype, one per shape (one array for one shape)."""
    arrays = [np.random.randn(*s).astype(default_dtype()) if len(s)
              else np.array(np.random.randn(), dtype=default_dtype()) for s in shapes]
    return arrays[0] if len(arrays) == 1 else arrays


def random_uniform_arrays(*shapes, low=0.0, high=1.0, dtype=None):
    dtype = dtype or default_dtype()
    arrays = [np.random.uniform(low, high, size=s).astype(dtype) for s in shapes]
    return arrays[0] if len(arrays) == 1 else arrays


def rand_ndarray(shape, stype="default", density=None, dtype=None, modifier_func=None,
                 shuffle_csr_indices=False, distribution=None, ctx=None):
    """A random NDArray of `shape`: standard normal when dense; for 'row_sparse' and 'csr', the
    sparse array of rand_sparse_ndarray (about `density` of it nonzero)."""
    from .test_utils_suite import rand_ndarray_any
    return rand_ndarray_any(shape, stype, density, dtype, modifier_func, shuffle_csr_indices,
                            distribution, ctx)


def rand_shape_2d(dim0=10, dim1=10, allow_zero_size=False):
    low = 0 if allow_zero_size else 1
    return np.random.randint(low, dim0 + 1), np.random.randint(low, dim1 + 1)


def rand_shape_3d(dim0=10, dim1=10, dim2=10, allow_zero_size=False):
    low = 0 if allow_zero_size else 1
    return (np.random.randint(low, dim0 + 1), np.random.randint(low, dim1 + 1),
            np.random.randint(low, dim2 + 1))


def rand_shape_nd(num_dim, dim=10, allow_zero_size=False):
    low = 0 if allow_zero_size else 1
    return tuple(np.random.randint(low, dim + 1, size=num_dim))


def np_reduce(dat, axis, keepdims, numpy_reduce_func):
    """Reduce `dat` over `axis` (None, an int or a tuple) one axis at a time, as MXNet's helper."""
    if axis is None:
        axis = tuple(range(dat.ndim))
    elif isinstance(axis, int):
        axis = (axis,)
    ret = dat
    for ax in sorted((a % dat.ndim for a in axis), reverse=True):
        ret = numpy_reduce_func(ret, axis=ax)
    if keepdims:
        shape = list(dat.shape)
        for ax in axis:
            shape[ax % dat.ndim] = 1
        ret = ret.reshape(tuple(shape))
    return ret


def list_gpus():
    from .device import num_gpus
    return list(range(num_gpus()))


# -- running symbols ------------------------------------------------------------------------------

def _location_dict(sym, location, names, what):
    """`location` (a list in `names` order, or a dict by name) as a dict of numpy arrays."""
    if location is None:
        return {}
    if isinstance(location, dict):
        missing = set(names) - set(location)
        if missing:
            raise ValueError(f"{what}: no value for symbol input(s) {sorted(missing)}; "
                             f"the symbol takes {names}")
        return {k: _np(location[k]) for k in names}
    if len(location) != len(names):
        raise ValueError(f"{what}: {len(location)} values for the {len(names)} inputs {names}")
    return {k: _np(v) for k, v in zip(names, location)}


def _as_dtype(values, dtype):
    return {k: v if dtype == "asnumpy" else v.astype(dtype) for k, v in values.items()}


def _block_for(sym, names):
    """A SymbolBlock running `sym` with `names` as its inputs, in that order. Reusing one block
    for many evaluations (finite differences) reuses its compiled program."""
    from .gluon.symbol_block import SymbolBlock
    from . import symbol as _sym
    return SymbolBlock(sym, [_sym.var(n) for n in names])


def _run(sym, values, ctx, is_train, grad_names=(), out_grads=None, grad_req="write", block=None):
    """Evaluate `sym` (or its prebuilt `block`, made by _block_for with these names in this
    order) on `values` (name -> numpy); with grad_names, backpropagate out_grads (ones by
    default) and also return {name: gradient}."""
    names = list(values)
    block = block if block is not None else _block_for(sym, names)
    inputs = [array(values[n], ctx=ctx, dtype=values[n].dtype) for n in names]
    for n, x in zip(names, inputs):
        if n in grad_names:
            x.attach_grad(grad_req)
    with autograd.record(train_mode=is_train) if grad_names else _training_scope(is_train):
        outs = block(*inputs)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    if not grad_names:
        return outs, {}
    if out_grads is None:
        out_grads = [np.ones(o.shape, o._data.dtype) for o in outs]
    autograd.backward(outs, [array(g, ctx=ctx, dtype=o._data.dtype) for g, o in zip(out_grads, outs)])
    return outs, {n: x.grad for n, x in zip(names, inputs) if n in grad_names}


def _training_scope(is_train):
    return autograd.train_mode() if is_train else autograd.predict_mode()


def simple_forward(sym, ctx=None, is_train=False, **inputs):
    """Outputs of `sym` (numpy; one array for one output) for named numpy inputs."""
    values = {k: _np(v) for k, v in inputs.items()}
    outs, _ = _run(sym, values, ctx or default_context(), is_train)
    outs = [o.asnumpy() for o in outs]
    return outs[0] if len(outs) == 1 else outs


def _inputs(sym, location, aux_states, dtype, what):
    args = _location_dict(sym, location, sym.list_arguments(), what)
    aux = _location_dict(sym, aux_states, sym.list_auxiliary_states(), what) if aux_states is not None else {}
    return _as_dtype(args, dtype), _as_dtype(aux, dtype)


def check_symbolic_forward(sym, location, expected, rtol=None, atol=None, aux_states=None,
                           ctx=None, equal_nan=False, dtype=default_dtype()):
    """Assert that sym's outputs on `location` match `expected` (a list, or a dict by output name);
    returns the outputs as numpy arrays."""
    args, aux = _inputs(sym, location, aux_states, dtype, "check_symbolic_forward")
    outs, _ = _run(sym, {**args, **aux}, ctx or default_context(), is_train=False)
    if isinstance(expected, dict):
        expected = [expected[k] for k in sym.list_outputs()]
    if len(expected) != len(outs):
        raise AssertionError(f"check_symbolic_forward: {len(expected)} expected arrays for "
                             f"{len(outs)} outputs {sym.list_outputs()}")
    for name, want, got in zip(sym.list_outputs(), expected, outs):
        assert_almost_equal(want, got, rtol, atol, ("EXPECTED_%s" % name, "FORWARD_%s" % name),
                            equal_nan=equal_nan)
    return [o.asnumpy() for o in outs]


def check_symbolic_backward(sym, location, out_grads, expected, rtol=None, atol=None,
                            aux_states=None, grad_req="write", ctx=None, grad_stypes=None,
                            equal_nan=False, dtype=default_dtype()):
    """Assert that the gradients of sym's arguments, given head gradients `out_grads`, match
    `expected` (a list in argument order, or a dict by name); returns them as numpy arrays.
    grad_req 'add' checks gradient minus the random initial buffer, 'null' that it is untouched."""
    args, aux = _inputs(sym, location, aux_states, dtype, "check_symbolic_backward")
    names = list(args)
    if isinstance(expected, (list, tuple)):
        expected = dict(zip(names, expected))
    reqs = grad_req if isinstance(grad_req, dict) else {n: grad_req for n in names}
    if isinstance(grad_req, (list, tuple)):
        reqs = dict(zip(names, grad_req))
    if isinstance(out_grads, dict):
        out_grads = [out_grads[k] for k in sym.list_outputs()]
    out_grads = None if out_grads is None else [_np(g) for g in out_grads]
    wanted = {n for n in names if reqs.get(n, "null") != "null"}
    _, grads = _run(sym, {**args, **aux}, ctx or default_context(), is_train=True,
                    grad_names=wanted, out_grads=out_grads)
    result = {n: grads[n].asnumpy() for n in names if n in grads}
    for n in names:
        if n in expected and n in result:
            assert_almost_equal(expected[n], result[n], rtol, atol, ("EXPECTED_%s" % n, "BACKWARD_%s" % n),
                                equal_nan=equal_nan)
    return result


def numeric_grad(sym, location, aux_states=None, eps=1e-4, use_forward_train=True, dtype=default_dtype()):
    """Central finite differences of sum(sym's outputs) with respect to each argument in `location`
    (a dict name -> numpy array), computed in float64 around the given point."""
    ctx = default_context()
    base = {k: np.asarray(v, dtype=np.float64) for k, v in location.items()}
    aux = dict(aux_states or {})
    block = _block_for(sym, list(base) + list(aux))     # one compiled program for every evaluation

    def total(values):
        outs, _ = _run(sym, {**{k: v.astype(dtype) for k, v in values.items()}, **aux}, ctx,
                       use_forward_train, block=block)
        return sum(float(o.asnumpy().astype(np.float64).sum()) for o in outs)

    grads = {}
    for name, value in base.items():
        g = np.zeros_like(value)
        for i in range(value.size):
            old = value.flat[i]
            value.flat[i] = old + eps / 2.0
            up = total(base)
            value.flat[i] = old - eps / 2.0
            down = total(base)
            value.flat[i] = old
            g.flat[i] = (up - down) / eps
        grads[name] = g
    return grads


def check_numeric_gradient(sym, location, aux_states=None, numeric_eps=None, rtol=None,
                           atol=None, grad_nodes=None, use_forward_train=True, ctx=None,
                           grad_stype_dict=None, dtype=default_dtype()):
    """Compare autograd's gradients of sym with finite differences. As MXNet does, the outputs
    are first multiplied by a random projection so that every output element matters."""
    from . import symbol as _sym
    args, aux = _inputs(sym, location, aux_states, dtype, "check_numeric_gradient")
    if grad_nodes is None:
        grad_nodes = list(args)
    elif isinstance(grad_nodes, dict):
        grad_nodes = [k for k, v in grad_nodes.items() if v != "null"]
    unknown = set(grad_nodes) - set(args)
    if unknown:
        raise ValueError(f"check_numeric_gradient: grad_nodes {sorted(unknown)} are not arguments "
                         f"of the symbol {list(args)}")
    outs, _ = _run(sym, {**args, **aux}, ctx or default_context(), is_train=use_forward_train)
    if len(outs) != 1:
        raise ValueError(f"check_numeric_gradient: the symbol has {len(outs)} outputs; group one")
    proj_name = "__random_proj"
    projected = sym * _sym.var(proj_name)
    # as MXNet's random_projection: positive weights in [0.1, 1.1), none so small that the
    # finite differences of its output lose their precision (MXNet's tolerances assume these)
    proj = (np.random.rand(*outs[0].shape) + 0.1).astype(dtype)
    eps = get_tolerance(np.zeros((), dtype), numeric_eps, default_numeric_eps())
    point = {**args, proj_name: proj}
    _, grads = _run(projected, {**point, **aux}, ctx or default_context(), use_forward_train,
                    grad_names=set(grad_nodes))
    numeric = numeric_grad(projected, {k: point[k] for k in (*args, proj_name)}, aux, eps,
                           use_forward_train, dtype)
    for name in grad_nodes:
        assert_almost_equal(numeric[name], grads[name].asnumpy(), rtol, atol,
                            ("NUMERICAL_%s" % name, "BACKWARD_%s" % name))


# -- environment ----------------------------------------------------------------------------------

@contextlib.contextmanager
def environment(*args):
    """Set environment variables for the `with` body, then restore them (None unsets):
    environment('NAME', 'value') or environment({'A': '1', 'B': None})."""
    if len(args) == 1 and isinstance(args[0], dict):
        wanted = dict(args[0])
    elif len(args) == 2:
        wanted = {args[0]: args[1]}
    else:
        raise TypeError("environment: pass (name, value) or one dict of name -> value")
    saved = {k: os.environ.get(k) for k in wanted}

    def apply(settings):
        for k, v in settings.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    apply(wanted)
    try:
        yield
    finally:
        from .ndarray import waitall
        waitall()
        apply(saved)


# -- the rest of MXNet's test_utils, and the modules its star import hands out ----------------------

from .test_utils_suite import *  # noqa: E402,F401,F403  (MXNet's tests import these from here)
from .test_utils_suite import rnd, npt  # noqa: E402,F401
from .test_utils_stats import *  # noqa: E402,F401,F403  (chi-square checks of random generators)
from .symbol import Symbol  # noqa: E402,F401
import graphc as mx  # noqa: E402,F401  (`from mxnet.test_utils import *` gives tests `mx`)
