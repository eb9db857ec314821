"""The CPU kernel of a `_fused_attention` node (graphc.ops.fused_attention): softmax attention
without the (N, Tq, Tk) scores or probabilities ever leaving a thread's cache.

The work is cut into tasks of R query rows of one matrix n (the kernel's parallel loop). A task

1. computes its R x Tk scores with one BLAS call, scale as alpha, into a stack buffer
   (R * Tk elements, at most BLOCK_ELEMS: L2-resident, small on any thread's stack);
2. per row adds the mask (read through broadcast strides: a (1, Tq, Tk) causal mask is never
   expanded), takes the row max, stores exp(s - max) and keeps 1 / sum;
3. multiplies the unnormalised probabilities by V with a second BLAS call straight into the
   output rows, then scales each output row by its 1 / sum (Dv multiplies per row, not Tk).

A node that keeps the probabilities (a training forward) has the task's rows of its second
output as the buffer instead, normalises them in place after step 2, and skips step 3's
scaling.

A whole row of scores fits the buffer (the pass bounds Tk), so the softmax is exact in one
pass over the row: no online rescaling is needed. The transposes of the two batch_dots it
replaces are BLAS transpose flags, so no operand is copied.

`AttentionBlock` is the kernel IR statement for steps 1-3 of one task; render_llvm emits any
statement that has `emit_llvm(emitter)` by calling it. The per-row loops are ordinary kernel IR
(Loop, DeclareAcc, Accumulate, Store over the stack buffer), so they vectorise and use the same
exp as every other kernel.
"""
from __future__ import annotations

from dataclasses import dataclass

from graphc.ops import scalar as S
from graphc.ops.fused_attention import FUSED_ATTENTION

from .kernel_ir import AccRef, Accumulate, Buf, DeclareAcc, Index, Kernel, Load, Loop, Store

BLOCK_ELEMS = 16384      # scores per task: 64 KiB of float32, 128 KiB of float64
MIN_TASKS = 8            # split rows finer (down to MIN_ROWS) until there are this many tasks
MIN_ROWS = 16
# exp(x) for x below these is subnormal (float32's smallest normal is exp(-87.34), float64's exp(-708.4))
EXP_CUTOFF = {"float32": -87.0, "float64": -708.0}


def block_rows(n: int, tq: int, tk: int) -> int:
    """R: as many query rows as fit BLOCK_ELEMS (big GEMMs for BLAS), halved while the tasks are
    too few for the threads to balance."""
    r = max(1, min(tq, BLOCK_ELEMS // max(tk, 1)))
    while n * -(-tq // r) < MIN_TASKS and r > MIN_ROWS:
        r = -(-r // 2)
    return r


def _strides3(shape, target):
    """Element strides of a tensor of `shape` read as the 3-D `target` (0 where it broadcasts)."""
    shape = (1,) * (3 - len(shape)) + tuple(shape)
    out, acc = [0, 0, 0], 1
    for d in reversed(range(3)):
        out[d] = 0 if shape[d] == 1 and target[d] != 1 else acc
        acc *= shape[d]
    return tuple(out)


@dataclass
class AttentionBlock:
    """Task `var` of a fused attention: rows [r0, r0 + rows) of matrix n, where
    n, ib = divmod(task, ceil(tq / rows_per_task)) and r0 = ib * rows_per_task."""
    var: str
    out: str
    q: str
    k: str
    v: str
    mask: str | None
    dtype: str
    n: int
    tq: int
    tk: int
    d: int
    dv: int
    rows: int
    trans_q: bool
    trans_k: bool
    trans_v: bool
    scale: float
    mask_scale: float
    mask_strides: tuple = (0, 0, 0)
    probs: str | None = None      # the probabilities' output buffer, when the node keeps them

    def lines(self, indent):
        m = f" + {self.mask_scale!r}*{self.mask}{list(self.mask_strides)}" if self.mask else ""
        kept = f", probabilities -> {self.probs}" if self.probs else ""
        t = lambda f: "ᵀ" if f else ""  # noqa: E731
        return [f"{indent}attention {self.out}[{self.n}x{self.tq}x{self.dv}] rows {self.rows}/task {self.var}: "
                f"softmax({self.scale!r}*{self.q}{t(self.trans_q)} @ {self.k}{t(self.trans_k)}{m}) @ "
                f"{self.v}{t(self.trans_v)}  (k={self.d}, keys={self.tk}, {self.dtype}{kept})"]

    def exp_or_zero(self, x):
        """exp(x), and exactly 0 where it would be subnormal. A masked score (-1e9) otherwise
        runs exp's final scaling into subnormal numbers, which the CPU handles in microcode:
        with half of a causal mask's entries that way, the row loops took 3x the time of
        the two GEMMs. So exp only ever sees arguments above the cutoff (the error is below
        the smallest normal number)."""
        dt = self.dtype
        cut = S.const(EXP_CUTOFF[dt], dt)
        e = S.select(S.call("lt", x, cut), S.const(0.0, dt), S.call("exp", S.call("max", x, cut)))
        return S.select(S.call("ne", x, x), x, e)     # NaN stays NaN (a row masked with -inf only)

    def row_statements(self):
        """Kernel IR for step 2 over row `ar` of the block (scores row at ar * tk)."""
        dt, tk = self.dtype, self.tk
        at = Index((("ar", tk), ("aj", 1)))
        s = Load("scores", at)
        body = []
        if self.mask:
            sn, sq, sk = self.mask_strides
            m = Load(self.mask, Index((("an", sn), ("ar0", sq), ("ar", sq), ("aj", sk))))
            masked = S.arg(0, dt) + S.arg(1, dt) * S.const(self.mask_scale, dt)
            body.append(Loop("aj", tk, [Store("scores", at, masked, (s, m))]))
        body += [DeclareAcc("amax", dt, "max"),
                 Loop("aj", tk, [Accumulate("amax", "max", S.arg(0, dt), (s,))]),
                 Loop("aj", tk, [Store("scores", at, self.exp_or_zero(S.arg(0, dt) - S.arg(1, dt)),
                                       (s, AccRef("amax")))]),
                 DeclareAcc("asum", dt, "sum"),
                 Loop("aj", tk, [Accumulate("asum", "sum", S.arg(0, dt), (s,))]),
                 Store("rowinv", Index((("ar", 1),)), S.const(1.0, dt) / S.arg(0, dt), (AccRef("asum"),))]
        if self.probs:
            inv = Load("rowinv", Index((("ar", 1),)))
            body.append(Loop("aj", tk, [Store("scores", at, S.arg(0, dt) * S.arg(1, dt), (s, inv))]))
        return body

    def scale_statements(self):
        """Kernel IR for step 3's row scaling: out row ar *= rowinv[ar]."""
        dt, dv = self.dtype, self.dv
        at = Index((("an", self.tq * dv), ("ar0", dv), ("ar", dv), ("ac", 1)))
        return [Loop("ac", dv, [Store(self.out, at, S.arg(0, dt) * S.arg(1, dt),
                                      (Load(self.out, at), Load("rowinv", Index((("ar", 1),)))))])]

    def emit_llvm(self, em):
        from llvmlite import ir
        from .render_llvm import BLAS_PREFIX, I32, I64, MEM_TYPE, VOID, _c, _declare
        b = em.b
        ty = MEM_TYPE[self.dtype]
        tp = ty.as_pointer()
        nblk = -(-self.tq // self.rows)
        t = em.vars[self.var]
        n = b.udiv(t, _c(I64, nblk))
        r0 = b.mul(b.urem(t, _c(I64, nblk)), _c(I64, self.rows))
        left = b.sub(_c(I64, self.tq), r0)
        rows = b.select(b.icmp_signed("<", left, _c(I64, self.rows)), left, _c(I64, self.rows))
        em.vars["an"], em.vars["ar0"] = n, r0
        buffers = [("rowinv", self.rows)]
        if self.probs:         # this task's rows of the probabilities' output
            em.ptrs["scores"] = b.gep(em.ptrs[self.probs], [b.add(b.mul(n, _c(I64, self.tq * self.tk)),
                                                                  b.mul(r0, _c(I64, self.tk)))], inbounds=True)
            em.dtypes["scores"] = self.dtype
        else:
            buffers.append(("scores", self.rows * self.tk))
        for name, count in buffers:
            if name not in em.ptrs:
                with b.goto_block(em.entry):
                    b.position_at_start(em.entry)
                    buf = b.alloca(ir.ArrayType(ty, count), name=name)
                    buf.align = 64
                    em.ptrs[name] = b.bitcast(buf, tp)
            em.dtypes[name] = self.dtype
        gemm = _declare(b.module, f"{BLAS_PREFIX}{'s' if self.dtype == 'float32' else 'd'}gemm", ir.FunctionType(
            VOID, [I32, I32, I32, I32, I32, I32, ty, tp, I32, tp, I32, ty, tp, I32]))
        row_major, no_trans, trans = 101, 111, 112

        def at(buf, *terms):
            off = None
            for value, stride in terms:
                term = b.mul(value, _c(I64, stride))
                off = term if off is None else b.add(off, term)
            return b.gep(em.ptrs[buf], [off], inbounds=True)
        m32 = b.trunc(rows, I32)
        # 1. scores = scale * op(q)[rows] @ op(k)
        if self.trans_q:      # q stored (n, d, tq): the block is columns r0.. of each row
            qp, lda = at(self.q, (n, self.d * self.tq), (r0, 1)), self.tq
        else:
            qp, lda = at(self.q, (n, self.tq * self.d), (r0, self.d)), self.d
        kp = at(self.k, (n, self.tk * self.d))
        ldb = self.d if self.trans_k else self.tk
        b.call(gemm, [_c(I32, row_major), _c(I32, trans if self.trans_q else no_trans),
                      _c(I32, trans if self.trans_k else no_trans), m32, _c(I32, self.tk), _c(I32, self.d),
                      _c(ty, self.scale), qp, _c(I32, max(lda, 1)), kp, _c(I32, max(ldb, 1)), _c(ty, 0.0),
                      em.ptrs["scores"], _c(I32, self.tk)])
        em._shared = {}
        # 2. mask, max, exp, 1 / sum per row
        em.loop("ar", _c(I64, 0), rows, self.row_statements())
        # 3. out rows = exp(scores) @ op(v), then scaled by 1 / sum
        vp = at(self.v, (n, self.tk * self.dv))
        op_ = at(self.out, (n, self.tq * self.dv), (r0, self.dv))
        ldv = self.tk if self.trans_v else self.dv
        b.call(gemm, [_c(I32, row_major), _c(I32, no_trans), _c(I32, trans if self.trans_v else no_trans), m32,
                      _c(I32, self.dv), _c(I32, self.tk), _c(ty, 1.0), em.ptrs["scores"], _c(I32, self.tk),
                      vp, _c(I32, max(ldv, 1)), _c(ty, 0.0), op_, _c(I32, max(self.dv, 1))])
        em._shared = {}
        if not self.probs:
            em.loop("ar", _c(I64, 0), rows, self.scale_statements())


def attention_kernel(name, node) -> Kernel:
    """The kernel for a `_fused_attention` node: one parallel loop over row-block tasks."""
    from .lower import PARALLEL_WORK     # lower.py imports this module at its end
    a = node.attrs
    qt, kt, vt = (v.type for v in node.inputs[:3])
    n = qt.shape[0]
    tq = qt.shape[2] if a["trans_q"] else qt.shape[1]
    d = qt.shape[1] if a["trans_q"] else qt.shape[2]
    tk = kt.shape[1] if a["trans_k"] else kt.shape[2]
    dv = vt.shape[1] if a["trans_v"] else vt.shape[2]
    dtype = node.types[0].dtype
    rows = block_rows(n, tq, tk)
    tasks = n * -(-tq // rows)
    mask, strides = None, (0, 0, 0)
    bufs = [Buf("out", dtype, node.types[0].size), Buf("in0", dtype, qt.size), Buf("in1", dtype, kt.size),
            Buf("in2", dtype, vt.size)]
    if a["has_mask"]:
        mt = node.inputs[3].type
        mask, strides = "in3", _strides3(mt.shape, (n, tq, tk))
        bufs.append(Buf("in3", dtype, mt.size))
    probs = None
    if a.get("keep_probs"):
        probs = "probs"
        bufs.insert(1, Buf("probs", dtype, node.types[1].size))
    stmt = AttentionBlock("at", "out", "in0", "in1", "in2", mask, dtype, n, tq, tk, d, dv, rows, a["trans_q"],
                          a["trans_k"], a["trans_v"], float(a["scale"]), float(a["mask_scale"]), strides, probs)
    work = n * tq * tk * (2 * d + 2 * dv + 8)
    loop = Loop("at", tasks, [stmt], parallel=work >= PARALLEL_WORK and tasks > 1, independent=True)
    return Kernel(name, bufs, [loop], work)


def lower_attention(node, names, pl_in, pl_out) -> list | None:
    """lower_node's hook: the steps of a `_fused_attention` node (None for any other node)."""
    if node.op != FUSED_ATTENTION:
        return None
    from .lower import KernelStep
    k = attention_kernel(names("k_attention_"), node)
    bind = {"out": pl_out[0], **{f"in{i}": p for i, p in enumerate(pl_in)}}
    if len(pl_out) > 1:
        bind["probs"] = pl_out[1]
    return [KernelStep(k, bind)]


__all__ = ["AttentionBlock", "attention_kernel", "lower_attention", "block_rows", "BLOCK_ELEMS"]
