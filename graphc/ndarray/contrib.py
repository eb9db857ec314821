"""nd.contrib: MXNet's contrib operators and control flow on NDArrays (graphc.contrib_functions).
boolean_mask's eager run lives here: its output length depends on the index values, so it is
no graph operator; it runs its numpy reference and records its gradient rule for autograd."""
from __future__ import annotations

from .. import autograd
from ..contrib_functions import ContribFunctions
from ..ops.declarations.contrib import boolean_mask_np
from .ndarray import NDArray, _NAMESPACE, array
from .random import uniform  # noqa: F401  (MXNet's nd.contrib.uniform is nd.random.uniform)
from .contrib_updates import *  # noqa: F401,F403  (multi_adamw_update, multi_lamb_update...)

_FUNCTIONS = ContribFunctions(_NAMESPACE)

foreach = _FUNCTIONS.foreach
while_loop = _FUNCTIONS.while_loop
cond = _FUNCTIONS.cond
isnan = _FUNCTIONS.isnan
isinf = _FUNCTIONS.isinf
isfinite = _FUNCTIONS.isfinite
boolean_mask = _FUNCTIONS.boolean_mask


def eager_boolean_mask(data, index, axis=0):
    """The rows of data whose index value is nonzero; differentiable with respect to data."""
    data, index = (x if isinstance(x, NDArray) else array(x) for x in (data, index))
    result = NDArray(boolean_mask_np(data.asnumpy(), index.asnumpy(), int(axis)), data.context)
    if autograd.is_recording() and autograd.needs_grad(data):
        def backward(F, ins, outs, ograds):
            return [F._boolean_mask_grad(ograds[0], ins[1], ins[0]), None]
        autograd.record_custom([data, index], [result], backward, "boolean_mask")
    return result


def __getattr__(name):
    return getattr(_FUNCTIONS, name)


def __dir__():
    return sorted(set(dir(_FUNCTIONS)))
