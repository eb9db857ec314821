"""`Take` operators (Embedding, take and its adjoint _backward_take) as kernels that index rows
through an index array (kernel_ir.Indirect).

With the table seen as (O, N, J) around the gathered axis and n indices:
    gather:   out[o, i, j] = table[o, fix(index[i]), j]
    pick:     out[o, j] = table[o, fix(index[o, j]), j]      (Take.per_position)
    scatter:  out = 0;  out[o, fix(index[i]), j] += data[o, i, j]   (i in order: race-free,
              the threads split o, or nothing when O == 1)
"""
from __future__ import annotations

import math

from graphc.ops import scalar as S

from .kernel_ir import Buf, Index, Indirect, Kernel, Load, Loop, Store, unique_bufs
from .lower import PARALLEL_WORK


def _geometry(table_shape, axis, n):
    return math.prod(table_shape[:axis]), table_shape[axis], math.prod(table_shape[axis + 1:]), n


def take_kernel(name, node, low) -> list | None:
    mode = low.mode(node.attrs)
    if mode is None:
        return None
    data_t, index_t = node.inputs[low.data].type, node.inputs[low.index].type
    out_t = node.types[0]
    table_shape = out_t.shape if low.scatter else data_t.shape
    axis = low.axis(node.attrs, len(table_shape))
    O, N, J, n = _geometry(table_shape, axis, index_t.size)
    if N == 0:
        return None
    dtype = out_t.dtype
    if low.per_position:
        # pick: one index per (o, j); out[o, j] = data[o, fix(index[o, j]), j]
        row = Indirect("idx", Index((("o", J), ("j", 1))), J, N, mode)
        body = [Store("out", Index((("o", J), ("j", 1))), S.arg(0, dtype),
                      (Load("data", Index((("o", N * J), ("j", 1)), 0, (row,))),))]
        nest = [Loop("o", O, [Loop("j", J, body)], parallel=O * J >= PARALLEL_WORK and O > 1)]
        return [Kernel(name, unique_bufs([Buf("out", dtype, out_t.size), Buf("data", data_t.dtype, data_t.size),
                                          Buf("idx", index_t.dtype, index_t.size)]), nest, O * J)]
    row = Indirect("idx", Index((("i", 1),)), J, N, mode)
    picked = Index((("o", N * J), ("j", 1)), 0, (row,))            # in the (O, N, J) table
    dense = Index((("o", n * J), ("i", J), ("j", 1)))               # in the (O, n, J) side
    if not low.scatter:
        body = [Store("out", dense, S.arg(0, dtype), (Load("data", picked),))]
    else:
        body = [Store("out", picked, S.arg(0, dtype) + S.arg(1, dtype), (Load("out", picked), Load("data", dense)))]
    work = O * n * J
    nest = [Loop("o", O, [Loop("i", n, [Loop("j", J, body)])], parallel=work >= PARALLEL_WORK and O > 1)]
    bufs = unique_bufs([Buf("out", dtype, out_t.size), Buf("data", data_t.dtype, data_t.size),
                        Buf("idx", index_t.dtype, index_t.size)])
    if not low.scatter:
        return [Kernel(name, bufs, nest, work)]
    big = out_t.size >= PARALLEL_WORK
    zero = [Loop("z", out_t.size, [Store("out", Index((("z", 1),)), S.const(0, dtype), ())], parallel=big)]
    if big or nest[0].parallel:
        # a kernel has at most one parallel loop nest, and every thread runs its other loops
        return [Kernel(name + "_zero", [Buf("out", dtype, out_t.size)], zero, out_t.size),
                Kernel(name, bufs, nest, work)]
    return [Kernel(name, bufs, zero + nest, work + out_t.size)]


__all__ = ["take_kernel"]
