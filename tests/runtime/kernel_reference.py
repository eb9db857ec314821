"""Test helper: kernel-IR kernels run through the LLVM backend on numpy buffers. The reference
the CUDA renderer's kernels (run on the simulator) are compared with, buffer by buffer."""
import ctypes


def random_buffers(kernel, rng) -> dict:
    """name -> random contents for each of the kernel's buffers (integers small, as indices)."""
    out = {}
    for b in kernel.bufs:
        if b.dtype in ("float32", "float64"):
            out[b.name] = (rng.standard_normal(b.size) * 3).astype(b.dtype)
        else:
            out[b.name] = rng.integers(-20, 20, b.size).astype(b.dtype)
    return out


def run_on_cpu(kernels, arrays_of) -> list:
    """Each whole kernel through the LLVM backend on its own copies of arrays_of[kernel.name]
    (name -> array): per kernel, name -> every buffer afterwards."""
    from graphc.runtime import cache
    from graphc.runtime.render_llvm import ModuleBuilder
    tm = cache.target_machine()

    def build_ir():
        mb = ModuleBuilder("cuda_reference", 1, tm.triple, str(tm.target_data))
        for j, k in enumerate(kernels):
            mb.add_entry(f"entry{j}", [(k, [(i, 0) for i in range(len(k.bufs))])])
        return str(mb)
    addrs, _, engine = cache.load("unused", build_ir, [f"entry{j}" for j in range(len(kernels))], use_cache=False)
    results = []
    for j, k in enumerate(kernels):
        arrays = [arrays_of[k.name][b.name].copy() for b in k.bufs]
        ptrs = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addrs[f"entry{j}"])(ptrs)
        results.append(dict(zip([b.name for b in k.bufs], arrays)))
    del engine
    return results
