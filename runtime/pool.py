"""Pooling (max, avg, sum; global; 'valid' and 'full' conventions; count_include_pad) as one
generated kernel per node.

Along each spatial axis the output positions fall into segments that see the same window
clipping (the interior, where every tap is inside the image, and each border position on its
own), all known at compile time. A segment's window is therefore static: small windows become
one formula over all their taps' loads (the loop over output positions is what LLVM widens),
large ones (global pooling) a reduction loop. No branch and no padded copy of the input.
Per image the loops follow the segments axis by axis, so a 2-D pool sweeps its rows once.

What keeps the forward kernel fast (ResNet-18's stem, max 3x3 stride 2 pad 1 over
1x64x112x112 float32: 0.12 ms before, 0.04 ms after, on 2 AVX-512 cores):
- a window's maximum is a tree of compare-selects plus one NaN test (`_window_max`), not
  llvm.maximum, which x86 lowers to six instructions per tap;
- each innermost segment runs as loops of m * lanes + 1 positions (`_vector_pieces`): a
  strided window's loads leave LLVM's vectoriser one scalar iteration, and only one.

MXNet's rules (src/operator/nn/pool.h): a window starts at o*stride - pad and ends at
min(start + kernel, size + pad); avg divides by that padded extent when count_include_pad,
else by the number of taps inside the image ('same' only changes how many windows there are).
'lp' pooling (p = 1, 2, 3) is sum pooling of x^p and a root; its gradient is sum pooling's
gradient scaled (ops/declarations/pool.py), so `_pooling_grad` never sees lp.

The gradients gather instead of scattering, so every store is to a distinct element and the
kernels parallelise without atomics (and render to CUDA unchanged):

- `_pooling_grad` (avg, sum): each input position sums the output gradient of the windows
  that cover it, divided by their counts. Along each axis, input positions fall into segments
  (a residue class modulo the stride, cut where the border clipping changes) whose covering
  windows are the same relative to them, so each segment is again a static formula.
- `_pooling_grad` (max): input position i receives window o's gradient when i is o's first
  maximum in row-major order (the reference's np.argmax rule): every tap before i is smaller,
  every tap after it no larger. That is a static set of comparisons per covering window,
  recomputed per input position instead of storing the argmax (no scratch, no second pass);
  global max pooling, whose one window covers everything, finds its first maximum per image
  with two reductions instead. A padding tap before i counts as -inf, as in the reference.
- `_max_pool_gather`: per window, the value at its first maximum (a select chain over the
  taps, last to first).
"""
from __future__ import annotations

import itertools
import math

from graphc.ops import scalar as S
from graphc.ops.declarations.elementwise import _cbrt_formula
from graphc.ops.graph import Node

from .kernel_ir import AccRef, Accumulate, Buf, DeclareAcc, Index, Kernel, Load, Loop, LoopVar, Store
from .conv import contiguous, vector_spans, PARALLEL_WORK

# windows with at most this many taps are one formula; larger ones are a reduction loop
UNROLL_TAPS = 27
# the widest vector register of the CPUs we compile for (AVX-512): the forward kernel's
# innermost loops run m * lanes + 1 iterations (`_vector_pieces`); on narrower vectors that is
# still whole vectors and one scalar iteration
VECTOR_BYTES = 64
# max pooling's gradients compare every tap of a window with the candidate: windows up to this
# many taps (7x7, 4x4x4) compile; larger, non-global windows run on the host
MAX_COMPARE_TAPS = 64
# the gradient of avg/sum pooling: at most this many covering windows per input position
MAX_COVERING = 256


def _spatial(value, nd, default):
    if value is None or value == ():
        return (default,) * nd
    value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    return value * nd if len(value) == 1 and nd > 1 else value


def pool_params(node: Node):
    """(pool_type, kernel, stride, pad, count_include_pad) or None when the node is not native."""
    if node.op != "Pooling" or len(node.inputs) != 1 or len(node.types) != 1:
        return None
    return _window_params(node.attrs, node.inputs[0].type, node.types[0])


def _window_params(a, x, y):
    """(pool_type, kernel, stride, pad, count_include_pad) of windows over data `x` making `y`."""
    if x.dtype not in ("float32", "float64") or y.dtype != x.dtype or x.ndim < 3 or y.ndim != x.ndim:
        return None
    if a.get("layout") not in (None, "NCW", "NCHW", "NCDHW"):
        return None
    ptype = a.get("pool_type", "max")
    conv = a.get("pooling_convention", "valid")
    # 'same' differs from 'valid'/'full' only in the output count, which the kernels take from
    # the output's shape: windows start at o*stride - pad and are clipped alike
    if ptype not in ("max", "avg", "sum", "lp") or conv not in ("valid", "full", "same"):
        return None
    if ptype == "lp" and a.get("p_value") not in (1, 2, 3):
        return None         # other powers: x**p and its root stay with the reference's pow
    nd = x.ndim - 2
    if a.get("global_pool", False):
        kernel, stride, pad = tuple(x.shape[2:]), (1,) * nd, (0,) * nd
    else:
        kernel = _spatial(a.get("kernel"), nd, 1)
        stride, pad = _spatial(a.get("stride"), nd, 1), _spatial(a.get("pad"), nd, 0)
    if not (len(kernel) == len(stride) == len(pad) == nd):
        return None
    cip = a.get("count_include_pad", True)
    return ptype, kernel, stride, pad, True if cip is None else bool(cip)


def is_native_pool(node: Node) -> bool:
    return pool_params(node) is not None


def pool_grad_params(node: Node):
    """pool_params of a `_pooling_grad` (ograd, data, output) or `_max_pool_gather` (values,
    data) node that lowers natively, else None."""
    if node.op == "_pooling_grad" and len(node.inputs) == 3:
        g, x, y = (v.type for v in node.inputs)
        if g != y or node.types[0] != x:
            return None
        params = _window_params(node.attrs, x, y)
    elif node.op == "_max_pool_gather" and len(node.inputs) == 2:
        h, x = (v.type for v in node.inputs)
        if h != x or node.types[0].dtype != x.dtype:
            return None
        params = _window_params(node.attrs, x, node.types[0])
        if params is not None and params[0] != "max":
            return None
    else:
        return None
    if params is not None and params[0] == "lp":
        return None         # lp's gradient is built from sum pooling's (ops/declarations/pool.py)
    if params is None or _max_covering(params, node.inputs[0].type.shape[2:] if node.op == "_pooling_grad"
                                       else node.types[0].shape[2:]) > MAX_COVERING:
        return None
    if params[0] != "max":
        return params
    taps = math.prod(params[1])
    if node.op == "_pooling_grad" and _is_global(node.inputs[1].type.shape[2:], params):
        return params if math.prod(node.inputs[1].type.shape[2:]) < 2 ** 24 else None   # exact float positions
    return params if taps <= MAX_COMPARE_TAPS else None


def _max_covering(params, outsz) -> int:
    _, kernel, stride, _, _ = params
    return math.prod(min(-(-k // s), o) for k, s, o in zip(kernel, stride, outsz))


def segments(out_len, in_len, k, s, p):
    """[(first output, count, first tap, end tap, padded window extent)] along one axis."""
    segs = []
    for o in range(out_len):
        start = o * s - p
        end_pad = min(start + k, in_len + p)
        lo, hi = max(start, 0), min(end_pad, in_len)
        key = (lo - start, max(lo, hi) - start, end_pad - start)
        if segs and segs[-1][2:] == key and segs[-1][0] + segs[-1][1] == o:
            segs[-1] = (segs[-1][0], segs[-1][1] + 1) + key
        else:
            segs.append((o, 1) + key)
    return segs


def pool_kernel(name, node: Node, x="in0", out="out") -> Kernel:
    ptype, kernel, stride, pad, cip = pool_params(node)
    xt, yt = node.inputs[0].type, node.types[0]
    per_axis = [segments(o, i, k, s, p) for o, i, k, s, p in zip(yt.shape[2:], xt.shape[2:], kernel, stride, pad)]
    return _window_kernel(name, ptype, kernel, stride, pad, cip, per_axis, xt, yt, x, out,
                          p=node.attrs.get("p_value"))


def _lp_power(v, p):
    return v if p == 1 else v * v if p == 2 else v * v * v


def _lp_root(acc, p):
    return acc if p == 1 else S.sqrt(acc) if p == 2 else _cbrt_formula(acc)


def _window_max(vals):
    """The maximum of a window's taps, NaN when any tap is NaN (np.max, the reference).

    Not a chain of `max`: that renders as llvm.maximum, which x86 has no instruction for (it
    must propagate NaN and order -0 below +0), so each one lowered to six (sign test, two
    blends, maxps, unordered compare, blend) and a 3x3 max pool ran 3x slower than the avg
    pool of the same loads. Here the maximum is a tree of select(a > b, a, b), one maxps
    each, and NaN is an `or` of unordered self-compares (LLVM folds them pairwise into one
    compare) that picks NaN once at the end. Which of -0 and +0 a tie yields is unspecified,
    as it is for np.max."""
    if len(vals) == 1:
        return vals[0]
    level = list(vals)
    while len(level) > 1:
        pairs = [S.select(S.call("gt", a, b), a, b) for a, b in zip(level[::2], level[1::2])]
        level = pairs + level[2 * len(pairs):]
    nan = None
    for v in vals:
        c = S.call("ne", v, v)
        nan = c if nan is None else S.call("or", nan, c)
    return S.select(nan, S.const(float("nan"), vals[0].dtype), level[0])


def _planes(x, y):
    """(planes, input and output spatial sizes, their element counts, their contiguous strides,
    spatial rank) of a pooling between images x and y (TensorTypes, N x C x spatial)."""
    insz, outsz = x.shape[2:], y.shape[2:]
    return (x.shape[0] * x.shape[1], insz, outsz, math.prod(insz), math.prod(outsz),
            contiguous(insz), contiguous(outsz), len(insz))


def _window_kernel(name, ptype, kernel, stride, pad, cip, per_axis, xt, yt, x="in0", out="out", p=None) -> Kernel:
    """One kernel over windows along each axis as `segments` describes them. Per image, the
    loops follow the segments axis by axis (a 2-D pool sweeps its rows once, each row's border
    and interior segments one after the other); the innermost segments are cut into
    `_vector_pieces`. lp pooling (p = 1, 2, 3) sums the taps' p-th powers and takes the root
    (padding taps are 0, as in the reference)."""
    dt = xt.dtype
    nc, insz, outsz, inp, outp, ist, ost, nd = _planes(xt, yt)
    ovars = [f"o{d}" for d in range(nd)]
    tvars = [f"t{d}" for d in range(nd)]
    kind = "max" if ptype == "max" else "sum"
    lanes = VECTOR_BYTES // (8 if dt == "float64" else 4)

    def window(combo):
        """The statements for one output position of the segments `combo` (one per axis)."""
        dst = Index((("nc", outp),) + tuple((v, st) for v, st in zip(ovars, ost)),
                    sum(c[0] * st for c, st in zip(combo, ost)))
        taps = [range(c[2], c[3]) for c in combo]
        ntaps = math.prod(len(t) for t in taps)
        count = math.prod((c[4] if cip else c[3] - c[2]) for c in combo)

        def src(tap_offsets, tap_vars=()):
            terms = (("nc", inp),) + tuple((v, s * st) for v, s, st in zip(ovars, stride, ist))
            terms += tuple((v, st) for v, st in zip(tap_vars, ist))
            off = sum((c[0] * s - p + t) * st for c, s, p, t, st in zip(combo, stride, pad, tap_offsets, ist))
            return Index(terms, off)

        def finish(acc):
            if ntaps == 0:
                return S.const(float("-inf") if kind == "max" else 0.0, dt)
            if ptype == "lp":
                return _lp_root(acc, p)
            return acc / S.const(float(count), dt) if ptype == "avg" else acc

        if ntaps <= UNROLL_TAPS:
            loads = tuple(Load(x, src(t)) for t in itertools.product(*taps))
            vals = [S.arg(j, dt) for j in range(len(loads))]
            if ptype == "lp":
                vals = [_lp_power(v, p) for v in vals]
            if kind == "max":
                expr = _window_max(vals) if vals else None
            else:
                expr = None
                for a in vals:
                    expr = a if expr is None else expr + a
            return [Store(out, dst, finish(expr), loads)]
        tap = _lp_power(S.arg(0, dt), p) if ptype == "lp" else S.arg(0, dt)
        acc = Accumulate("acc", kind, tap, (Load(x, src([t.start for t in taps], tvars)),))
        loop = [acc]
        for v, t in reversed(list(zip(tvars, taps))):
            loop = [Loop(v, len(t), loop)]
        return [DeclareAcc("acc", dt, kind)] + loop + [Store(out, dst, finish(S.arg(0, dt)), (AccRef("acc"),))]

    def nest(d, combo):
        if d < nd - 1:
            return [Loop(ovars[d], seg[1], nest(d + 1, combo + (seg,))) for seg in per_axis[d]]
        return [Loop(ovars[d], piece[1], window(combo + (piece,)))
                for seg in per_axis[d] for piece in _vector_pieces(seg, lanes)]

    work = nc * outp * max(1, math.prod(kernel))
    loop = Loop("nc", nc, nest(0, ()), parallel=work >= PARALLEL_WORK and nc > 1, independent=True)
    return Kernel(name, [Buf(out, dt, yt.size), Buf(x, dt, xt.size)], [loop], work)


def _vector_pieces(seg, lanes):
    """An innermost segment (`segments`' tuple) as the segments of the loops that cover it:
    itself when it is at most lanes + 1 long, else one of m * lanes + 1 positions and, if that
    leaves some, one of its last lanes + 1 (55 positions, 16 lanes: 0-48 and 38-54, so 11 are
    computed twice).

    Why: a strided window reads an interleaved group with a gap at its end (a 3-tap window
    at stride 2 uses x[2o], x[2o+1] and x[2o+2] = x[2(o+1)]), so LLVM's vectoriser must leave
    at least one iteration scalar, lest the last wide load read past the data. On a plain
    55-iteration row it left a 4-wide and three scalar iterations, about as costly as the 48
    vector ones for a 3x3 pool; a 48-iteration row it may split into 32 vector and 16 scalar.
    A trip count of m * lanes + 1 ends in exactly one scalar iteration (checked in the
    optimised IR for 2x2 and 3x3 windows, strides 1 and 2, float32 and float64). Computing a
    position twice is harmless: a window only reads the input and writes its own output."""
    return [(seg[0] + start, count) + seg[2:] for start, count in vector_spans(seg[1], lanes)]


# -- gradients -------------------------------------------------------------------------------------

def _is_global(insz, params):
    _, kernel, stride, pad, _ = params
    return tuple(kernel) == tuple(insz) and not any(pad)


def _covering(i, n, out_len, k, s, p):
    """The windows covering input position i along one axis, by increasing tap index t:
    [(o, t, padded extent, data extent, first data tap, end data tap)]."""
    res = []
    for t in range(k):
        q = i + p - t
        if q % s or not 0 <= q // s < out_len:
            continue
        o = q // s
        start = o * s - p
        end_pad = min(start + k, n + p)
        lo, hi = max(start, 0), min(end_pad, n)
        res.append((o, t, max(end_pad - start, 1), max(hi - lo, 1), lo - start, min(start + k, n) - start))
    return tuple(res)


def input_segments(n, out_len, k, s, p, taps=True):
    """Input positions along one axis grouped so that each group's covering windows are the same
    relative to it: [(first input, count, output step, covering)], the group's inputs
    first + s*j and its windows (o + step*j, ...) for j < count (step 1: the windows move with
    the input; 0: global pooling, one window for all). taps=False: where the input lies in its
    windows does not matter (avg, sum; max compares taps), so those fields are 0 and more
    positions group (global pooling: all of them)."""
    table = [_covering(i, n, out_len, k, s, p) for i in range(n)]
    if not taps:
        table = [tuple((e[0], 0, e[2], e[3], 0, 0) for e in entries) for entries in table]
    return _group_inputs(table, s)


def _group_inputs(table, s):
    n = len(table)

    def shifted(entries, m, step):
        return tuple((e[0] + step * m,) + e[1:] for e in entries)

    segs = []
    for r in range(min(s, n)):
        i0 = r
        while i0 < n:
            e0 = table[i0]
            step, count = 1, 1
            if i0 + s < n:
                nxt = table[i0 + s]
                step = 1 if nxt == shifted(e0, 1, 1) else 0 if nxt == shifted(e0, 1, 0) else None
                if step is None:
                    step = 1
                else:
                    while i0 + s * count < n and table[i0 + s * count] == shifted(e0, count, step):
                        count += 1
            segs.append((i0, count, step, e0))
            i0 += s * count
    return segs


def _geometry(node):
    x, y = node.inputs[1].type, (node.inputs[2].type if node.op == "_pooling_grad" else node.types[0])
    return x, y, x.shape[0] * x.shape[1], x.shape[2:], y.shape[2:]


def pool_grad_kernel(name, node: Node) -> Kernel:
    """The data gradient of Pooling (`_pooling_grad`: in0 the output gradient, in1 the data) as
    one gather kernel: out[i] = sum over the windows covering i of their contribution."""
    params = pool_grad_params(node)
    ptype, kernel, stride, pad, cip = params
    x, y, nc, insz, outsz = _geometry(node)
    if ptype == "max" and _is_global(insz, params):
        return _global_max_grad_kernel(name, x, nc, math.prod(insz))
    per_axis = [input_segments(n, o, k, s, p, ptype == "max") for n, o, k, s, p in zip(insz, outsz, kernel, stride, pad)]
    return _gather_grad_kernel(name, ptype, cip, kernel, stride, per_axis, x, y)


def _gather_grad_kernel(name, ptype, cip, kernel, stride, per_axis, x, y) -> Kernel:
    """out[i] (data-shaped) = sum, over the windows that `per_axis` (input_segments) says cover
    i, of in0 at the window: divided by its count (avg), or where i is its first maximum of
    in1 (max)."""
    dt = x.dtype
    nc, insz, outsz, inp, outp, ist, ost, nd = _planes(x, y)
    jvars = [f"j{d}" for d in range(nd)]
    body, nests = [], {}
    for combo in itertools.product(*per_axis):
        jterms = tuple((v, s * st) for v, s, st in zip(jvars, stride, ist))
        base = sum(seg[0] * st for seg, st in zip(combo, ist))
        here = Index((("nc", inp),) + jterms, base)
        args, slots = [], {}

        def arg(buf, index, dtype=dt):
            key = (buf, index)
            if key not in slots:
                slots[key] = len(args)
                args.append(Load(buf, index))
            return S.arg(slots[key], dtype)

        def gout(entries):
            terms = (("nc", outp),) + tuple((v, seg[2] * st) for v, seg, st in zip(jvars, combo, ost))
            return arg("in0", Index(terms, sum(e[0] * st for e, st in zip(entries, ost))))

        expr = None
        for entries in itertools.product(*(seg[3] for seg in combo)):     # by increasing tap: the
            g = gout(entries)                                             # reference's summation order
            if ptype == "avg":
                g = g / S.const(float(math.prod(e[2] if cip else e[3] for e in entries)), dt)
            elif ptype == "max":
                cond = _first_max_condition(entries, kernel, ist, here, arg)
                g = g if cond is None else S.select(cond, g, 0.0)
            expr = g if expr is None else expr + g
        if expr is None:
            expr = S.const(0.0, dt)
        nests.setdefault(tuple(seg[1] for seg in combo), []).append(Store("out", here, expr, tuple(args)))
    # segments with equal trip counts share one loop nest: the residue classes of a strided pool
    # then store side by side (an interleaved group LLVM vectorises) instead of in separate
    # strided sweeps
    for counts, stores in nests.items():
        inner = stores
        for v, n in reversed(list(zip(jvars, counts))):
            inner = [Loop(v, n, inner)]
        body.extend(inner)
    covering = max(math.prod(len(seg[3]) for seg in combo) for combo in itertools.product(*per_axis))
    work = nc * inp * (1 + covering * (math.prod(kernel) if ptype == "max" else 1))
    loop = Loop("nc", nc, body, parallel=work >= PARALLEL_WORK and nc > 1, independent=True)
    bufs = [Buf("out", dt, x.size), Buf("in0", dt, y.size)] + ([Buf("in1", dt, x.size)] if ptype == "max" else [])
    return Kernel(name, bufs, [loop], work)


def _first_max_condition(entries, kernel, ist, here, arg):
    """Whether the input position `here` (of buffer in1) is the first maximum, in row-major
    order, of the window `entries` describes (per axis: its tap t and data taps [lo, hi)):
    every data tap before it smaller, every one after no larger, and, when the window has
    padding before it (-inf in the reference), itself above -inf. None when it is alone."""
    t = tuple(e[1] for e in entries)
    xi = arg("in1", here)
    conds, pad_before = [], False
    for u in itertools.product(*(range(k) for k in kernel)):
        if u == t:
            continue
        if not all(e[4] <= ud < e[5] for e, ud in zip(entries, u)):
            pad_before = pad_before or u < t
            continue
        xu = arg("in1", Index(here.terms, here.offset + sum((ud - td) * st for ud, td, st in zip(u, t, ist))))
        conds.append(S.call("lt" if u < t else "le", xu, xi))
    if pad_before:
        conds.append(S.call("gt", xi, S.const(float("-inf"), xi.dtype)))
    cond = None
    for c in conds:
        cond = c if cond is None else S.call("and", cond, c)
    return cond


def _global_max_grad_kernel(name, x, nc, size) -> Kernel:
    """Global max pooling's gradient, per image: the maximum, the first position holding it
    (a min-reduction over positions that hold it, as exact floats), then the gradient there."""
    dt = x.dtype
    at = Index((("nc", size), ("s", 1)))
    pos = S.cast(S.arg(1, "int64"), dt)
    body = [DeclareAcc("m", dt, "max"),
            Loop("s", size, [Accumulate("m", "max", S.arg(0, dt), (Load("in1", at),))]),
            DeclareAcc("first", dt, "min"),
            Loop("s", size, [Accumulate("first", "min", S.select(S.call("eq", S.arg(0, dt), S.arg(2, dt)), pos,
                                                                   float(size)),
                                        (Load("in1", at), LoopVar("s"), AccRef("m")))]),
            Loop("s", size, [Store("out", at, S.select(S.call("eq", pos, S.arg(2, dt)), S.arg(0, dt), 0.0),
                                   (Load("in0", Index((("nc", 1),))), LoopVar("s"), AccRef("first")))])]
    work = 3 * nc * size
    loop = Loop("nc", nc, body, parallel=work >= PARALLEL_WORK and nc > 1, independent=True)
    return Kernel(name, [Buf("out", dt, x.size), Buf("in0", dt, nc), Buf("in1", dt, x.size)], [loop], work)


def max_pool_gather_kernel(name, node: Node) -> Kernel:
    """`_max_pool_gather` (in0 the values, in1 the data): per window, the value at the data's
    first maximum; a select chain over the window's taps from the last to the first, padding
    (-inf data, 0 values in the reference) included."""
    _, kernel, stride, pad, _ = pool_grad_params(node)
    x, y, nc, insz, outsz = _geometry(node)
    dt = x.dtype
    inp, outp = math.prod(insz), math.prod(outsz)
    ist, ost = contiguous(insz), contiguous(outsz)
    ovars = [f"o{d}" for d in range(len(insz))]
    per_axis = [segments(o, i, k, s, p) for o, i, k, s, p in zip(outsz, insz, kernel, stride, pad)]
    body = []
    for combo in itertools.product(*per_axis):
        dst = Index((("nc", outp),) + tuple((v, st) for v, st in zip(ovars, ost)),
                    sum(c[0] * st for c, st in zip(combo, ost)))
        terms = (("nc", inp),) + tuple((v, s * st) for v, s, st in zip(ovars, stride, ist))
        args = []
        taps = []
        for u in itertools.product(*(range(k) for k in kernel)):
            if all(c[2] <= ud < c[3] for c, ud in zip(combo, u)):
                at = Index(terms, sum((c[0] * s - p + ud) * st for c, s, p, ud, st in zip(combo, stride, pad, u, ist)))
                args += [Load("in1", at), Load("in0", at)]
                taps.append((S.arg(len(args) - 2, dt), S.arg(len(args) - 1, dt)))
            else:
                taps.append(None)
        data = [t for t in taps if t is not None]
        if not data:
            expr = S.const(0.0, dt)
        else:
            m = data[0][0]
            for xu, _ in data[1:]:
                m = S.call("max", m, xu)
            expr = S.const(0.0, dt)
            for tap in reversed(taps):
                if tap is None:
                    expr = S.select(S.call("eq", m, S.const(float("-inf"), dt)), 0.0, expr)
                else:
                    expr = S.select(S.call("eq", tap[0], m), tap[1], expr)
        inner = [Store("out", dst, expr, tuple(args))]
        for v, c in reversed(list(zip(ovars, combo))):
            inner = [Loop(v, c[1], inner)]
        body.extend(inner)
    work = nc * outp * 3 * math.prod(kernel)
    loop = Loop("nc", nc, body, parallel=work >= PARALLEL_WORK and nc > 1, independent=True)
    return Kernel(name, [Buf("out", dt, y.size), Buf("in0", dt, x.size), Buf("in1", dt, x.size)], [loop], work)


# -- adaptive average pooling: bins [floor(o n / out), ceil((o + 1) n / out)) ------------------------

def _bins(n, out_len):
    return [((o * n) // out_len, -(-((o + 1) * n) // out_len)) for o in range(out_len)]


def _bin_step(n, out_len):
    """The stride of the bins' starts when it is constant (it is whenever out divides n), else 1."""
    starts = [lo for lo, _ in _bins(n, out_len)]
    steps = {b - a for a, b in zip(starts, starts[1:])}
    return steps.pop() if len(steps) == 1 else 1


def _bin_segments(n, out_len):
    """`segments` for adaptive bins, as windows of stride _bin_step and no padding."""
    s = _bin_step(n, out_len)
    segs = []
    for o, (lo, hi) in enumerate(_bins(n, out_len)):
        key = (lo - o * s, hi - o * s, hi - lo)
        if segs and segs[-1][2:] == key and segs[-1][0] + segs[-1][1] == o:
            segs[-1] = (segs[-1][0], segs[-1][1] + 1) + key
        else:
            segs.append((o, 1) + key)
    return segs


def _adaptive_ok(x, y) -> bool:
    return x.dtype in ("float32", "float64") and y.dtype == x.dtype and x.ndim == 4 == y.ndim


def is_native_adaptive_pool(node: Node) -> bool:
    """`_contrib_AdaptiveAvgPooling2D` or its gradient `_adaptive_avg_pool_grad`, natively."""
    if node.op == "_contrib_AdaptiveAvgPooling2D" and len(node.inputs) == 1:
        return _adaptive_ok(node.inputs[0].type, node.types[0])
    if node.op == "_adaptive_avg_pool_grad" and len(node.inputs) == 1:
        x, y = node.types[0], node.inputs[0].type
        return _adaptive_ok(x, y) and math.prod(
            max(len(c) for c in _bin_table(n, o)) for n, o in zip(x.shape[2:], y.shape[2:])) <= MAX_COVERING
    return False


def _bin_table(n, out_len):
    """Per input position: the bins holding it, as _covering's entries (no padding)."""
    table = [[] for _ in range(n)]
    for o, (lo, hi) in enumerate(_bins(n, out_len)):
        for i in range(lo, hi):
            table[i].append((o, 0, hi - lo, hi - lo, 0, 0))
    return [tuple(sorted(e, key=lambda c: c[1])) for e in table]


def adaptive_pool_kernel(name, node: Node) -> Kernel:
    """Adaptive average pooling forward (in0 the data) or its gradient (in0 the output gradient),
    through the window kernels above with the bins as windows."""
    if node.op == "_contrib_AdaptiveAvgPooling2D":
        xt, yt = node.inputs[0].type, node.types[0]
        ins, outs = xt.shape[2:], yt.shape[2:]
        steps = tuple(_bin_step(n, o) for n, o in zip(ins, outs))
        kernel = tuple(max(hi - lo for lo, hi in _bins(n, o)) for n, o in zip(ins, outs))
        per_axis = [_bin_segments(n, o) for n, o in zip(ins, outs)]
        return _window_kernel(name, "avg", kernel, steps, (0, 0), True, per_axis, xt, yt)
    xt, yt = node.types[0], node.inputs[0].type
    ins, outs = xt.shape[2:], yt.shape[2:]
    steps = tuple(_bin_step(n, o) for n, o in zip(ins, outs))
    kernel = tuple(max(hi - lo for lo, hi in _bins(n, o)) for n, o in zip(ins, outs))
    per_axis = [_group_inputs(_bin_table(n, o), s) for n, o, s in zip(ins, outs, steps)]
    return _gather_grad_kernel(name, "avg", True, kernel, steps, per_axis, xt, yt)


__all__ = ["pool_kernel", "pool_params", "is_native_pool", "segments", "pool_grad_params", "pool_grad_kernel",
           "max_pool_gather_kernel", "input_segments", "is_native_adaptive_pool", "adaptive_pool_kernel"]
