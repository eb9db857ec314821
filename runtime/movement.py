"""Movement operators (graphc.ops.layout: slices, joins, splits, transposes) as copy kernels.

Each `Copy` piece becomes one loop nest `out[i·dst_strides] = in[i·src_strides]` over its
shape, with its two start offsets moved into the buffer bindings (a Placement's byte offset,
which the executor adds to the pointer) rather than into the loop. Kernels are named by
content, so the 140 equal (20, 200) blocks that split an unrolled LSTM's input projection
compile to one function called 140 times.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from graphc.ops import scalar as S
from graphc.ops.layout import Copy

from .kernel_ir import Buf, Index, Kernel, Load, Store, unique_bufs
from .lower import PARALLEL_WORK, KernelStep, _loop_nest, collapse


def _base_and_shift(shape, offset, strides):
    """A non-negative start for the binding and the index shift that undoes it: strides may
    be negative (a reversed slice), so the lowest element read may precede the first."""
    low = sum(min(0, (d - 1) * s) for d, s in zip(shape, strides))
    return offset + low, -low


def _span(shape, strides, shift) -> int:
    return shift + sum(max(0, (d - 1) * s) for d, s in zip(shape, strides)) + 1


def copy_kernel_steps(node, pieces, pl_in, pl_out, names):
    """KernelSteps for `pieces` of `node`; pl_in/pl_out: Placements of its values."""
    steps = []
    for p in pieces:
        out_t = node.types[p.dst]
        dtype = out_t.dtype
        item = np.dtype(dtype).itemsize
        if any(d == 0 for d in p.shape):
            continue
        dst_base, dst_shift = _base_and_shift(p.shape, p.dst_offset, p.dst_strides)
        bind = {"out": dataclasses.replace(pl_out[p.dst], offset=pl_out[p.dst].offset + dst_base * item)}
        if p.src is None:
            cshape, (dst_st,), _ = collapse(p.shape, [p.dst_strides])
            src_st, src_shift = None, 0
        else:
            src_base, src_shift = _base_and_shift(p.shape, p.src_offset, p.src_strides)
            bind["in0"] = dataclasses.replace(pl_in[p.src], offset=pl_in[p.src].offset + src_base * item)
            cshape, (dst_st, src_st), _ = collapse(p.shape, [p.dst_strides, p.src_strides])
        n = int(np.prod(p.shape))

        def body(vars_, dst_st=dst_st, src_st=src_st, dst_shift=dst_shift, src_shift=src_shift, fill=p.fill):
            where = Index(tuple((v, s) for v, s in zip(vars_, dst_st) if s != 0), dst_shift)
            if src_st is None:
                return [Store("out", where, S.const(fill, dtype), ())]
            read = Load("in0", Index(tuple((v, s) for v, s in zip(vars_, src_st) if s != 0), src_shift))
            return [Store("out", where, S.arg(0, dtype), (read,))]

        stmts = _loop_nest(cshape, body, parallel=n >= PARALLEL_WORK and len(cshape) > 0)
        bufs = [Buf("out", dtype, _span(cshape, dst_st, dst_shift))]
        if src_st is not None:
            bufs.append(Buf("in0", node.inputs[p.src].type.dtype, _span(cshape, src_st, src_shift)))
        k = Kernel(names("k_copy"), unique_bufs(bufs), stmts, n)
        steps.append(KernelStep(k, bind))
    return steps


__all__ = ["copy_kernel_steps", "Copy"]
