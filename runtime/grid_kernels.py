"""GridGenerator and its gradient as kernels (the references are in ops/declarations/spatial.py).

Their results depend on the output position (the target grid's normalised coordinates), which
a declared elementwise formula cannot name, so they lower here: positions enter as `LoopVar`
arguments. Like the references, the arithmetic is float64 and rounds once to the output dtype,
except the warp gradient, which the reference computes in the gradient's own dtype.

- affine: out[n, r, i, j] = t[n, r, 0] x_j + t[n, r, 1] y_i + t[n, r, 2], where x_j, y_i are
  numpy's linspace(-1, 1) points (start + k step, the last one exactly 1).
- warp: out[n, 0] = (flow[n, 0] + j) / ((w - 1) / 2) - 1, out[n, 1] likewise with i and h.
- their gradients: affine sums g * (x_j, y_i, 1) over the grid per (n, r); warp divides g by the
  same half-extents.
"""
from __future__ import annotations

from graphc.ops import scalar as S

from .kernel_ir import AccRef, Accumulate, Buf, DeclareAcc, Index, Kernel, Load, Loop, LoopVar, Store
from .lower import PARALLEL_WORK, KernelStep

F64 = "float64"
LOWERED = frozenset({"GridGenerator", "_grid_generator_grad"})


def _linspace(var_arg, n):
    """numpy.linspace(-1, 1, n)[k] for the loop counter k (an int64 formula argument)."""
    k = S.cast(var_arg, F64)
    if n == 1:
        return S.const(-1.0, F64)
    step = 2.0 / (n - 1)
    return S.select(S.call("eq", var_arg, S.const(n - 1, "int64")), S.const(1.0, F64), k * step - 1.0)


def _affine_kernel(name, node) -> Kernel:
    theta_t, out_t = node.inputs[0].type, node.types[0]
    n = theta_t.shape[0]
    h, w = out_t.shape[2:]
    dt = out_t.dtype
    t = [S.cast(S.arg(k, dt), F64) for k in range(3)]
    x, y = _linspace(S.arg(3, "int64"), w), _linspace(S.arg(4, "int64"), h)
    expr = S.cast(t[0] * x + t[1] * y + t[2], dt)
    stores = [Store("out", Index((("b", 2 * h * w), ("i", w), ("j", 1)), r * h * w), expr,
                    tuple(Load("in0", Index((("b", 6),), 3 * r + c)) for c in range(3)) + (LoopVar("j"), LoopVar("i")))
              for r in range(2)]
    work = out_t.size * 6
    nest = [Loop("b", n, [Loop("i", h, [Loop("j", w, stores)])], parallel=work >= PARALLEL_WORK and n > 1)]
    return Kernel(name, [Buf("out", dt, out_t.size), Buf("in0", dt, theta_t.size)], nest, work)


def _warp_kernel(name, node) -> Kernel:
    flow_t = node.inputs[0].type
    n, _, h, w = flow_t.shape
    dt = flow_t.dtype
    stores = []
    for r, (var, extent) in enumerate((("j", w), ("i", h))):
        at = Index((("b", 2 * h * w), ("i", w), ("j", 1)), r * h * w)
        pos = S.cast(S.arg(1, "int64"), F64)
        expr = (S.cast(S.arg(0, dt), F64) + pos) / ((extent - 1) / 2.0) - 1.0
        stores.append(Store("out", at, S.cast(expr, dt), (Load("in0", at), LoopVar(var))))
    work = flow_t.size * 3
    nest = [Loop("b", n, [Loop("i", h, [Loop("j", w, stores)])], parallel=work >= PARALLEL_WORK and n > 1)]
    return Kernel(name, [Buf("out", dt, flow_t.size), Buf("in0", dt, flow_t.size)], nest, work)


def _affine_grad_kernel(name, node) -> Kernel:
    g_t, out_t = node.inputs[0].type, node.types[0]
    n, _, h, w = g_t.shape
    dt = g_t.dtype
    body = []
    for r in range(2):
        at = Index((("b", 2 * h * w), ("i", w), ("j", 1)), r * h * w)
        g = S.cast(S.arg(0, dt), F64)
        terms = (g * _linspace(S.arg(1, "int64"), w), g * _linspace(S.arg(2, "int64"), h), g)
        for c, term in enumerate(terms):
            acc = f"acc{c}"
            body += [DeclareAcc(acc, F64, "sum"),
                     Loop("i", h, [Loop("j", w, [Accumulate(acc, "sum", term, (Load("in0", at), LoopVar("j"), LoopVar("i")))])]),
                     Store("out", Index((("b", 6),), 3 * r + c), S.cast(S.arg(0, F64), dt), (AccRef(acc),))]
    work = g_t.size * 6
    nest = [Loop("b", n, body, parallel=work >= PARALLEL_WORK and n > 1)]
    return Kernel(name, [Buf("out", dt, out_t.size), Buf("in0", dt, g_t.size)], nest, work)


def _warp_grad_kernel(name, node) -> Kernel:
    g_t = node.inputs[0].type
    n, _, h, w = g_t.shape
    dt = g_t.dtype
    stores = []
    for r, extent in enumerate((w, h)):
        at = Index((("b", 2 * h * w), ("p", 1)), r * h * w)
        stores.append(Store("out", at, S.arg(0, dt) / S.const((extent - 1) / 2.0, dt), (Load("in0", at),)))
    work = g_t.size
    nest = [Loop("b", n, [Loop("p", h * w, stores)], parallel=work >= PARALLEL_WORK and n > 1)]
    return Kernel(name, [Buf("out", dt, g_t.size), Buf("in0", dt, g_t.size)], nest, work)


def lower_grid_family(node, names, pl_in, pl_out) -> list | None:
    """lower_node's hook: a kernel step for GridGenerator and _grid_generator_grad in float32/64,
    else None (the host reference)."""
    if node.op not in LOWERED or len(node.inputs) != 1:
        return None
    if any(t.dtype not in ("float32", "float64") for t in [node.inputs[0].type, *node.types]):
        return None
    affine = node.attrs["transform_type"] == "affine"
    if node.op == "GridGenerator":
        build = _affine_kernel if affine else _warp_kernel
    else:
        build = _affine_grad_kernel if affine else _warp_grad_kernel
    kernel = build(names(f"k_{node.op.strip('_').lower()}_"), node)
    return [KernelStep(kernel, {"out": pl_out[0], "in0": pl_in[0]})]


__all__ = ["lower_grid_family", "LOWERED"]
