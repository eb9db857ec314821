"""Dropout compiled: the mask drawn inside the kernel from a counter-based generator, so training
with dropout has no host step.

Each element's draw is a pure function of (its position in the mask, the call's seed, the
node): u = hash32(hash32(counter + seed[0]) + seed[1] + salt), kept when u >= round(p * 2**32).
The seed is two 32-bit words the executor draws from the program's rng before every call (a
`Placement` of kind 'seed': SEED_WORDS int64 values in a per-frame buffer), so consecutive
calls draw different masks and `mx.random.seed` reproduces them; the salt (a CRC of the node's
name, unique in a traced graph; expand_rnn names its Dropout nodes after their RNN node) keeps two
Dropout nodes of one program from drawing the same mask. The mask is the
operator's second output, which the gradient reads: forward and backward agree by construction.

`lower_dropout(node, ...)` is lower_node's hook: KernelSteps, or None for anything it does not
compile (non-float dtypes, a mask over 2**32 elements: the counter is 32 bits), which then runs
on the host as before. The host path (numpy's generator) draws different masks from the same
seed: both are Bernoulli(1 - p) masks, not the same mask.
"""
from __future__ import annotations

import math
import zlib

from graphc.ops import scalar as S
from graphc.ops.memory_plan import Placement

from .kernel_ir import Buf, Index, Kernel, Load, Loop, LoopVar, Store
from .lower import PARALLEL_WORK, KernelStep

SEED_WORDS = 2          # int64 words in the seed buffer, each in [0, 2**32)
SEED_BUF = "seed"


def seed_placement(device) -> Placement:
    """Where a kernel finds the per-call seed (executor._slot_of maps kind 'seed' to its slot)."""
    return Placement("seed", 0, 0, 8 * SEED_WORDS, device)


def node_salt(name: str) -> int:
    return zlib.crc32(name.encode()) & 0xFFFFFFFF


def keep_threshold(p: float) -> int:
    """u >= this keeps an element: P(keep) = 1 - p to within 2**-32."""
    return min(int(round(p * 2.0 ** 32)), 2 ** 32)


def uniform_word(counter, seed0, seed1, salt: int):
    """The 32-bit draw (an int64 ScalarExpr in [0, 2**32)) for an int64 counter expression."""
    inner = S.call("hash32", counter + seed0)
    return S.call("hash32", inner + seed1 + S.const(salt, "int64"))


def mask_formula(counter, seed0, seed1, p: float, salt: int, dtype: str):
    """1/(1-p) where kept, else 0, in `dtype` (the host path's keep / (1 - p), as a select)."""
    keep = S.call("ge", uniform_word(counter, seed0, seed1, salt), S.const(keep_threshold(p), "int64"))
    scale = S.call("div", S.const(1.0, dtype), S.const(1.0 - p, dtype))
    return S.select(keep, scale, S.const(0.0, dtype))


def dropout_kernel(name, shape, axes, p: float, salt: int, dtype: str) -> Kernel:
    """out = x * mask and mask over `shape`; the mask is constant along `axes` (its counter is
    the position in the reduced mask shape, the broadcast dimensions stride 0)."""
    size = math.prod(shape)
    axes = set(axes)
    mshape = [1 if d in axes else n for d, n in enumerate(shape)]
    mstride, acc = [0] * len(shape), 1
    for d in reversed(range(len(shape))):
        mstride[d] = 0 if d in axes else acc
        acc *= mshape[d]
    xstride, acc = [0] * len(shape), 1
    for d in reversed(range(len(shape))):
        xstride[d] = acc
        acc *= shape[d]
    if not axes or len(shape) <= 1:
        dims, vars_ = [size], ["i"]
        counters, at = [("i", 1)], Index((("i", 1),))
    else:
        dims, vars_ = list(shape), [f"d{d}" for d in range(len(shape))]
        counters = [(v, s) for v, s in zip(vars_, mstride) if s]
        at = Index(tuple(zip(vars_, xstride)))
    # args: 0 seed[0], 1 seed[1], 2.. one loop counter per mask dimension, last: x
    n_c = len(counters)
    counter = S.const(0, "int64")
    for k, (_, stride) in enumerate(counters):
        term = S.arg(2 + k, "int64") * S.const(stride, "int64") if stride != 1 else S.arg(2 + k, "int64")
        counter = term if k == 0 else counter + term
    mask = mask_formula(counter, S.arg(0, "int64"), S.arg(1, "int64"), p, salt, dtype)
    out = S.arg(2 + n_c, dtype) * mask
    seeds = (Load(SEED_BUF, Index((), 0)), Load(SEED_BUF, Index((), 1)))
    loops = seeds + tuple(LoopVar(v) for v, _ in counters)
    body = [Store("out", at, out, loops + (Load("in0", at),)),
            Store("mask", at, mask, loops)]
    work = size * 12
    for extent, var in reversed(list(zip(dims, vars_))):
        body = [Loop(var, extent, body)]
    body[0].parallel = work >= PARALLEL_WORK and dims[0] > 1
    body[0].independent = True
    bufs = [Buf("out", dtype, size), Buf("mask", dtype, size), Buf(SEED_BUF, "int64", SEED_WORDS),
            Buf("in0", dtype, size)]
    return Kernel(name, bufs, body, work)


def lower_dropout(node, names, pl_in, pl_out) -> list | None:
    if node.op != "Dropout":
        return None
    x_t = node.inputs[0].type
    if x_t.dtype not in ("float32", "float64") or any(t.dtype != x_t.dtype for t in node.types):
        return None
    shape, axes = tuple(x_t.shape), tuple(a % max(len(x_t.shape), 1) for a in node.attrs["axes"])
    mask_size = math.prod(1 if d in axes else n for d, n in enumerate(shape))
    if mask_size >= 2 ** 32:
        return None
    if pl_in[0] in (pl_out[0], pl_out[1]):
        # passes/memory.py never runs a two-output node in place; the kernel's buffers are noalias
        return None
    p = float(node.attrs["p"])
    name = names("k_" + "".join(c if c.isalnum() else "_" for c in node.name) + "_")
    k = dropout_kernel(name, shape, axes, p, node_salt(node.name), x_t.dtype)
    bind = {"out": pl_out[0], "mask": pl_out[1], SEED_BUF: seed_placement(pl_out[0].device), "in0": pl_in[0]}
    return [KernelStep(k, bind)]
