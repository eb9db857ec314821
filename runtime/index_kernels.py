"""Kernels for operators whose result depends on element positions, not only on values:
one_hot (the class index is a loop counter), SequenceMask (the time step is a loop counter),
argmax/argmin (a reduction that keeps the position), norm and L2Normalization (reductions with
a square or absolute-value prologue). They have no declared lowering (a formula cannot name a loop
counter); `lower_index_family(node, ...)` is lower_node's hook for them: KernelSteps, or None
for any other node or an instance it does not handle (which then runs on the host).

Positions enter formulas as `LoopVar` arguments (int64 counters, cast where a formula needs
another type); every comparison that decides a position is made as the reference makes it
(truncated float indices and lengths, NaN naming no class and no length).
"""
from __future__ import annotations

import math

from graphc.ops import scalar as S
from graphc.ops.declarations.common import normalize_axes
from graphc.ops.declarations.norm import _l2_axes
from graphc.ops.fused import NATIVE_DTYPES

from .kernel_ir import AccRef, Accumulate, Buf, DeclareAcc, Index, Kernel, Load, Loop, LoopVar, Store
from .lower import PARALLEL_WORK, KernelStep, elementwise_kernel


def _is_float(dtype) -> bool:
    return dtype.startswith(("float", "bfloat"))


def _native(node) -> bool:
    types = list(node.types) + [v.type for v in node.inputs]
    return all(t.dtype in NATIVE_DTYPES - {"bool"} for t in types)


def one_hot_kernel(name, node) -> Kernel:
    """out[i, j] = on if trunc(idx[i]) == j else off; NaN and out-of-range indices equal no j."""
    idx_t, out_t = node.inputs[0].type, node.types[0]
    n, depth = idx_t.size, node.attrs["depth"]
    it, ot = idx_t.dtype, out_t.dtype
    index = S.arg(0, it)
    if _is_float(it):
        index = S.trunc(index)
    hit = S.call("eq", index, S.cast(S.arg(1, "int64"), it))
    expr = S.select(hit, S.const(node.attrs["on_value"], ot), S.const(node.attrs["off_value"], ot))
    body = [Store("out", Index((("i", depth), ("j", 1))), expr, (Load("in0", Index((("i", 1),))), LoopVar("j")))]
    work = n * depth
    nest = [Loop("i", n, [Loop("j", depth, body)], parallel=work >= PARALLEL_WORK and n > 1)]
    return Kernel(name, [Buf("out", ot, out_t.size), Buf("in0", it, idx_t.size)], nest, work)


def sequence_mask_kernel(name, node) -> Kernel:
    """(T, B, R) or (B, T, R): out = x where t < trunc(length[b]) else value; lengths clip to
    [0, T] in the reference, which the comparison does by itself."""
    x_t, len_t = node.inputs[0].type, node.inputs[1].type
    axis = node.attrs["axis"]
    d0, d1 = x_t.shape[0], x_t.shape[1]
    r = math.prod(x_t.shape[2:])
    xt, lt = x_t.dtype, len_t.dtype
    t_var, b_var = ("a", "b") if axis == 0 else ("b", "a")
    length = S.arg(2, lt)
    if _is_float(lt):
        length = S.trunc(length)
    inside = S.call("lt", S.cast(S.arg(1, "int64"), lt), length)
    expr = S.select(inside, S.arg(0, xt), S.const(node.attrs["value"], xt))
    at = Index((("a", d1 * r), ("b", r), ("r", 1)))
    body = [Store("out", at, expr, (Load("in0", at), LoopVar(t_var), Load("in1", Index(((b_var, 1),)))))]
    work = x_t.size
    nest = [Loop("a", d0, [Loop("b", d1, [Loop("r", r, body)])], parallel=work >= PARALLEL_WORK and d0 > 1)]
    return Kernel(name, [Buf("out", xt, x_t.size), Buf("in0", xt, x_t.size), Buf("in1", lt, len_t.size)], nest, work)


def arg_extreme_kernel(name, node) -> Kernel:
    """argmax/argmin along one axis (the input seen as (O, N, I)) or of the flattened input:
    the extreme, then the first position holding it, and the first NaN's position taking
    precedence (numpy's rule); positions are int64 accumulators, cast to the output dtype."""
    x_t, out_t = node.inputs[0].type, node.types[0]
    axis = node.attrs["axis"]
    if axis is None:
        o, n, i = 1, x_t.size, 1
    else:
        a = normalize_axes(axis, x_t.ndim, node.op)[0]
        o, n, i = math.prod(x_t.shape[:a]), x_t.shape[a], math.prod(x_t.shape[a + 1:])
    dt, kind = x_t.dtype, "max" if node.op == "argmax" else "min"
    at = Index((("o", n * i), ("r", i), ("i", 1)))
    x, pos, none = S.arg(0, dt), S.arg(1, "int64"), S.const(n, "int64")
    first = S.select(S.call("eq", x, S.arg(2, dt)), pos, none)
    body = [DeclareAcc("m", dt, kind),
            DeclareAcc("nan", "int64", "min"),
            Loop("r", n, [Accumulate("m", kind, x, (Load("in0", at),)),
                          Accumulate("nan", "min", S.select(S.call("ne", x, x), pos, none),
                                     (Load("in0", at), LoopVar("r")))]),
            DeclareAcc("first", "int64", "min"),
            Loop("r", n, [Accumulate("first", "min", first, (Load("in0", at), LoopVar("r"), AccRef("m")))]),
            Store("out", Index((("o", i), ("i", 1))),
                  S.cast(S.select(S.call("lt", S.arg(1, "int64"), none), S.arg(1, "int64"), S.arg(0, "int64")),
                         out_t.dtype),
                  (AccRef("first"), AccRef("nan")))]
    work = 3 * x_t.size
    nest = [Loop("o", o, [Loop("i", i, body)], parallel=work >= PARALLEL_WORK and o > 1)]
    return Kernel(name, [Buf("out", out_t.dtype, out_t.size), Buf("in0", dt, x_t.size)], nest, work)


def reduce_kernel(name, x_t, axes, term, finish, out_t) -> Kernel:
    """out[kept] = finish(sum over `axes` of term(x)), kept axes outer in output order (any
    kept extent-1 axes of out_t are the same elements), reduced axes inner. term/finish map a
    ScalarExpr (x, the accumulator) to a ScalarExpr."""
    axes = set(axes)
    kept = [d for d in range(x_t.ndim) if d not in axes]
    red = [d for d in range(x_t.ndim) if d in axes]
    st, acc = [], 1
    for d in reversed(x_t.shape):
        st.append(acc)
        acc *= d
    st = st[::-1]
    var_of = {d: (f"k{d}" if d in kept else f"r{d}") for d in range(x_t.ndim)}
    at = Index(tuple((var_of[d], st[d]) for d in range(x_t.ndim)))
    ost, acc = [], 1
    for d in reversed(kept):
        ost.append(acc)
        acc *= x_t.shape[d]
    out_at = Index(tuple(zip([var_of[d] for d in kept], ost[::-1])))
    dt = x_t.dtype
    inner = [Accumulate("acc", "sum", term(S.arg(0, dt)), (Load("in0", at),))]
    for d in reversed(red):
        inner = [Loop(var_of[d], x_t.shape[d], inner)]
    body = [DeclareAcc("acc", dt, "sum")] + inner + [Store("out", out_at, finish(S.arg(0, dt)), (AccRef("acc"),))]
    work = 2 * x_t.size
    for k, d in reversed(list(enumerate(kept))):
        body = [Loop(var_of[d], x_t.shape[d], body, parallel=k == 0 and work >= PARALLEL_WORK and x_t.shape[d] > 1)]
    return Kernel(name, [Buf("out", out_t.dtype, out_t.size), Buf("in0", dt, x_t.size)], body, work)


def norm_kernel(name, node) -> Kernel:
    """sqrt(sum x^2) (ord 2) or sum |x| (ord 1) over the axes."""
    x_t = node.inputs[0].type
    axes = normalize_axes(node.attrs["axis"], x_t.ndim, "norm")
    if node.attrs["ord"] == 1:
        return reduce_kernel(name, x_t, axes, S.abs_, lambda acc: acc, node.types[0])
    return reduce_kernel(name, x_t, axes, lambda x: x * x, S.sqrt, node.types[0])


def l2_normalization_steps(node, names, pl_in, pl_out) -> list:
    """L2Normalization: its hidden output, norm = sqrt(sum x^2 + eps) over the mode's axes
    (keepdims), then out = x / norm broadcast, reading the norm where it was stored."""
    x_t, (out_t, norm_t) = node.inputs[0].type, node.types
    eps = node.attrs["eps"]
    k1 = reduce_kernel(names("k_l2norm_"), x_t, _l2_axes(x_t.ndim, node.attrs["mode"]), lambda x: x * x,
                       lambda acc: S.sqrt(acc + eps), norm_t)
    dt = x_t.dtype
    k2 = elementwise_kernel(names("k_l2div_"), S.arg(0, dt) / S.arg(1, dt), out_t, [x_t, norm_t],
                            ["in0", "in1"], "out")
    return [KernelStep(k1, {"out": pl_out[1], "in0": pl_in[0]}),
            KernelStep(k2, {"out": pl_out[0], "in0": pl_in[0], "in1": pl_out[1]})]


def _wanted(node) -> bool:
    op, attrs = node.op, node.attrs
    if op == "one_hot":
        return True
    if op == "SequenceMask":
        return len(node.inputs) == (2 if attrs["use_sequence_length"] else 1)
    if op in ("argmax", "argmin"):
        return _is_float(node.inputs[0].type.dtype) or node.inputs[0].type.dtype in ("int32", "int64")
    if op == "L2Normalization":
        return _is_float(node.types[0].dtype)
    if op == "norm":
        # a float result in the input's own dtype (an int sum of squares may overflow differently)
        return node.types[0].dtype == node.inputs[0].type.dtype and _is_float(node.types[0].dtype)
    return False


_KERNELS = {"one_hot": one_hot_kernel, "SequenceMask": sequence_mask_kernel, "argmax": arg_extreme_kernel,
            "argmin": arg_extreme_kernel, "norm": norm_kernel}
LOWERED = frozenset(_KERNELS) | {"L2Normalization"}


def lower_index_family(node, names, pl_in, pl_out) -> list | None:
    """lower_node's hook: steps for the operators of this module, else None."""
    if node.op not in LOWERED or not _native(node) or not _wanted(node):
        return None
    if node.op == "L2Normalization":
        return l2_normalization_steps(node, names, pl_in, pl_out)
    if node.op == "SequenceMask" and not node.attrs["use_sequence_length"]:     # no lengths: a copy
        t = node.types[0]
        k = elementwise_kernel(names("k_copy_"), S.arg(0, t.dtype), t, [t], ["in0"], "out")
        return [KernelStep(k, {"out": pl_out[0], "in0": pl_in[0]})]
    kernel = _KERNELS[node.op](names(f"k_{node.op.lower()}_"), node)
    bind = {"out": pl_out[0], **{f"in{k}": p for k, p in enumerate(pl_in)}}
    return [KernelStep(kernel, {b.name: bind[b.name] for b in kernel.bufs})]


__all__ = ["lower_index_family", "LOWERED", "one_hot_kernel", "sequence_mask_kernel", "arg_extreme_kernel",
           "norm_kernel", "reduce_kernel", "l2_normalization_steps"]
