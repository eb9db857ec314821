"""Graph to kernel IR: each node of a fused, memory-planned graph becomes kernel steps (loops
over planned buffers, library GEMMs) or a host step (the operator's numpy reference).

A `KernelStep` pairs a Kernel with `bindings` (buffer name -> Placement from the memory plan);
a `HostStep` runs `OpDef.run` on numpy views of the same placements. The executor strings the
steps together; the renderers only ever see Kernels.
"""
from __future__ import annotations

import os

import hashlib
import math
import re
from dataclasses import dataclass

import numpy as np

from graphc.ops import scalar as S
from graphc.ops.fused import (NATIVE_DTYPES, body_of, is_elementwise, is_gemm, is_reduction,
                              FUSED_ELEMENTWISE, FUSED_REDUCE, FUSED_GEMM)
from graphc.ops.graph import Graph, Node
from graphc.ops.memory_plan import MemoryPlan, Placement, is_view_node
from graphc.ops.registry import Elementwise, Movement, Reduction, Take, get_op, has_op

from .kernel_ir import (Buf, Index, Load, AccRef, Loop, Store, DeclareAcc, Accumulate, Gemm, Kernel, MemCopy,
                        unique_bufs)

# below this many scalar operations a kernel runs on one thread. A dispatch to the persistent pool
# (runtime/threads.py) costs ~0.5 µs when its workers are spinning, ~10 µs when they are parked;
# measured with W1's expression on 2 cores, 2 threads win from about 2^12 elements (2^16 operations,
# 3.6 -> 2.7 µs); 2^17 leaves a margin for shared, loaded machines (was 2^21 with pthread_create
# per call, ~20 µs each). GRAPHC_PARALLEL_WORK overrides.
PARALLEL_WORK = int(os.environ.get("GRAPHC_PARALLEL_WORK", 1 << 17))


@dataclass
class KernelStep:
    kernel: Kernel
    bindings: dict          # buf name -> Placement


@dataclass
class HostStep:
    node: Node
    inputs: list            # Placement per input
    outputs: list           # Placement per output


def contiguous_strides(shape) -> tuple:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def broadcast_strides(shape, target) -> tuple:
    """Element strides to read an array of `shape` (C-contiguous) at indices of `target`."""
    own = contiguous_strides(shape)
    pad = len(target) - len(shape)
    out = []
    for i, t in enumerate(target):
        j = i - pad
        out.append(0 if j < 0 or shape[j] == 1 else own[j])
    return tuple(out)


def collapse(shape, operand_strides, groups=None):
    """Merge adjacent dims that every operand walks contiguously, and drop extent-1 dims.
    groups: per dim a label; only dims with the same label merge (kept vs reduced axes).
    Returns (shape, [strides per operand], labels)."""
    dims = [(d, [s[i] for s in operand_strides], groups[i] if groups else 0)
            for i, d in enumerate(shape) if d != 1]
    merged = []
    for d, st, g in dims:
        if merged:
            pd, pst, pg = merged[-1]
            if pg == g and all(ps == s * d for ps, s in zip(pst, st)):
                merged[-1] = (pd * d, st, g)
                continue
        merged.append((d, st, g))
    shape2 = tuple(d for d, _, _ in merged)
    strides2 = [tuple(m[1][k] for m in merged) for k in range(len(operand_strides))]
    return shape2, strides2, [g for _, _, g in merged]


def _count_ops(expr) -> int:
    seen, stack, n = set(), [expr], 0
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        if e.kind in ("call", "cast"):
            n += 4 if e.op in ("exp", "log", "tanh", "sigmoid", "erf", "sin", "cos", "pow", "log1p", "expm1") else 1
            stack.extend(e.args)
    return n


def compose(body: Graph, leaf=None):
    """The body's output as one ScalarExpr over `arg k` = body input k. `leaf(node)` may supply
    the expression for a non-elementwise node (the GEMM in an epilogue body)."""
    env = {}
    for k, v in enumerate(body.inputs):
        env[(id(v), 0)] = S.arg(k, v.types[0].dtype)
    for n in body.nodes:
        if n.is_var:
            continue
        if n.is_const:
            val = np.asarray(n.attrs["value"]).reshape(()).item()
            env[(id(n), 0)] = S.const(val, n.types[0].dtype)
            continue
        if not isinstance(get_op(n.op).lowering, Elementwise):
            if leaf is not None:
                env[(id(n), 0)] = leaf(n, [env[(id(v.node), v.index)] for v in n.inputs])
            continue       # e.g. the reduction after its prologue: not part of this formula
        args = [env[(id(v.node), v.index)] for v in n.inputs]
        e = get_op(n.op).lowering.formula(*args, **dict(n.attrs))
        if not isinstance(e, S.ScalarExpr):
            e = S.const(e, n.types[0].dtype)
        env[(id(n), 0)] = S.cast(e, n.types[0].dtype)
    out = body.outputs[0]
    return env[(id(out.node), out.index)]


class _Names:
    def __init__(self):
        self.n = 0

    def __call__(self, base):
        self.n += 1
        return f"{base}{self.n}"


def _loop_nest(shape, body_fn, parallel, prefix="i"):
    """Nested loops over `shape`; body_fn(vars) -> list of statements for the innermost body."""
    vars_ = [f"{prefix}{d}" for d in range(len(shape))]
    body = body_fn(vars_)
    for d in reversed(range(len(shape))):
        body = [Loop(vars_[d], shape[d], body, parallel=parallel and d == 0)]
    return body


def _index(vars_, strides):
    return Index(tuple((v, s) for v, s in zip(vars_, strides) if s != 0))


def elementwise_kernel(name, expr, out_type, in_types, bufs_in, buf_out, inplace=frozenset()) -> Kernel:
    """out[i] = expr(in_k[bcast(i)]) over out_type's shape."""
    used = used_args(expr)
    if used != list(range(len(in_types))):
        expr = remap_args(expr, {u: j for j, u in enumerate(used)})
        in_types = [in_types[u] for u in used]
        bufs_in = [bufs_in[u] for u in used]
    shape = out_type.shape
    strides = [contiguous_strides(shape)] + [broadcast_strides(t.shape, shape) for t in in_types]
    cshape, cstrides, _ = collapse(shape, strides)
    work = out_type.size * (1 + _count_ops(expr))

    def body(vars_):
        loads = tuple(Load(b, _index(vars_, st)) for b, st in zip(bufs_in, cstrides[1:]))
        return [Store(buf_out, _index(vars_, cstrides[0]), expr, loads)]

    stmts = _loop_nest(cshape, body, parallel=work >= PARALLEL_WORK and len(cshape) > 0)
    bufs = [Buf(buf_out, out_type.dtype, out_type.size)] + [Buf(b, t.dtype, t.size) for b, t in zip(bufs_in, in_types)]
    uniq = unique_bufs(bufs)
    return Kernel(name, uniq, stmts, work, frozenset(inplace))


_IDENTITY = {"sum": 0, "prod": 1}


_COMBINE = {"sum": "add", "prod": "mul", "max": "max", "min": "min"}


def _identity_const(kind, dtype):
    if kind in _IDENTITY:
        return S.const(_IDENTITY[kind], dtype)
    if dtype.startswith(("float", "bfloat")):
        return S.const(float("-inf") if kind == "max" else float("inf"), dtype)
    info = np.iinfo(dtype)
    return S.const(info.min if kind == "max" else info.max, dtype)


def outer_reduction_kernel(name, prologue, kind, finish, x_type, out_type, axes, in_types, bufs_in, buf_out):
    """A reduction whose innermost input dimension is kept (e.g. a bias gradient, sum over the
    batch axis): reducing along a strided inner loop cannot vectorise, so walk the input in
    memory order and accumulate whole contiguous rows into the output instead:
        out[k] = identity;  for x in input order: out[k(x)] op= prologue(x);  out[k] = finish(out[k])
    The accumulation order over the reduced axes is the same as the inner-loop form."""
    xshape = x_type.shape
    dtype = out_type.dtype
    labels = [1 if d in axes else 0 for d in range(len(xshape))]
    kept_shape = tuple(xshape[d] for d in range(len(xshape)) if d not in axes)
    kept_strides = iter(contiguous_strides(kept_shape))
    out_st = tuple(0 if d in axes else next(kept_strides) for d in range(len(xshape)))
    in_st = [broadcast_strides(t.shape, xshape) for t in in_types]
    cshape, cstrides, _ = collapse(xshape, [out_st] + in_st, labels)
    n = out_type.size
    flat = ["j0"]
    init = [Loop("j0", n, [Store(buf_out, _index(flat, (1,)), _identity_const(kind, dtype), ())])]
    vars_ = [f"i{d}" for d in range(len(cshape))]
    out_idx = _index(vars_, cstrides[0])
    shifted = remap_args(S.cast(prologue, dtype), {k: k + 1 for k in range(len(bufs_in))})
    combine = S.call(_COMBINE[kind], S.arg(0, dtype), shifted)
    loads = (Load(buf_out, out_idx),) + tuple(Load(b, _index(vars_, st)) for b, st in zip(bufs_in, cstrides[1:]))
    acc = [Store(buf_out, out_idx, combine, loads)]
    for d in reversed(range(len(cshape))):
        acc = [Loop(vars_[d], cshape[d], acc)]
    body = init + acc
    if finish is not None:
        body.append(Loop("j0", n, [Store(buf_out, _index(flat, (1,)), finish,
                                         (Load(buf_out, _index(flat, (1,))),))]))
    bufs = [Buf(buf_out, dtype, out_type.size)] + [Buf(b, t.dtype, t.size) for b, t in zip(bufs_in, in_types)]
    uniq = unique_bufs(bufs)
    return Kernel(name, uniq, body, x_type.size * (2 + _count_ops(prologue)))


def reduction_kernel(name, prologue, red_node, in_types, bufs_in, buf_out) -> Kernel:
    """out[kept] = finish(reduce over axes of prologue(in_k[bcast(x)]))."""
    op = get_op(red_node.op)
    low: Reduction = op.lowering
    x_type = red_node.inputs[0].type
    axes = tuple(low.axes(x_type, dict(red_node.attrs)))
    out_type = red_node.types[0]
    xshape = x_type.shape
    kept = [d for d in range(len(xshape)) if d not in axes]
    red = [d for d in axes]
    if red and kept and kept[-1] == len(xshape) - 1 and xshape[-1] > 1 and out_type.dtype != "bool" \
            and low.kind in _COMBINE:
        count = math.prod(xshape[d] for d in red)
        finish = None
        if low.finish is not None:
            f = low.finish(S.arg(0, out_type.dtype), count)
            finish = S.cast(f if isinstance(f, S.ScalarExpr) else S.const(f, out_type.dtype), out_type.dtype)
        return outer_reduction_kernel(name, prologue, low.kind, finish, x_type, out_type, set(axes),
                                      in_types, bufs_in, buf_out)
    order = kept + red                       # loop order: kept dims outer, reduced inner
    oshape = tuple(xshape[d] for d in order)
    out_strides_kept = contiguous_strides(tuple(xshape[d] for d in kept))
    out_st = tuple(list(out_strides_kept) + [0] * len(red))
    in_st = [tuple(broadcast_strides(t.shape, xshape)[d] for d in order) for t in in_types]
    labels = [0] * len(kept) + [1] * len(red)
    cshape, cstrides, clabels = collapse(oshape, [out_st] + in_st, labels)
    nk = sum(1 for g in clabels if g == 0)
    count = math.prod(xshape[d] for d in red) if red else 1
    dtype = out_type.dtype
    acc = "acc"
    work = x_type.size * (1 + _count_ops(prologue))
    acc_expr = S.arg(0, dtype)
    finish = low.finish(acc_expr, count) if low.finish is not None else acc_expr
    finish = S.cast(finish if isinstance(finish, S.ScalarExpr) else S.const(finish, dtype), dtype)
    vars_ = [f"i{d}" for d in range(len(cshape))]
    loads = tuple(Load(b, _index(vars_, st)) for b, st in zip(bufs_in, cstrides[1:]))
    inner = [Accumulate(acc, low.kind, prologue, loads)]
    for d in reversed(range(nk, len(cshape))):
        inner = [Loop(vars_[d], cshape[d], inner)]
    body = [DeclareAcc(acc, dtype, low.kind)] + inner + \
        [Store(buf_out, _index(vars_[:nk], cstrides[0][:nk]), finish, (AccRef(acc),))]
    for d in reversed(range(nk)):
        body = [Loop(vars_[d], cshape[d], body, parallel=(d == 0 and work >= PARALLEL_WORK and cshape[0] > 1))]
    bufs = [Buf(buf_out, dtype, out_type.size)] + [Buf(b, t.dtype, t.size) for b, t in zip(bufs_in, in_types)]
    uniq = unique_bufs(bufs)
    return Kernel(name, uniq, body, work)


def gemm_statement(node: Node, a, b, c):
    """The Gemm for a dot/batch_dot/FullyConnected node, or None when the layout needs the host."""
    at, bt = node.inputs[0].type, node.inputs[1].type
    dtype = node.types[0].dtype
    attrs = node.attrs
    if node.op == "FullyConnected":
        k = bt.shape[1]
        n = attrs["num_hidden"]
        # rows from the shape, not size // k: with k = 0 (no features) the rows still exist
        m = at.shape[0] if attrs["flatten"] else math.prod(at.shape[:-1])
        return Gemm(a, b, c, m, n, k, False, True, k, k, n, dtype)
    if node.op == "dot":
        ta, tb = attrs.get("transpose_a", False), attrs.get("transpose_b", False)
        if at.ndim == 1:
            ta = False
        if bt.ndim == 1:
            tb = False
        # an N-d operand transposes as its 2-D view (ops/declarations/matrix.py): lhs (K, M...)
        # is the matrix (K, M) read transposed, rhs (N..., K) the matrix (N, K)
        if ta:
            k, m = at.shape[0], math.prod(at.shape[1:])
        else:
            k = at.shape[-1]
            m = math.prod(at.shape[:-1])
        if tb:
            n, k2 = math.prod(bt.shape[:-1]), bt.shape[-1]
        else:
            k2 = bt.shape[0]
            n = math.prod(bt.shape[1:])
        lda = m if ta else k
        ldb = k if tb else n
        return Gemm(a, b, c, m, n, k, ta, tb, lda, ldb, n, dtype)
    if node.op == "batch_dot":
        ta, tb = attrs.get("transpose_a", False), attrs.get("transpose_b", False)
        bsz = at.shape[0]
        m = at.shape[2] if ta else at.shape[1]
        k = at.shape[1] if ta else at.shape[2]
        n = bt.shape[1] if tb else bt.shape[2]
        return Gemm(a, b, c, m, n, k, ta, tb, at.shape[2], bt.shape[2], n, dtype, batch=bsz,
                    stride_a=at.shape[1] * at.shape[2], stride_b=bt.shape[1] * bt.shape[2], stride_c=m * n)
    return None


def lower_node(node: Node, plan: MemoryPlan, names: _Names) -> list:
    """Steps for one node of the fused graph."""
    pl_in = [plan.placement(v) for v in node.inputs]
    pl_out = [plan.placements[(id(node), i)] for i in range(len(node.types))]
    host = [HostStep(node, pl_in, pl_out)]
    if any(t.size == 0 for t in node.types):
        return [] if all(t.size == 0 for t in node.types) else host
    out_type = node.types[0]
    in_types = [v.type for v in node.inputs]
    bufs_in = [f"in{k}" for k in range(len(node.inputs))]
    kname = names(f"k_{_ident(node.name)}_")
    if node.op == FUSED_ELEMENTWISE or (has_op(node.op) and is_elementwise(node)):
        expr = compose(body_of(node))
        bind = {"out": pl_out[0], **{b: p for b, p in zip(bufs_in, pl_in)}}
        inplace = frozenset(b for b, p in zip(bufs_in, pl_in) if p == pl_out[0])
        if inplace:
            # the output overwrites an input it reads element by element: name them as one buffer
            rename = {b: "out" for b in inplace}
            bufs_in = [rename.get(b, b) for b in bufs_in]
            bind = {"out": pl_out[0], **{b: p for b, p in zip(bufs_in, pl_in) if b != "out"}}
            inplace = frozenset({"out"})
        k = elementwise_kernel(kname, expr, out_type, in_types, bufs_in, "out", inplace)
        return [KernelStep(k, bind)]
    if node.op == FUSED_REDUCE or (has_op(node.op) and is_reduction(node)):
        body = body_of(node)
        red = body.outputs[0].node
        pro_body = Graph(body.nodes, body.inputs, [red.inputs[0]], body.name)
        expr = compose(pro_body)
        # the prologue is indexed over the reduction's input space; body inputs broadcast to it
        k = reduction_kernel(kname, expr, red, [v.types[0] for v in body.inputs], bufs_in, "out")
        return [KernelStep(k, {"out": pl_out[0], **dict(zip(bufs_in, pl_in))})]
    if node.op == FUSED_GEMM or (has_op(node.op) and is_gemm(node)):
        body = body_of(node)
        g = next(n for n in body.nodes if not n.is_var and not n.is_const and is_gemm(n))
        pos = {id(v): k for k, v in enumerate(body.inputs)}
        ga, gb = (bufs_in[pos[id(v.node)]] for v in g.inputs[:2])
        stmt = gemm_statement(g, ga, gb, "out")
        if stmt is None:
            return host
        gk = Kernel(kname, [Buf("out", out_type.dtype, out_type.size),
                            *[Buf(bufs_in[pos[id(v.node)]], v.type.dtype, v.type.size) for v in g.inputs[:2]]],
                    [stmt], work=2 * stmt.m * stmt.n * stmt.k * stmt.batch)
        gk.bufs = unique_bufs(gk.bufs)          # a(b) == b: x @ x.T
        steps = [KernelStep(gk, {"out": pl_out[0], **dict(zip(bufs_in, pl_in))})]
        n_ext = len(body.inputs)
        has_bias = g.op == "FullyConnected" and not g.attrs["no_bias"]
        if not has_bias and len(body.op_nodes()) == 1:
            return steps
        # epilogue: arg n_ext reads the GEMM result in place; the bias (if any) is added first
        raw = S.arg(n_ext, out_type.dtype)

        def leaf(n, args):
            if n is g and has_bias:
                return raw + args[2]
            return raw
        expr = compose(body, leaf)
        ep_types = in_types + [out_type]
        ep_bufs = bufs_in + ["out"]
        ek = elementwise_kernel(names(f"k_{_ident(node.name)}_epilogue"), expr, out_type, ep_types,
                                ep_bufs, "out", frozenset({"out"}))
        steps.append(KernelStep(ek, {"out": pl_out[0], **dict(zip(bufs_in, pl_in))}))
        return steps
    if has_op(node.op) and isinstance(get_op(node.op).lowering, Movement) and _native_dtypes(node):
        pieces = get_op(node.op).lowering.pieces(in_types, list(node.types), node.attrs)
        if pieces is not None:
            return copy_kernel_steps(node, pieces, pl_in, pl_out, names)
    if has_op(node.op) and isinstance(get_op(node.op).lowering, Take) and _native_dtypes(node):
        low = get_op(node.op).lowering
        kernels = take_kernel(kname, node, low)
        if kernels is not None:
            bind = {"out": pl_out[0], "data": pl_in[low.data], "idx": pl_in[low.index]}
            return [KernelStep(k, {b.name: bind[b.name] for b in k.bufs}) for k in kernels]
    for lower_family in _FAMILY_LOWERINGS:
        steps = lower_family(node, names, pl_in, pl_out)
        if steps is not None:
            return steps
    for lower_family in _PLANNED_FAMILY_LOWERINGS:
        steps = lower_family(node, plan, names, pl_in, pl_out)
        if steps is not None:
            return steps
    return host


def _native_dtypes(node) -> bool:
    return all(t.dtype in NATIVE_DTYPES for t in list(node.types) + [v.type for v in node.inputs])


def copy_kernel(name, type_, src="in0", dst="out") -> Kernel:
    return Kernel(name, [Buf(dst, type_.dtype, type_.size), Buf(src, type_.dtype, type_.size)],
                  [MemCopy(dst, src, type_.nbytes)], work=type_.size)


def remap_args(expr, mapping: dict):
    """The same formula with `arg i` renumbered to `arg mapping[i]`."""
    memo = {}
    for e in S.postorder(expr):   # operands first, without recursion (formulas may be deep)
        if e.kind == "arg":
            r = S.arg(mapping[e.value], e.dtype)
        elif e.kind == "const":
            r = e
        elif e.kind == "cast":
            r = S.cast(memo[e.args[0]], e.dtype)
        else:
            r = S.ScalarExpr("call", op=e.op, args=tuple(memo[a] for a in e.args), dtype=e.dtype)
        memo[e] = r
    return memo[expr]


def used_args(expr) -> list:
    seen, stack, out = set(), [expr], set()
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        if e.kind == "arg":
            out.add(e.value)
        stack.extend(e.args)
    return sorted(out)


def _ident(s: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in s)


def lower_graph(graph: Graph, plan: MemoryPlan) -> list:
    """All steps of the program, in order: kernels, host calls, and final copies to outputs."""
    names = _Names()
    steps = []
    for node in plan.steps:
        if (id(node), 0) in plan.views:
            continue
        if is_view_node(node) and not (len(node.types) == 1 and node.types[0].size == node.inputs[0].type.size
                                       and node.types[0].dtype == node.inputs[0].type.dtype):
            steps.append(HostStep(node, [plan.placement(v) for v in node.inputs],
                                  [plan.placements[(id(node), i)] for i in range(len(node.types))]))
            continue
        if is_view_node(node):
            # a view whose result the caller receives: copy the bytes into the output buffer
            t = node.types[0]
            flat = t.with_(shape=(t.size,))
            k = copy_kernel(names(f"k_{_ident(node.name)}_copy"), flat)
            steps.append(KernelStep(k, {"out": plan.placements[(id(node), 0)], "in0": plan.placement(node.inputs[0])}))
            continue
        steps.extend(lower_node(node, plan, names))
    for j, key in plan.copies_to_output:
        v = graph.outputs[j]
        t = v.type
        if t.size == 0:
            continue
        k = copy_kernel(names("k_output_copy"), t.with_(shape=(t.size,)))
        dst = Placement("output", j, 0, t.nbytes, t.device)
        steps.append(KernelStep(k, {"out": dst, "in0": plan.placement(v)}))
    for step in steps:
        if isinstance(step, KernelStep):
            name_by_content(step.kernel)
    return steps


def name_by_content(kernel: Kernel) -> Kernel:
    """Name a kernel after what it computes (its text, which names only its own buffers), so that
    identical kernels compile once: an unrolled RNN repeats the same few step kernels per time
    step, and LLVM's time grows with the number of distinct functions, not of calls."""
    if _CONTENT_NAMED.match(kernel.name):
        return kernel        # already named by kind and content (runtime/conv.py)
    kernel.name = "k"
    kernel.name = f"k_{hashlib.sha1(str(kernel).encode()).hexdigest()[:16]}"
    return kernel


_CONTENT_NAMED = re.compile(r"^k_[a-z0-9]+_[0-9a-f]{12}$")


__all__ = ["KernelStep", "HostStep", "lower_graph", "lower_node", "compose", "elementwise_kernel",
           "reduction_kernel", "gemm_statement", "PARALLEL_WORK"]


from .conv_steps import lower_conv_family  # noqa: E402  (it builds on the helpers above)
from .movement import copy_kernel_steps  # noqa: E402
from .gather import take_kernel  # noqa: E402
from .index_kernels import lower_index_family  # noqa: E402
from .dropout_kernel import lower_dropout  # noqa: E402
from .attention_kernel import lower_attention  # noqa: E402
from .softmax_ce_kernel import lower_softmax_ce  # noqa: E402
from .sort_kernels import lower_sort_family  # noqa: E402
from .grid_kernels import lower_grid_family  # noqa: E402
from .lrn_kernels import lower_lrn_family  # noqa: E402
from .upsample_kernels import lower_upsampling  # noqa: E402

# operator families with kernel builders of their own, tried in turn: each gives the node's steps,
# or None where the node is not one of its operators (or not a case it compiles)
_FAMILY_LOWERINGS = (
    lower_index_family,   # positions as values, reductions with a prologue (one_hot, SequenceMask,
                          # argmax/argmin, norm, L2Normalization): runtime/index_kernels.py
    lower_dropout,        # the mask drawn in the kernel from a per-call seed: runtime/dropout_kernel.py
    lower_attention,      # softmax attention in one kernel: runtime/attention_kernel.py
    lower_softmax_ce,     # log_softmax row statistics in one kernel: runtime/softmax_ce_kernel.py
    lower_upsampling,     # bilinear UpSampling as a gather: runtime/upsample_kernels.py
    lower_lrn_family,     # LRN and its gradient: runtime/lrn_kernels.py
    lower_grid_family,    # GridGenerator and its gradient: runtime/grid_kernels.py
)
# ... and those that also place scratch buffers through the memory plan
_PLANNED_FAMILY_LOWERINGS = (
    lower_sort_family,    # sort, argsort, topk as a bitonic network per row: runtime/sort_kernels.py
    lower_conv_family,    # convolutions and pooling: runtime/conv_steps.py
)
