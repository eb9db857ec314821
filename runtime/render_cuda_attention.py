"""CUDA C for a `_fused_attention` kernel (runtime/attention_kernel.py's AttentionBlock).

The CPU runs a task of R query rows as two BLAS calls around per-row loops. A GPU has no BLAS
call inside a kernel, so the rendering is one block per query row (a grid-stride loop over the
N * Tq rows), computing exactly what the CPU computes for that row:

1. the row's scores s_j = scale * q_row . op(k)[:, j] (+ mask_scale * mask[n, r, j] through the
   mask's broadcast strides), spread over the block's threads by key; the row max by a
   shared-memory tree;
2. e_j = exp(s_j - max), exactly 0 where that is below EXP_CUTOFF (as the CPU's exp_or_zero,
   NaN kept), and 1 / sum(e) by a second tree;
3. the output columns, spread over the threads (with at most THREADS / 2 columns, several
   threads per column split the keys): out[c] = sum_j e_j * op(v)[j, c] scaled by 1 / sum,
   or, when the node keeps its probabilities, e_j / sum written to the probabilities' row and
   multiplied by V unscaled (the CPU's order of operations in both cases).

When a row of scores fits SCORE_CAP elements of shared memory (any Tk a training graph or W8
uses), the scores are computed once and stay there. A longer row is streamed: pass 1 and 2
compute the scores again for the max and the sum, and step 3 takes the keys CHUNK at a time
(each chunk's weights in shared memory, each thread adding into the output columns it owns),
so any Tk the fusion pass admits works in fixed shared memory.

Only portable C: the same source compiles with nvcc/NVRTC and with the simulator's g++.
"""
from __future__ import annotations

from .attention_kernel import EXP_CUTOFF, AttentionBlock
from .kernel_ir import Kernel, Loop
from .render_cuda import CTYPE, _lit      # (render_cuda imports this module only inside _render)

THREADS = 128         # a power of two: the trees halve it
SCORE_CAP = 2048      # scores kept in shared memory (16 KiB of float64)
Q_CAP = 1024          # a query row up to this long is read from shared memory


def attention_of(kernel: Kernel) -> AttentionBlock | None:
    """The AttentionBlock when the kernel is attention_kernel's shape (one loop over tasks
    holding only it), else None."""
    body = kernel.body
    if len(body) == 1 and isinstance(body[0], Loop) and len(body[0].body) == 1 \
            and isinstance(body[0].body[0], AttentionBlock):
        return body[0].body[0]
    return None


def render_attention(kernel: Kernel, a: AttentionBlock):
    """(CUDA C of the kernel without the helper prelude, launch) for render_cuda."""
    if a.dtype not in ("float32", "float64"):
        raise NotImplementedError(f"kernel {kernel.name}: fused attention over {a.dtype} has no CUDA rendering "
                                  "(float32 and float64 only)")
    t, f = CTYPE[a.dtype], a.dtype == "float32"
    written = {a.out} | ({a.probs} if a.probs else set())
    params = ", ".join(f"{'' if b.name in written else 'const '}{CTYPE[b.dtype]}* __restrict__ {b.name}"
                       for b in kernel.bufs)
    lit = lambda v: _lit(v, a.dtype)     # noqa: E731
    exp, mx = ("expf", "gc_max_f") if f else ("exp", "gc_max_d")
    n, tq, tk, d, dv = a.n, a.tq, a.tk, a.d, a.dv
    resident = tk <= SCORE_CAP
    q_shared = d <= Q_CAP
    # element offsets, with gc_n, gc_r (the row), gc_c (a column of q / out), gc_j (a key)
    q_at = f"{a.q}[gc_n * {d * tq}LL + gc_c * {tq}LL + gc_r]" if a.trans_q else \
        f"{a.q}[gc_n * {tq * d}LL + gc_r * {d}LL + gc_c]"
    k_at = f"{a.k}[gc_n * {tk * d}LL + gc_j * {d}LL + gc_c]" if a.trans_k else \
        f"{a.k}[gc_n * {d * tk}LL + gc_c * {tk}LL + gc_j]"
    key = "(gc_j0 + gc_j)"         # step 3's key: gc_j counts within the chunk
    v_at = f"{a.v}[gc_n * {dv * tk}LL + gc_c * {tk}LL + {key}]" if a.trans_v else \
        f"{a.v}[gc_n * {tk * dv}LL + {key} * {dv}LL + gc_c]"
    q_val = "gc_q[gc_c]" if q_shared else q_at
    mask = ""
    if a.mask:
        sn, sq, sk = a.mask_strides
        mask = f" + {lit(a.mask_scale)} * {a.mask}[gc_n * {sn}LL + gc_r * {sq}LL + gc_j * {sk}LL]"
    cut = lit(EXP_CUTOFF[a.dtype])

    def score(target):
        """Lines computing the score of key gc_j into `target` (declared by the caller)."""
        return [f"{{ {t} gc_dot = {lit(0.0)};",
                f"  for (long long gc_c = 0; gc_c < {d}LL; ++gc_c) gc_dot += {q_val} * {k_at};",
                f"  {target} = {lit(a.scale)} * gc_dot{mask}; }}"]

    def tree(var, combine):
        return [f"gc_red[threadIdx.x] = {var};", "__syncthreads();",
                f"for (int gc_s = {THREADS // 2}; gc_s > 0; gc_s >>= 1) {{",
                f"  if (threadIdx.x < gc_s) gc_red[threadIdx.x] = "
                f"{combine('gc_red[threadIdx.x]', 'gc_red[threadIdx.x + gc_s]')};",
                "  __syncthreads();", "}", f"{var} = gc_red[0];", "__syncthreads();"]

    def keys(first="0", count=f"{tk}LL"):
        return f"for (long long gc_j = {first} + threadIdx.x; gc_j < {count}; gc_j += {THREADS})"

    expz = f"((gc_x != gc_x) ? gc_x : (gc_x < {cut} ? {lit(0.0)} : {exp}(gc_x)))"
    body = [f"const long long gc_n = gc_row / {tq}LL, gc_r = gc_row % {tq}LL;"]
    if q_shared:
        body += [f"for (long long gc_c = threadIdx.x; gc_c < {d}LL; gc_c += {THREADS}) gc_q[gc_c] = {q_at};",
                 "__syncthreads();"]
    # 1. scores and their max
    body += [f"{t} gc_max = {lit(float('-inf'))};", keys() + " {", f"  {t} gc_s1;"]
    body += ["  " + x for x in score("gc_s1")]
    body += (["  gc_sc[gc_j] = gc_s1;"] if resident else []) + [f"  gc_max = {mx}(gc_max, gc_s1);", "}"]
    body += tree("gc_max", lambda x, y: f"{mx}({x}, {y})")
    # 2. exp(s - max) and 1 / sum (each thread reads back the keys it wrote: no barrier needed)
    body += [f"{t} gc_sum = {lit(0.0)};", keys() + " {", f"  {t} gc_x;"]
    body += ["  gc_x = gc_sc[gc_j];"] if resident else ["  " + x for x in score("gc_x")]
    body += ["  gc_x -= gc_max;", f"  gc_x = {expz};"]
    body += (["  gc_sc[gc_j] = gc_x;"] if resident else []) + ["  gc_sum += gc_x;", "}"]
    body += tree("gc_sum", lambda x, y: f"{x} + {y}")
    body += [f"const {t} gc_inv = {lit(1.0)} / gc_sum;"]
    # 3. the weights of a chunk of keys in gc_sc (all of them when resident), then the columns
    probs_at = f"{a.probs}[gc_row * {tk}LL + gc_j0 + gc_j]" if a.probs else None
    chunk = tk if resident else SCORE_CAP
    body += [f"for (long long gc_j0 = 0; gc_j0 < {tk}LL; gc_j0 += {chunk}LL) {{",
             f"  const long long gc_m = {tk}LL - gc_j0 < {chunk}LL ? {tk}LL - gc_j0 : {chunk}LL;"]
    if not resident or a.probs:
        body += ["  " + keys("0", "gc_m") + " {"]
        if not resident:
            body += [f"    {t} gc_x;", "    {", "      const long long gc_jk = gc_j;",
                     "      const long long gc_j = gc_j0 + gc_jk;"]
            body += ["      " + x for x in score("gc_x")]
            body += ["    }", "    gc_x -= gc_max;", f"    gc_x = {expz};", "    gc_sc[gc_j] = gc_x;"]
        if a.probs:
            body += ["    gc_sc[gc_j] *= gc_inv;", f"    {probs_at} = gc_sc[gc_j];"]
        body += ["  }", "  __syncthreads();"]
    out_at = f"{a.out}[gc_row * {dv}LL + gc_c]"
    groups = THREADS // dv
    if groups >= 2:
        # few columns: `groups` threads per column split the keys, their partial sums combined
        # in gc_red (free again: the trees are done) in a fixed order
        body += ["  {", f"    const long long gc_c = threadIdx.x % {dv}LL, gc_g = threadIdx.x / {dv}LL;",
                 f"    {t} gc_acc = {lit(0.0)};",
                 f"    if (gc_g < {groups}LL)",
                 f"      for (long long gc_j = gc_g; gc_j < gc_m; gc_j += {groups}LL) gc_acc += gc_sc[gc_j] * {v_at};",
                 "    gc_red[threadIdx.x] = gc_acc;", "    __syncthreads();",
                 f"    if (threadIdx.x < {dv}) {{",
                 f"      {t} gc_tot = gc_j0 == 0 ? {lit(0.0)} : {out_at};",
                 f"      for (int gc_g2 = 0; gc_g2 < {groups}; ++gc_g2) gc_tot += gc_red[gc_g2 * {dv} + threadIdx.x];",
                 f"      {out_at} = gc_tot;", "    }", "  }"]
    else:
        body += [f"  for (long long gc_c = threadIdx.x; gc_c < {dv}LL; gc_c += {THREADS}) {{",
                 f"    {t} gc_acc = gc_j0 == 0 ? {lit(0.0)} : {out_at};",
                 f"    for (long long gc_j = 0; gc_j < gc_m; ++gc_j) gc_acc += gc_sc[gc_j] * {v_at};",
                 f"    {out_at} = gc_acc;", "  }"]
    body += ["  __syncthreads();   // gc_sc (and gc_red) are rewritten next", "}"]
    if not a.probs:
        body += [f"for (long long gc_c = threadIdx.x; gc_c < {dv}LL; gc_c += {THREADS}) {out_at} *= gc_inv;"]
    shared = [f"  __shared__ {t} gc_sc[{max(tk, 1) if resident else SCORE_CAP}];",
              f"  __shared__ {t} gc_red[{THREADS}];"]
    if q_shared:
        shared.append(f"  __shared__ {t} gc_q[{max(d, 1)}];")
    lines = [f'extern "C" __global__ void {kernel.name}({params})', "{",
             f"  // fused attention {n}x{tq}x{tk} (k={d}, dv={dv}), one block per query row"
             f"{'' if resident else ', keys streamed'}", *shared,
             f"  for (long long gc_row = blockIdx.x; gc_row < {n * tq}LL; gc_row += gridDim.x) {{"]
    lines += ["    " + x for x in body]
    lines += ["    __syncthreads();   // gc_q is rewritten by the next row", "  }", "}"]
    return "\n".join(lines) + "\n", {"block": THREADS, "grid": "auto", "total": n * tq * THREADS}


__all__ = ["attention_of", "render_attention", "THREADS", "SCORE_CAP"]
