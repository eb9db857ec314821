"""sort, argsort and topk as one kernel each: a bitonic sorting network per row.

The kernel IR has counted loops and affine (or index-array) addressing but no data-dependent
control flow, so a merge sort's "advance whichever head is smaller" cannot be written; a sorting
network can: every stage compares fixed pairs of positions, so a stage is two counted loops and
four selects. log2(P) (log2(P) + 1) / 2 stages of P / 2 compare-exchanges sort a row padded to
P = 2^m: O(n log^2 n) work, and the kernel's code grows with log^2 P.

The network sorts (key, position) pairs, position breaking ties, which makes it stable, as the
numpy reference (ops/declarations/sorting.py) is: ascending keys are x, descending keys are -x
in x's dtype (what the reference sorts, including its wrap of the most negative integer). NaN
keys order after every number (numpy's rule), among themselves by position. Padding positions
hold the largest key (NaN, or the dtype's maximum) and positions past n, so they end up last and
are never read back. Values are then gathered from the input by the sorted positions.

Stages read one pair of scratch buffers and write the other (a compare-exchange must read both
of its elements before writing either); the memory planner reserves them
(ops.declarations.sorting.network_scratch_bytes). Gradients need nothing here: they scatter
the output gradient by the positions with one_hot and a sum, which compile elsewhere.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from graphc.ops import scalar as S
from graphc.ops.declarations.sorting import (NETWORK_KEY_DTYPES, NETWORK_OPS, _k_of, network_width,
                                             network_scratch_bytes, sort_rows)
from graphc.ops.fused import NATIVE_DTYPES

from .kernel_ir import Buf, Index, Indirect, Kernel, Load, Loop, LoopVar, Store
from .lower import PARALLEL_WORK, KernelStep

LOWERED = frozenset(NETWORK_OPS)     # for tests/ops/test_op_compiled.py's hook list
POS = "int32"       # positions in the network (rows are far below 2^31 elements)


def _after(key_a, pos_a, key_b, pos_b, floating) -> S.ScalarExpr:
    """Whether (key_a, pos_a) sorts after (key_b, pos_b): larger key, NaN after numbers, equal
    keys (or both NaN) by position."""
    later = S.call("gt", pos_a, pos_b)
    if not floating:
        return S.call("or", S.call("gt", key_a, key_b), S.call("and", S.call("eq", key_a, key_b), later))
    nan_a, nan_b = S.call("ne", key_a, key_a), S.call("ne", key_b, key_b)
    same = S.call("or", S.call("eq", key_a, key_b), S.call("and", nan_a, nan_b))
    return S.call("or", S.call("or", S.call("and", nan_a, S.call("not", nan_b)), S.call("gt", key_a, key_b)),
                  S.call("and", same, later))


def _stage(src, dst, lo, hi, dtype) -> list:
    """One compare-exchange per (c, t): the pair (lo, hi) of each row put in ascending order,
    reading buffers `src` and writing `dst`."""
    args = (Load(f"key{src}", lo), Load(f"key{src}", hi), Load(f"pos{src}", lo), Load(f"pos{src}", hi))
    ka, kb, pa, pb = S.arg(0, dtype), S.arg(1, dtype), S.arg(2, POS), S.arg(3, POS)
    swap = _after(ka, pa, kb, pb, dtype.startswith("float"))
    return [Store(f"key{dst}", lo, S.select(swap, kb, ka), args),
            Store(f"key{dst}", hi, S.select(swap, ka, kb), args),
            Store(f"pos{dst}", lo, S.select(swap, pb, pa), args),
            Store(f"pos{dst}", hi, S.select(swap, pa, pb), args)]


def _stages(p, dtype, row) -> tuple:
    """The network for rows of p = 2^m, all comparisons ascending (no per-block direction, so
    one loop nest per stage): merging sorted blocks of k/2 into blocks of k first compares each
    element of a block with its mirror (t with k-1-t: the second half read backwards is the
    descending half of a bitonic sequence), then half-cleans with distances k/4, ..., 1.
    Returns (loops, number of stages)."""
    loops, n = [], 0
    k = 2
    while k <= p:
        lo = Index(row + (("c", k), ("t", 1)))
        hi = Index(row + (("c", k), ("t", -1)), offset=k - 1)
        loops.append(Loop("c", p // k, [Loop("t", k // 2, _stage(n % 2, 1 - n % 2, lo, hi, dtype))]))
        n += 1
        j = k // 4
        while j >= 1:
            lo = Index(row + (("c", 2 * j), ("t", 1)))
            hi = dataclasses.replace(lo, offset=j)
            loops.append(Loop("c", p // (2 * j), [Loop("t", j, _stage(n % 2, 1 - n % 2, lo, hi, dtype))]))
            n += 1
            j //= 2
        k *= 2
    return loops, n


def network_kernel(name, node) -> Kernel:
    """The whole operator for one node: per row, load keys, run the stages, write the outputs."""
    x_t = node.inputs[0].type
    attrs = node.attrs
    dtype = x_t.dtype
    o, n, inner = sort_rows(x_t.shape, attrs["axis"])
    p = network_width(n)
    row = (("o", inner * p), ("i", p))
    x_at = (("o", n * inner), ("i", 1))

    key = S.arg(0, dtype) if attrs["is_ascend"] else S.call("neg", S.arg(0, dtype))
    pad = S.const(float("nan") if dtype.startswith("float") else np.iinfo(dtype).max, dtype)
    body = [Loop("t", n, [Store("key0", Index(row + (("t", 1),)), key, (Load("in0", Index(x_at + (("t", inner),))),)),
                          Store("pos0", Index(row + (("t", 1),)), S.cast(S.arg(0, "int64"), POS), (LoopVar("t"),))])]
    if p > n:
        body.append(Loop("t", p - n, [Store("key0", Index(row + (("t", 1),), offset=n), pad, ()),
                                      Store("pos0", Index(row + (("t", 1),), offset=n),
                                            S.cast(S.arg(0, "int64") + S.const(n, "int64"), POS), (LoopVar("t"),))]))
    stage_loops, stages = _stages(p, dtype, row)
    body.extend(stage_loops)
    final = f"pos{stages % 2}"
    body.extend(_outputs(node, final, o, n, inner, row, x_at))
    work = o * inner * (p * 4 + 2 * p * max(stages, 1))
    bufs = [Buf("out", node.types[0].dtype, node.types[0].size)]
    if len(node.types) == 2:
        bufs.append(Buf("out1", node.types[1].dtype, node.types[1].size))
    rows = o * inner * p
    bufs += [Buf("in0", dtype, x_t.size), Buf("key0", dtype, rows), Buf("key1", dtype, rows),
             Buf("pos0", POS, rows), Buf("pos1", POS, rows)]
    nest = [Loop("o", o, [Loop("i", inner, body)], parallel=work >= PARALLEL_WORK and o > 1)]
    return Kernel(name, bufs, nest, work)


def _outputs(node, final, o, n, inner, row, x_at) -> list:
    """The first kk sorted positions of the row as the operator's results: values gathered from
    the input, positions cast to the index dtype, or a 0/1 mask scattered by position."""
    op, attrs = node.op, node.attrs
    kk = _k_of(n, attrs["k"]) if op == "topk" else n
    ret = attrs.get("ret_typ", "value" if op == "sort" else "indices")
    at_pos = Index(row + (("t", 1),))
    out_at = Index((("o", kk * inner), ("t", inner), ("i", 1)))
    picked = Index(x_at, indirect=(Indirect(final, at_pos, inner, n),))
    if ret == "mask":
        mt = node.types[0].dtype
        return [Loop("t", n, [Store("out", Index(x_at + (("t", inner),)), S.const(0, mt), ())]),
                Loop("t", kk, [Store("out", picked, S.const(1, mt), ())])]
    stores = []
    index_buf = {"indices": "out", "both": "out1"}.get(ret)
    if ret in ("value", "both"):
        dt = node.types[0].dtype
        stores.append(Store("out", out_at, S.arg(0, dt), (Load("in0", picked),)))
    if index_buf is not None:
        it = node.types[1 if ret == "both" else 0].dtype
        stores.append(Store(index_buf, out_at, S.cast(S.arg(0, POS), it), (Load(final, at_pos),)))
    return [Loop("t", kk, stores)]


def lower_sort_family(node, plan, names, pl_in, pl_out) -> list | None:
    """lower_node's hook: the network kernel's step for sort/argsort/topk in native dtypes,
    else None (the node then runs its numpy reference on the host)."""
    if node.op not in NETWORK_OPS or len(node.inputs) != 1:
        return None
    if node.inputs[0].type.dtype not in NETWORK_KEY_DTYPES:
        return None
    if any(t.dtype not in NATIVE_DTYPES - {"bool"} for t in node.types):
        return None
    if network_width(sort_rows(node.inputs[0].type.shape, node.attrs["axis"])[1]) > np.iinfo(POS).max:
        return None         # positions would not fit the network's int32
    scratch = plan.scratch.get(id(node))
    need = network_scratch_bytes(node)
    if scratch is None or scratch.nbytes < need:
        return None
    kernel = network_kernel(names(f"k_{node.op}_"), node)
    rows = kernel.buf("key0").size
    key_bytes = rows * np.dtype(node.inputs[0].type.dtype).itemsize
    pos_bytes = rows * np.dtype(POS).itemsize

    def part(offset, nbytes):
        return dataclasses.replace(scratch, offset=scratch.offset + offset, nbytes=nbytes)
    bind = {"out": pl_out[0], "in0": pl_in[0], "key0": part(0, key_bytes), "key1": part(key_bytes, key_bytes),
            "pos0": part(2 * key_bytes, pos_bytes), "pos1": part(2 * key_bytes + pos_bytes, pos_bytes)}
    if len(pl_out) == 2:
        bind["out1"] = pl_out[1]
    return [KernelStep(kernel, bind)]


__all__ = ["lower_sort_family", "network_kernel", "LOWERED"]
