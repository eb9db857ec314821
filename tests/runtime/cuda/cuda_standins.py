"""Stand-ins for what the real CUDA drivers call, working on host memory, so the drivers' use of
each API (argument order, result tuples, contexts, pointers, error mapping) is checked without a
GPU. Each follows the documented signature of the call it replaces; kernels are Python functions
looked up by name."""
import ctypes
import types
from enum import IntEnum

from graphc.runtime.cuda import cublas

from gemm_reference import colmajor_gemm


class CuResult(IntEnum):
    CUDA_SUCCESS = 0
    CUDA_ERROR_INVALID_VALUE = 1
    CUDA_ERROR_OUT_OF_MEMORY = 2
    CUDA_ERROR_NOT_FOUND = 500
    CUDA_ERROR_NO_DEVICE = 100


class HostBinding:
    """cuda.bindings.driver's calls as documented (a CUresult first in every returned tuple),
    over host memory, one device of `capacity` bytes. Kernels are Python functions by name."""

    CUresult = CuResult
    CUdevice_attribute = types.SimpleNamespace(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT="sm",
                                               CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR="major",
                                               CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR="minor")
    CUstream_flags = types.SimpleNamespace(CU_STREAM_DEFAULT=types.SimpleNamespace(value=0))
    S = CuResult.CUDA_SUCCESS

    def __init__(self, kernels, capacity=1 << 16):
        self.kernels, self.capacity, self.used = kernels, capacity, 0
        self.blocks, self.current, self.launches, self.modules, self.released = {}, 0, [], [], []

    @staticmethod
    def CUdeviceptr(p):
        return int(p)

    @staticmethod
    def CUcontext(c):
        return int(c)

    def cuInit(self, flags):
        return (self.S,)

    def cuGetErrorName(self, err):
        return self.S, CuResult(err).name.encode()

    def cuDeviceGetCount(self):
        return self.S, 1

    def cuDeviceGet(self, i):
        return self.S, i

    def cuDeviceGetName(self, length, dev):
        return self.S, b"Host Stand-in".ljust(length, b"\0")

    def cuDeviceTotalMem(self, dev):
        return self.S, self.capacity

    def cuDeviceGetAttribute(self, attr, dev):
        return self.S, {"sm": 4, "major": 9, "minor": 0}[attr]

    def cuDevicePrimaryCtxRetain(self, dev):
        return self.S, 0xC0

    def cuCtxGetCurrent(self):
        return self.S, self.current

    def cuCtxSetCurrent(self, ctx):
        self.current = ctx
        return (self.S,)

    def cuStreamCreate(self, flags):
        return self.S, 0x5

    def cuStreamSynchronize(self, stream):
        assert self.current == 0xC0 and stream == 0x5
        return (self.S,)

    def cuMemAlloc(self, n):
        if self.used + n > self.capacity:
            return CuResult.CUDA_ERROR_OUT_OF_MEMORY, 0
        buf = ctypes.create_string_buffer(n)
        self.blocks[ctypes.addressof(buf)] = buf
        self.used += n
        return self.S, ctypes.addressof(buf)

    def cuMemFree(self, p):
        buf = self.blocks.pop(p, None)
        if buf is None:
            return (CuResult.CUDA_ERROR_INVALID_VALUE,)
        self.used -= len(buf)
        return (self.S,)

    def _copy(self, dst, src, n, stream):
        assert self.current == 0xC0 and stream == 0x5
        ctypes.memmove(dst, src, n)
        return (self.S,)

    cuMemcpyHtoDAsync = cuMemcpyDtoHAsync = cuMemcpyDtoDAsync = _copy

    def cuStreamDestroy(self, stream):
        self.released.append(f"stream {stream:#x}")
        return (self.S,)

    def cuDevicePrimaryCtxRelease(self, dev):
        assert self.current == 0, "the context is released while current"
        self.released.append(f"context {dev}")
        return (self.S,)

    def cuModuleUnload(self, module):
        self.released.append(f"module {module}")
        return (self.S,)

    def cuMemsetD8Async(self, p, value, n, stream):
        ctypes.memset(p, value, n)
        return (self.S,)

    def cuModuleLoadData(self, image):
        assert ctypes.string_at(image, 4) == b"\x7fELF"
        self.modules.append(image)
        return self.S, len(self.modules)

    def cuModuleGetFunction(self, module, name):
        if name.decode() not in self.kernels:
            return CuResult.CUDA_ERROR_NOT_FOUND, None
        return self.S, name.decode()

    def cuLaunchKernel(self, f, gx, gy, gz, bx, by, bz, shared, stream, params, extra):
        fn = self.kernels[f]
        n = fn.__code__.co_argcount
        slots = (ctypes.c_void_p * n).from_address(params)
        pointers = [ctypes.c_uint64.from_address(s).value for s in slots]
        self.launches.append((f, (gx, gy, gz), (bx, by, bz)))
        fn(*pointers)
        return (self.S,)


KERNEL_SOURCE = 'extern "C" __global__ void scale2(float* x, float* y) { y[threadIdx.x] = 2.0f * x[threadIdx.x]; }\n'


def host_scale2(x, y):
    xs = (ctypes.c_float * 4).from_address(x)
    ys = (ctypes.c_float * 4).from_address(y)
    for i in range(4):
        ys[i] = 2 * xs[i]


class HostPycuda:
    """The parts of pycuda.driver the driver uses, over host memory. Every device operation
    asserts that the primary context is current, and the test asserts that the driver leaves
    the context stack empty after each call (pycuda aborts a process whose thread ends with a
    context still pushed)."""

    class Error(Exception):
        pass

    class MemoryError(Error):
        pass

    device_attribute = types.SimpleNamespace(MULTIPROCESSOR_COUNT="sm")

    def __init__(self, kernels, capacity=1 << 16):
        fake = self
        self.stack, self.kernels, self.capacity, self.used, self.launches = [], kernels, capacity, 0, []

        class Ctx:
            def push(self):
                fake.stack.append(self)

        self.ctx = Ctx()

        class Device:
            @staticmethod
            def count():
                return 1

            def __init__(self, i):
                self.i = i

            def name(self):
                return "Host Stand-in"

            def total_memory(self):
                return fake.capacity

            def get_attribute(self, attr):
                return {"sm": 4}[attr]

            def compute_capability(self):
                return 9, 0

            def retain_primary_context(self):
                return fake.ctx

        class Context:
            @staticmethod
            def pop():
                fake.stack.pop()

        self.Device, self.Context = Device, Context

    def _current(self):
        assert self.stack and self.stack[-1] is self.ctx, "no context current"

    def init(self):
        pass

    def Stream(self):
        self._current()
        return types.SimpleNamespace(handle=0x5, synchronize=self._current)

    def mem_alloc(self, n):
        self._current()
        if self.used + n > self.capacity:
            raise self.MemoryError("cuMemAlloc failed: out of memory")
        buf = ctypes.create_string_buffer(n)
        self.used += n
        fake = self

        class Allocation:
            def __int__(self):
                return ctypes.addressof(buf)

            def free(self):
                fake._current()
                fake.used -= n

        return Allocation()

    def memcpy_htod_async(self, dst, src, stream):
        self._current()
        ctypes.memmove(dst, src.ctypes.data, src.nbytes)

    def memcpy_dtoh_async(self, dst, src, stream):
        self._current()
        ctypes.memmove(dst.ctypes.data, src, dst.nbytes)

    def memcpy_dtod_async(self, dst, src, n, stream):
        self._current()
        ctypes.memmove(dst, src, n)

    def memset_d8_async(self, p, value, n, stream):
        self._current()
        ctypes.memset(p, value, n)

    def module_from_buffer(self, cubin):
        self._current()
        assert cubin[:4] == b"\x7fELF"
        fake = self

        class Function:
            def __init__(self, name):
                self.name, self.arg_format = name, None

            def prepare(self, fmt):
                self.arg_format = fmt
                return self

            def prepared_async_call(self, grid, block, stream, *args):
                fake._current()
                assert self.arg_format == "P" * len(args) and stream.handle == 0x5
                if max(block) > 1024:
                    raise fake.Error("cuLaunchKernel failed: invalid argument")
                fake.launches.append((self.name, grid, block))
                fake.kernels[self.name](*args)

        class Module:
            def get_function(self, name):
                fake._current()
                if name not in fake.kernels:
                    raise fake.Error("cuModuleGetFunction failed: named symbol not found")
                return Function(name)

        return Module()


class HostGraphLib:
    """libcuda's stream-capture calls, recording what the driver asks."""

    def __init__(self, end_status=0):
        self.calls, self.end_status = [], end_status

    def cuStreamBeginCapture_v2(self, stream, mode):
        self.calls.append(("begin", stream, mode))
        return 0

    def cuStreamEndCapture(self, stream, graph_ref):
        self.calls.append(("end", stream))
        graph_ref._obj.value = 0x6A if self.end_status == 0 else None
        return self.end_status

    def cuGraphInstantiateWithFlags(self, exec_ref, graph, flags):
        exec_ref._obj.value = 0xE0
        self.calls.append(("instantiate", graph.value))
        return 0

    def cuGraphLaunch(self, exec_, stream):
        self.calls.append(("launch", exec_.value, stream))
        return 0

    def cuGraphExecDestroy(self, exec_):
        self.calls.append(("destroy exec", exec_.value))
        return 0

    def cuGraphDestroy(self, graph):
        self.calls.append(("destroy graph", graph.value))
        return 0

    def cuGetErrorName(self, result, name_ref):
        name_ref._obj.value = b"CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"
        return 0


class HostBlasLib:
    """libcublas's entry points as the documented C signatures receive them, computing on host
    memory: proves the pointers, offsets and argument order Blas passes."""

    def __init__(self, arrays):
        self.arrays, self.calls = arrays, []

    def _find(self, ptr):
        for arr in self.arrays:
            base = arr.ctypes.data
            if base <= ptr < base + arr.nbytes:
                assert (ptr - base) % arr.itemsize == 0
                return arr, (ptr - base) // arr.itemsize
        raise AssertionError(f"pointer {ptr:#x} is in none of the buffers")

    def cublasCreate_v2(self, handle_ref):
        handle_ref._obj.value = 0x1234
        return 0

    def cublasSetStream_v2(self, handle, stream):
        self.calls.append(("stream", stream.value))
        return 0

    def cublasSetMathMode(self, handle, mode):
        self.calls.append(("math", mode))
        return 0

    def cublasDestroy_v2(self, handle):
        return 0

    def _gemm(self, handle, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch):
        (abuf, aoff), (bbuf, boff), (cbuf, coff) = (self._find(p.value) for p in (A, B, C))
        self.calls.append(("gemm", ta, tb, m, n, k))
        colmajor_gemm(ta == cublas.OP_T, tb == cublas.OP_T, m, n, k, alpha._obj.value, abuf, aoff, lda, sA,
                      bbuf, boff, ldb, sB, beta._obj.value, cbuf, coff, ldc, sC, batch)
        return 0

    cublasSgemmStridedBatched = cublasDgemmStridedBatched = _gemm


class HostCublas(cublas._Cublas):
    def __init__(self, lib):
        self.lib, self.status_name = lib, None
