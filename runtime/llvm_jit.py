"""Host JIT plumbing shared by everything that turns llvmlite modules into native code.

One place decides which CPU we compile for and which optimisation pipeline runs, so the code
generator, the math library's tests and the benchmarks all see the same machine code. This
module knows nothing about graphs or kernels, and must never grow such knowledge.
"""
from __future__ import annotations

import functools

import llvmlite.binding as llvm


@functools.cache
def _initialise_native_target() -> None:
    # llvmlite >= 0.44 initialises the core itself and rejects llvm.initialize(); only the
    # native target and its assembly printer still need an explicit call.
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


def create_target_machine(opt: int = 3) -> llvm.TargetMachine:
    """A target machine for this host's CPU with every feature it has (AVX2, AVX-512...)."""
    _initialise_native_target()
    target = llvm.Target.from_default_triple()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # some hosts cannot report features; the CPU name still implies most
        features = ""
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=features,
                                        opt=opt, codemodel="jitdefault")


def optimize(module_ref: llvm.ModuleRef, tm: llvm.TargetMachine, speed_level: int = 3) -> None:
    """Run LLVM's standard -O<speed_level> pipeline (new pass manager) over `module_ref` in place.

    The module takes the target's triple and data layout first: without them the loop and SLP
    vectorisers see no vector registers and silently leave loops scalar.
    """
    module_ref.triple = tm.triple
    module_ref.data_layout = str(tm.target_data)
    pto = llvm.create_pipeline_tuning_options(speed_level=speed_level)
    pto.loop_vectorization = speed_level >= 2
    pto.slp_vectorization = speed_level >= 2
    pto.loop_unrolling = speed_level >= 2
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module_ref, pb)


# A program's IR text may hold several modules, compiled apart and linked when loaded
# (render_llvm.ModuleBuilder.texts()); this line separates them.
MODULE_BREAK = "\n; ---- graphc: next module ----\n"


def split_modules(text: str) -> list:
    """The module texts of a (possibly multi-module) IR text."""
    return text.split(MODULE_BREAK)


# estimated LLVM time of a function beyond its text, in bytes of text: the pipeline's fixed cost
# per function dominates small kernels (a 2.7 KB element-wise kernel took 13 ms at -O3, a 45 KB
# Winograd transform 70-100 ms; a GEMM module of 50 functions in 0.7 MB 0.7 s)
FUNCTION_COST_BYTES = 6000


def estimated_cost(text: str) -> int:
    """A module text's LLVM time in the units of FUNCTION_COST_BYTES, for sharing modules
    between processes (runtime/compile_pool.py, runtime/module_split.py)."""
    return len(text) + FUNCTION_COST_BYTES * text.count("\ndefine ")
