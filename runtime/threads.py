"""One persistent worker pool per process, in native code, shared by every compiled program.

The pool is a small LLVM module (built here with llvmlite's IR builder, JIT-compiled once per
process into its own MCJIT engine, no C compiler involved) that calls libc's pthread_create and
the futex system call. Its entry point is registered with LLVM's symbol table as

    void graphc_pool_run(void (*kernel)(i8** bufs, i64 start, i64 end), i8** bufs, i64 n, i64 nt)

and generated programs call it for every parallel kernel. A call:

- splits [0, n) into at most `nt` contiguous chunks (64-iteration boundaries for long loops);
- publishes (kernel, bufs, chunking) and a new generation in one 64-bit word
  `next = generation << 32 | next unclaimed chunk`, bumps the futex word and wakes parked
  workers (a FUTEX_WAKE only when some worker is parked);
- claims chunks itself like any worker (compare-and-swap on `next`, so a chunk runs exactly once
  and a worker that wakes late finds nothing left rather than stale work), then waits until the
  `done` counter reaches the number of chunks.

Workers (nt_max - 1 threads, started on first use and only ever grown, never one per program)
spin briefly (`pause`) on the futex word after each dispatch, then park in FUTEX_WAIT. A caller
that finds the pool busy (a second Python thread running a program, or the same program on
another arena, at the same moment; or a kernel already running on the pool) runs its kernel
serially instead of waiting: the busy flag is taken by compare-and-swap before anything is
published, so one dispatch's kernel, buffers and chunking are never mixed with another's, and a
caller never waits on a pool that waits on it. After os.fork() the child forgets the parent's
workers and starts its own on first use.

One owner for the cores: graphc's own OpenBLAS (scipy-openblas32; numpy bundles a separate
copy that this does not touch) is set to BLAS_THREADS = 1 thread when it is loaded, and
GEMMs of at least GEMM_SPLIT_WORK flops are split by graphc across this pool (row blocks of C,
column blocks of C, or whole matrices of a batch; render_llvm.gemm_split_dim). Measured on the
2-core machine under load from other processes, OpenBLAS's own threads busy-wait after each
call and fight the pool's workers (ResNet-18 batch 1: 60-330 ms medians with OpenBLAS at 2
threads vs 41-44 ms this way; an MLP batch-256 train step 45-170 ms vs 9-10 ms), and on a quiet
machine the split is as fast (12.3-12.8 ms vs 13.7-14.2 ms, 3.0-3.2 ms vs 3.0-3.2 ms).

Devices: one pool per CPU device (runtime/cpu_devices.py splits the cores). The module is built
once per device, each a separate MCJIT module with its own (internal) globals, exporting
`graphc_pool_run` for cpu(0) and `graphc_pool_run_d{k}` for cpu(k); a program compiled for cpu(k)
calls its device's symbol (the symbol is part of its cache key), so programs of different devices
never share workers, a busy flag or chunk counters, and run at the same time. When the layout
has more than one device, each pool's workers pin themselves to their device's cores
(sched_setaffinity on the calling thread; a worker re-checks a mask generation each time it
wakes, so a layout that grows re-pins them) and the pool caps a dispatch's thread count at the
device's size (a program compiled before the split asks for more). With one device nothing is
pinned and the cap is MAX_THREADS: the single-device pool is the pool as it always was.

Settings (environment, read when a program is built): GRAPHC_NUM_THREADS (threads per
program), GRAPHC_BLAS_THREADS (0 leaves OpenBLAS's default), GRAPHC_GEMM_SPLIT_WORK (flops;
'none' lets OpenBLAS thread GEMMs itself), GRAPHC_POOL_SPIN (pause iterations before parking),
GRAPHC_POOL_CHUNKS (pieces per thread), GRAPHC_POOL_JOIN_SPIN, GRAPHC_CPU_DEVICES (the core split).
"""
from __future__ import annotations

import ctypes
import os
import threading

import llvmlite.binding as llvm
import llvmlite.ir as ir

from . import cpu_devices

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
VOID = ir.VoidType()
I8P = I8.as_pointer()
I8PP = I8P.as_pointer()
KERNEL_FN = ir.FunctionType(VOID, [I8PP, I64, I64])
POOL_RUN_FN = ir.FunctionType(VOID, [KERNEL_FN.as_pointer(), I8PP, I64, I64])
POOL_RUN = "graphc_pool_run"
MAX_THREADS = 64
MASK_WORDS = 16          # cpu_set_t of 1024 cores, as glibc's
SYS_FUTEX = {"x86_64": 202, "aarch64": 98}
FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 128, 129
# pause iterations a worker spins on the futex word before parking; GRAPHC_POOL_SPIN overrides,
# 0 parks at once. A `pause` takes about 10 ns on Sapphire Rapids and 20-40 ns on Zen/Skylake, so
# 4000 spin for 40-160 µs: longer than the Python between two calls of a small program (W2, batch-1
# MLP: about 10 µs), so the worker is still awake for the next call; waking a parked worker costs
# about 50 µs (W2 measured 75-85 µs per call with 1000 spins, 20-22 with 3000; helper B3, chrt'd)
DEFAULT_SPIN = 4000
# caller's join: pause iterations before it starts yielding the core (a preempted worker holds a chunk)
JOIN_SPIN = int(os.environ.get("GRAPHC_POOL_JOIN_SPIN", 2000))
CHUNKS_PER_THREAD = int(os.environ.get("GRAPHC_POOL_CHUNKS", 4))

GEMM_SPLIT_WORK = 1 << 18   # W2's 784x512 and 512x512 GEMVs split: 50/40 -> 42/29 us (2 alternating runs)
BLAS_THREADS = 1
_lock = threading.Lock()
_state = {}              # cpu(0)'s pool (the process-wide pool of single-device programs)
_pools = {0: _state}     # device index -> its pool's state


def pool_symbol(device: int = 0) -> str:
    """The exported entry of cpu(device)'s pool, which that device's programs call."""
    return POOL_RUN if device == 0 else f"{POOL_RUN}_d{device}"


def _c(t, v):
    return ir.Constant(t, v)


def _gvar(m, name, ty, init=0):
    g = ir.GlobalVariable(m, ty, name)
    g.linkage = "internal"
    g.initializer = ir.Constant(ty, init if not isinstance(ty, ir.PointerType) else None)
    g.align = 64
    return g


def _build_module(triple: str, data_layout: str, suffix: str = "") -> str:
    """The pool's LLVM IR; every exported name ends in `suffix` (one module per device)."""
    m = ir.Module(name="graphc_pool" + suffix)
    m.triple, m.data_layout = triple, data_layout
    x86 = triple.startswith("x86_64")
    arch = "x86_64" if x86 else "aarch64"
    kptr = KERNEL_FN.as_pointer()
    nxt = _gvar(m, "pool.next", I64)          # generation << 32 | next unclaimed chunk
    seq = _gvar(m, "pool.seq", I32)           # futex word: the generation
    sleepers = _gvar(m, "pool.sleepers", I32)
    done = _gvar(m, "pool.done", I64)
    busy = _gvar(m, "pool.busy", I32)
    workers = _gvar(m, "pool.workers", I32)
    spin = _gvar(m, "pool.spin", I32, DEFAULT_SPIN)
    g_kernel = _gvar(m, "pool.kernel", kptr)
    g_bufs = _gvar(m, "pool.bufs", I8PP)
    g_n = _gvar(m, "pool.n", I64)
    g_chunk = _gvar(m, "pool.chunk", I64)
    g_nchunks = _gvar(m, "pool.nchunks", I64)
    limit = _gvar(m, "pool.limit", I32, MAX_THREADS)     # the device's thread count (dispatches cap nt)
    mask_ty = ir.ArrayType(I64, MASK_WORDS)
    mask = ir.GlobalVariable(m, mask_ty, "pool.mask")    # the device's cores (a cpu_set_t)
    mask.linkage = "internal"
    mask.initializer = ir.Constant(mask_ty, [0] * MASK_WORDS)
    mask.align = 64
    maskgen = _gvar(m, "pool.maskgen", I32)              # 0: unpinned; bumped by each new mask

    syscall = ir.Function(m, ir.FunctionType(I64, [I64], var_arg=True), "syscall")
    thread_ty = ir.FunctionType(I8P, [I8P])
    pcreate = ir.Function(m, ir.FunctionType(I32, [I64.as_pointer(), I8P, thread_ty.as_pointer(), I8P]),
                          "pthread_create")
    pdetach = ir.Function(m, ir.FunctionType(I32, [I64]), "pthread_detach")
    yield_ = ir.Function(m, ir.FunctionType(I32, []), "sched_yield")
    setaff = ir.Function(m, ir.FunctionType(I32, [I32, I64, I8P]), "sched_setaffinity")
    if x86:
        pause_fn = ir.Function(m, ir.FunctionType(VOID, []), "llvm.x86.sse2.pause")
    else:
        pause_fn = None

    def pause(b):
        if pause_fn is not None:
            b.call(pause_fn, [])

    def load(b, g, order="seq_cst"):
        return b.load_atomic(g, order, g.type.pointee.width // 8 if isinstance(g.type.pointee, ir.IntType) else 8)

    def store(b, v, g, order="seq_cst"):
        b.store_atomic(v, g, order, g.type.pointee.width // 8 if isinstance(g.type.pointee, ir.IntType) else 8)

    # -- claim: run unclaimed chunks of the current generation until none are left ----------------
    claim = ir.Function(m, ir.FunctionType(VOID, []), "pool.claim")
    claim.linkage = "internal"
    b = ir.IRBuilder(claim.append_basic_block("entry"))
    top = claim.append_basic_block("top")
    run = claim.append_basic_block("run")
    out = claim.append_basic_block("out")
    b.branch(top)
    b.position_at_end(top)
    v = load(b, nxt)
    idx = b.and_(v, _c(I64, 0xFFFFFFFF))
    nc = load(b, g_nchunks)
    more = b.icmp_unsigned("<", idx, nc)
    tryb = claim.append_basic_block("try")
    b.cbranch(more, tryb, out)
    b.position_at_end(tryb)
    res = b.cmpxchg(nxt, v, b.add(v, _c(I64, 1)), "seq_cst", "seq_cst")
    ok = b.extract_value(res, 1)
    b.cbranch(ok, run, top)
    b.position_at_end(run)
    kfn = b.load(g_kernel)
    bufs = b.load(g_bufs)
    n = b.load(g_n)
    chunk = b.load(g_chunk)
    lo = b.mul(idx, chunk)
    hi = b.add(lo, chunk)
    hi = b.select(b.icmp_unsigned("<", hi, n), hi, n)
    b.call(kfn, [bufs, lo, hi])
    b.atomic_rmw("add", done, _c(I64, 1), "seq_cst")
    b.branch(top)
    b.position_at_end(out)
    b.ret_void()

    # -- a worker: wait for a new generation (spin, then futex), claim, repeat ----------------------
    worker = ir.Function(m, thread_ty, "pool.worker")
    worker.linkage = "internal"
    entry = worker.append_basic_block("entry")
    wait = worker.append_basic_block("wait")
    spinb = worker.append_basic_block("spin")
    park = worker.append_basic_block("park")
    work = worker.append_basic_block("work")
    b = ir.IRBuilder(entry)
    mine = b.alloca(I32)
    count = b.alloca(I32)
    pinned_gen = b.alloca(I32)
    b.store(_c(I32, 0), pinned_gen)
    b.store(load(b, seq), mine)

    def repin(b):
        # the device's mask changed since this worker last pinned itself: pin again
        gen = load(b, maskgen)
        with b.if_then(b.icmp_unsigned("!=", gen, b.load(pinned_gen)), likely=False):
            b.call(setaff, [_c(I32, 0), _c(I64, MASK_WORDS * 8), b.bitcast(mask, I8P)])
            b.store(gen, pinned_gen)
    repin(b)
    b.branch(wait)
    b.position_at_end(wait)
    b.store(_c(I32, 0), count)
    b.branch(spinb)
    b.position_at_end(spinb)
    cur = load(b, seq)
    changed = b.icmp_unsigned("!=", cur, b.load(mine))
    keep = spinb.parent.append_basic_block("keep")
    b.cbranch(changed, work, keep)
    b.position_at_end(keep)
    k = b.load(count)
    b.store(b.add(k, _c(I32, 1)), count)
    lim = load(b, spin, "monotonic")
    stay = worker.append_basic_block("stay")
    b.cbranch(b.icmp_signed("<", k, lim), stay, park)
    b.position_at_end(stay)
    pause(b)
    b.branch(spinb)
    b.position_at_end(park)
    b.atomic_rmw("add", sleepers, _c(I32, 1), "seq_cst")
    my = b.load(mine)
    still = b.icmp_unsigned("==", load(b, seq), my)
    sleep = worker.append_basic_block("sleep")
    woke = worker.append_basic_block("woke")
    b.cbranch(still, sleep, woke)
    b.position_at_end(sleep)
    b.call(syscall, [_c(I64, SYS_FUTEX[arch]), b.ptrtoint(seq, I64), _c(I64, FUTEX_WAIT_PRIVATE),
                     b.zext(my, I64), _c(I64, 0), _c(I64, 0), _c(I64, 0)])
    b.branch(woke)
    b.position_at_end(woke)
    b.atomic_rmw("sub", sleepers, _c(I32, 1), "seq_cst")
    b.branch(wait)
    b.position_at_end(work)
    b.store(load(b, seq), mine)
    repin(b)
    b.call(claim, [])
    b.branch(wait)

    # -- start workers up to want (called with the pool held) ---------------------------------------
    grow = ir.Function(m, ir.FunctionType(VOID, [I32]), "pool.grow")
    grow.linkage = "internal"
    b = ir.IRBuilder(grow.append_basic_block("entry"))
    tid = b.alloca(I64)
    loop = grow.append_basic_block("loop")
    body = grow.append_basic_block("body")
    fin = grow.append_basic_block("fin")
    b.branch(loop)
    b.position_at_end(loop)
    have = load(b, workers)
    b.cbranch(b.icmp_signed("<", have, grow.args[0]), body, fin)
    b.position_at_end(body)
    rc = b.call(pcreate, [tid, ir.Constant(I8P, None), worker, ir.Constant(I8P, None)])
    created = grow.append_basic_block("created")
    b.cbranch(b.icmp_signed("==", rc, _c(I32, 0)), created, fin)   # cannot start one: run with fewer
    b.position_at_end(created)
    b.call(pdetach, [b.load(tid)])
    store(b, b.add(have, _c(I32, 1)), workers)
    b.branch(loop)
    b.position_at_end(fin)
    b.ret_void()

    # -- graphc_pool_run ---------------------------------------------------------------------------
    fn = ir.Function(m, POOL_RUN_FN, POOL_RUN + suffix)
    kfn, bufs, n, nt = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    cap = b.zext(load(b, limit, "monotonic"), I64)
    nt = b.select(b.icmp_signed(">", nt, cap), cap, nt)
    serial = fn.append_basic_block("serial")
    tryp = fn.append_basic_block("try")
    go = fn.append_basic_block("go")
    b.cbranch(b.or_(b.icmp_signed("<=", nt, _c(I64, 1)), b.icmp_signed("<=", n, _c(I64, 1))), serial, tryp)
    b.position_at_end(serial)
    b.call(kfn, [bufs, _c(I64, 0), n])
    b.ret_void()
    b.position_at_end(tryp)
    got = b.extract_value(b.cmpxchg(busy, _c(I32, 0), _c(I32, 1), "acquire", "monotonic"), 1)
    b.cbranch(got, go, serial)     # another thread is dispatching: run this kernel here, whole
    b.position_at_end(go)
    ntc = b.select(b.icmp_signed(">", nt, _c(I64, MAX_THREADS)), _c(I64, MAX_THREADS), nt)
    want = b.trunc(b.sub(ntc, _c(I64, 1)), I32)
    with b.if_then(b.icmp_signed("<", load(b, workers, "monotonic"), want)):
        b.call(grow, [want])
    # CHUNKS_PER_THREAD pieces per thread, claimed dynamically: a worker the OS preempts (the
    # cores are shared) holds up only a small piece while the others take the rest
    parts = b.mul(ntc, _c(I64, CHUNKS_PER_THREAD))
    parts = b.select(b.icmp_unsigned(">=", n, b.mul(parts, _c(I64, 64))), parts, ntc)
    chunk = b.udiv(b.add(n, b.sub(parts, _c(I64, 1))), parts)
    # long loops split on 64-iteration boundaries (whole vectors, no shared cache lines);
    # short outer loops (a few rows of a large inner loop) split evenly
    rounded = b.and_(b.add(chunk, _c(I64, 63)), _c(I64, ~63))
    chunk = b.select(b.icmp_unsigned(">=", n, _c(I64, 4096)), rounded, chunk)
    nchunks = b.udiv(b.add(n, b.sub(chunk, _c(I64, 1))), chunk)
    b.store(kfn, g_kernel)
    b.store(bufs, g_bufs)
    b.store(n, g_n)
    b.store(chunk, g_chunk)
    store(b, _c(I64, 0), done)
    store(b, nchunks, g_nchunks)
    gen = b.add(load(b, seq), _c(I32, 1))
    store(b, b.shl(b.zext(gen, I64), _c(I64, 32)), nxt)
    store(b, gen, seq)
    with b.if_then(b.icmp_signed(">", load(b, sleepers), _c(I32, 0))):
        b.call(syscall, [_c(I64, SYS_FUTEX[arch]), b.ptrtoint(seq, I64), _c(I64, FUTEX_WAKE_PRIVATE),
                         b.zext(want, I64), _c(I64, 0), _c(I64, 0), _c(I64, 0)])
    b.call(claim, [])
    # join: every claimed chunk finished
    jl = fn.append_basic_block("join")
    jw = fn.append_basic_block("join.wait")
    jd = fn.append_basic_block("join.done")
    cnt = b.alloca(I32)
    b.store(_c(I32, 0), cnt)
    b.branch(jl)
    b.position_at_end(jl)
    b.cbranch(b.icmp_unsigned("<", load(b, done), nchunks), jw, jd)
    b.position_at_end(jw)
    c0 = b.load(cnt)
    b.store(b.add(c0, _c(I32, 1)), cnt)
    with b.if_else(b.icmp_signed("<", c0, _c(I32, JOIN_SPIN))) as (then, otherwise):
        with then:
            pause(b)
        with otherwise:
            b.call(yield_, [])
    b.branch(jl)
    b.position_at_end(jd)
    store(b, _c(I32, 0), busy, "release")
    b.ret_void()

    # -- control from Python: worker count, spin, fork reset ---------------------------------------
    f = ir.Function(m, ir.FunctionType(I32, []), "graphc_pool_workers" + suffix)
    b = ir.IRBuilder(f.append_basic_block("entry"))
    b.ret(load(b, workers))
    f = ir.Function(m, ir.FunctionType(VOID, [I32]), "graphc_pool_set_spin" + suffix)
    b = ir.IRBuilder(f.append_basic_block("entry"))
    store(b, f.args[0], spin)
    b.ret_void()
    f = ir.Function(m, ir.FunctionType(VOID, [I32]), "graphc_pool_set_limit" + suffix)
    b = ir.IRBuilder(f.append_basic_block("entry"))
    store(b, f.args[0], limit)
    b.ret_void()
    # the new mask, then a new generation: a worker that sees the generation pins to the mask
    f = ir.Function(m, ir.FunctionType(VOID, [I64.as_pointer()]), "graphc_pool_set_mask" + suffix)
    b = ir.IRBuilder(f.append_basic_block("entry"))
    for w in range(MASK_WORDS):
        src = b.gep(f.args[0], [_c(I64, w)])
        b.store(b.load(src), b.gep(mask, [_c(I32, 0), _c(I32, w)]))
    b.atomic_rmw("add", maskgen, _c(I32, 1), "seq_cst")
    b.ret_void()
    f = ir.Function(m, ir.FunctionType(VOID, []), "graphc_pool_after_fork" + suffix)
    b = ir.IRBuilder(f.append_basic_block("entry"))
    for g in (workers, sleepers, busy):
        store(b, _c(I32, 0), g)
    b.ret_void()
    return str(m)


def _pool_code(device: int):
    """(compile-cache key, LLVM IR text) of cpu(device)'s pool module."""
    from . import cache     # (cache imports this module)
    tm = cache.target_machine()
    text = _build_module(tm.triple, str(tm.target_data), "" if device == 0 else f"_d{device}")
    return cache.make_key("graphc worker pool\n" + text), text


def pool_cache_key(device: int = 0) -> str:
    """The compile-cache key under which cpu(device)'s pool module is stored (beside the
    programs' entries in GRAPHC_CACHE_DIR)."""
    return _pool_code(device)[0]


def ensure_pool(device: int = 0) -> int:
    """Build cpu(device)'s pool once per process and register its entry (pool_symbol(device))
    with LLVM's symbol table; returns the entry's address."""
    st = _pools.get(device)
    if st is not None and "run" in st:
        return st["run"]
    with _lock:
        st = _pools.setdefault(device, {})
        if "run" in st:
            return st["run"]
        suffix = "" if device == 0 else f"_d{device}"
        names = {k: k + suffix for k in (POOL_RUN, "graphc_pool_workers", "graphc_pool_set_spin",
                                          "graphc_pool_after_fork", "graphc_pool_set_limit", "graphc_pool_set_mask")}
        # the pool's object code comes from the compile cache like a program's: building it costs
        # every process about 45 ms of LLVM, loading the cached object about 3 ms (W6's warm start)
        from . import cache     # (cache imports this module)
        key, text = _pool_code(device)
        addrs, _, engine = cache.load_code(key, lambda: [text], list(names.values()), resident=True)
        addr = {k: addrs[v] for k, v in names.items()}
        # the workers run this code until the process ends: never free it, even at interpreter exit
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(engine))
        st["engine"] = engine
        st["workers"] = ctypes.CFUNCTYPE(ctypes.c_int32)(addr["graphc_pool_workers"])
        st["set_spin"] = ctypes.CFUNCTYPE(None, ctypes.c_int32)(addr["graphc_pool_set_spin"])
        st["after_fork"] = ctypes.CFUNCTYPE(None)(addr["graphc_pool_after_fork"])
        st["set_limit"] = ctypes.CFUNCTYPE(None, ctypes.c_int32)(addr["graphc_pool_set_limit"])
        st["set_mask"] = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addr["graphc_pool_set_mask"])
        st["call"] = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                      ctypes.c_int64)(addr[POOL_RUN])
        spin = os.environ.get("GRAPHC_POOL_SPIN")
        if spin and spin.isdigit():
            st["set_spin"](int(spin))
        os.register_at_fork(after_in_child=st["after_fork"])
        _configure(device, st, cpu_devices.current())
        llvm.add_symbol(names[POOL_RUN], addr[POOL_RUN])
        st["run"] = addr[POOL_RUN]
        global _hooked
        if not _hooked:
            cpu_devices.on_change(_on_layout_change)
            _hooked = True
    return st["run"]


_hooked = False          # _on_layout_change registered with cpu_devices


def _configure(device: int, st: dict, layout) -> None:
    """Give a pool its device's cores and thread cap. With one device: no cap, and a pool that
    was pinned (the layout was reset) is unpinned to every core."""
    if not layout.pinned or device >= layout.count:
        st["set_limit"](MAX_THREADS)
        if st.pop("cores", None) is not None:
            st["set_mask"](ctypes.addressof(_mask_words(sorted({c for g in layout.devices for c in g}))))
        return
    st["set_limit"](max(1, min(MAX_THREADS, cpu_devices.threads(device))))
    if layout.pin:
        st["set_mask"](ctypes.addressof(_mask_words(layout.cores(device))))
        st["cores"] = layout.cores(device)


def _mask_words(cores):
    """A cpu_set_t for `cores`."""
    words = (ctypes.c_uint64 * MASK_WORDS)()
    for core in cores:
        if core < 64 * MASK_WORDS:
            words[core // 64] |= 1 << (core % 64)
    return words


def refresh_limit(device: int) -> None:
    """Re-read cpu(device)'s thread count (GRAPHC_NUM_THREADS may have changed since the pool
    was configured); build_program calls it, so the cap never cuts a program built just now."""
    st = _pools.get(device)
    layout = cpu_devices.current()
    if st is not None and "run" in st and layout.pinned and device < layout.count:
        st["set_limit"](max(1, min(MAX_THREADS, cpu_devices.threads(device))))


def _on_layout_change(layout) -> None:
    with _lock:
        for device, st in _pools.items():
            if "run" in st:
                _configure(device, st, layout)


def pool_cores(device: int = 0):
    """The cores cpu(device)'s workers are pinned to (None: not pinned, one device)."""
    ensure_pool(device)
    return _pools[device].get("cores")


def gemm_split_work():
    """Flops from which graphc splits a GEMM across its pool itself (None: never, BLAS threads)."""
    v = os.environ.get("GRAPHC_GEMM_SPLIT_WORK")
    if v is not None:
        return int(v) if v.isdigit() else None
    return GEMM_SPLIT_WORK


def blas_threads():
    """Threads OpenBLAS (graphc's copy) may use; 0 leaves OpenBLAS's own default."""
    v = os.environ.get("GRAPHC_BLAS_THREADS")
    return int(v) if v and v.isdigit() else BLAS_THREADS


def pool_workers(device: int = 0) -> int:
    """Worker threads cpu(device)'s pool has started in this process (the caller is not counted)."""
    ensure_pool(device)
    return _pools[device]["workers"]()


def set_spin(iterations: int, device: int = 0) -> None:
    ensure_pool(device)
    _pools[device]["set_spin"](int(iterations))


__all__ = ["ensure_pool", "pool_cache_key", "pool_symbol", "pool_workers", "pool_cores", "set_spin", "POOL_RUN", "POOL_RUN_FN",
           "MAX_THREADS"]
