"""Waiting on an MPI request without holding the GIL: a small native loop of MPI_Test and
nanosleep, compiled once per process with the runtime's LLVM.

Why: a Python thread that polls MPI_Test needs the GIL for every poll, and while the main thread
runs Python (the autograd tape, a Trainer's hooks) it gets the GIL only every switch interval
(5 ms): a 1 MB all-reduce started beside 10 ms of Python finished 0 times in 20 with such a
poller. MPI_Wait holds no GIL, but MPICH's blocking wait spins a core, which slows the very
computation it runs beside where no core is spare. This loop sleeps between tests and runs
entirely in native code (a ctypes call releases the GIL), so the transfer moves on whatever the
main thread does.

The loop tests the request through the handle stored inside the mpi4py Request object
(MPI._addressof), so a completed request reads as MPI_REQUEST_NULL to mpi4py afterwards, as if
Python had tested it. It stops early when a caller-owned flag becomes non-zero, so another
thread can take the request over (MPI forbids two threads to complete one request).

Never imports a kvstore: graphc.dist is the layer they stand on.
"""
from __future__ import annotations

import ctypes
import threading

__all__ = ["test_until", "available"]

_lock = threading.Lock()
_state: dict = {}
_STATUS_BYTES = 256         # bigger than any MPI library's MPI_Status (MPICH 20, Open MPI 24)


def _build():
    """The compiled loop as a ctypes function, or None when it cannot be built here."""
    import llvmlite.binding as llvm
    import llvmlite.ir as ir

    from ..runtime import llvm_jit
    from .comm import _libmpi_path
    path = _libmpi_path()
    if path is None:
        return None
    mpi_test = ctypes.cast(ctypes.CDLL(path).MPI_Test, ctypes.c_void_p).value
    nanosleep = ctypes.cast(ctypes.CDLL(None).nanosleep, ctypes.c_void_p).value
    llvm.add_symbol("graphc_dist_MPI_Test", mpi_test)
    llvm.add_symbol("graphc_dist_nanosleep", nanosleep)
    i8p, i32, i64 = ir.IntType(8).as_pointer(), ir.IntType(32), ir.IntType(64)
    m = ir.Module("graphc_native_wait")
    test = ir.Function(m, ir.FunctionType(i32, [i8p, i32.as_pointer(), i8p]), "graphc_dist_MPI_Test")
    spec = ir.LiteralStructType([i64, i64])
    sleep = ir.Function(m, ir.FunctionType(i32, [spec.as_pointer(), spec.as_pointer()]), "graphc_dist_nanosleep")
    # i32 graphc_mpi_test_until(i8* request, i32* stop, i64 sleep_ns, i64 max_tests):
    # 1 once the request completed, 0 when `*stop` was set or max_tests passed first
    fn = ir.Function(m, ir.FunctionType(i32, [i8p, i32.as_pointer(), i64, i64]), "graphc_mpi_test_until")
    request, stop, sleep_ns, max_tests = fn.args
    entry, loop, nap, done, gave_up = (fn.append_basic_block(n) for n in ("entry", "loop", "nap", "done", "gave_up"))
    b = ir.IRBuilder(entry)
    flag = b.alloca(i32)
    status = b.alloca(ir.ArrayType(ir.IntType(8), _STATUS_BYTES))
    ts = b.alloca(spec)
    b.store(ir.Constant(i64, 0), b.gep(ts, [ir.Constant(i32, 0), ir.Constant(i32, 0)]))
    b.store(sleep_ns, b.gep(ts, [ir.Constant(i32, 0), ir.Constant(i32, 1)]))
    count = b.alloca(i64)
    b.store(ir.Constant(i64, 0), count)
    b.branch(loop)
    b.position_at_end(loop)
    b.store(ir.Constant(i32, 0), flag)
    b.call(test, [request, flag, b.bitcast(status, i8p)])
    finished = b.icmp_signed("!=", b.load(flag), ir.Constant(i32, 0))
    b.cbranch(finished, done, nap)
    b.position_at_end(nap)
    stopped = b.load_atomic(stop, "monotonic", 4)      # written by another thread: never hoisted
    n = b.add(b.load(count), ir.Constant(i64, 1))
    b.store(n, count)
    give_up = b.or_(b.icmp_signed("!=", stopped, ir.Constant(i32, 0)), b.icmp_signed(">=", n, max_tests))
    with b.if_then(give_up):
        b.branch(gave_up)
    b.call(sleep, [ts, ir.Constant(spec.as_pointer(), None)])
    b.branch(loop)
    b.position_at_end(done)
    b.ret(ir.Constant(i32, 1))
    b.position_at_end(gave_up)
    b.ret(ir.Constant(i32, 0))
    tm = llvm_jit.create_target_machine(opt=2)
    mod = llvm.parse_assembly(str(m))
    mod.verify()
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    _state["engine"] = engine       # the code lives as long as the process
    address = engine.get_function_address("graphc_mpi_test_until")
    return ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.c_int64,
                            ctypes.c_int64)(address)


def _function():
    with _lock:
        if "fn" not in _state:
            try:
                _state["fn"] = _build()
            except Exception:  # noqa: BLE001 (no LLVM, no libmpi found: callers poll from Python)
                _state["fn"] = None
        return _state["fn"]


def available() -> bool:
    return _function() is not None


def test_until(MPI, request, stop, sleep_s: float, max_tests: int) -> bool:
    """Test `request` (an mpi4py Request) every `sleep_s` until it completes (True) or until
    `stop` (a ctypes.c_int32) is non-zero or `max_tests` tests have failed (False), without the GIL."""
    fn = _function()
    return bool(fn(MPI._addressof(request), ctypes.byref(stop), int(sleep_s * 1e9), int(max_tests)))
