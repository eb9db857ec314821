"""The vector ISAs graphc's GEMM generates code for (runtime/gemm_plan.py's blockings), shared by
the GEMM and Winograd tests: each test runs on every ISA this host can execute, and one that it
cannot is skipped with a reason naming what is missing ("needs AVX-512F (host has: avx2, fma)").
Code for an ISA the host lacks is still compiled (not run) for a CPU that has it."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from graphc.runtime import gemm_kernel, gemm_plan
from graphc.runtime.gemm_plan import AVX2, AVX512, Geometry


@dataclass(frozen=True)
class Isa:
    name: str               # as a person says it, for skip reasons
    features: tuple         # the LLVM CPU features its code needs
    cpu: str                # an LLVM CPU name that has them (to compile for without running)
    geometry: Geometry      # the blocking gemm_plan uses on such a host
    tiny: Geometry          # the same registers with tiny cache blocks: many K slices and tiles
    register: str           # the vector register class its microkernel lives in


ISAS = {
    "avx512": Isa("AVX-512F and FMA", ("avx512f", "fma"), "skylake-avx512", AVX512,
                  Geometry(lanes=16, mr=8, nv=3, kc=8, mc=16, nc=48), "zmm"),
    "avx2": Isa("AVX2 and FMA", ("avx2", "fma"), "haswell", AVX2,
                Geometry(lanes=8, mr=6, nv=2, kc=8, mc=12, nc=32), "ymm"),
}
# the features a skip reason lists, so that a reader sees what the host does have
_REPORTED = ("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl")


def host_features() -> set:
    try:
        import llvmlite.binding as llvm
        return {name for name, on in llvm.get_host_cpu_features().items() if on}
    except Exception:       # hosts that cannot report features: assume nothing
        return set()


def missing(isa: Isa) -> str | None:
    """None when this host runs `isa`'s code, else the skip reason."""
    have = host_features()
    lacking = [f for f in isa.features if f not in have]
    if not lacking:
        return None
    shown = ", ".join(f for f in _REPORTED if f in have) or "none of " + ", ".join(_REPORTED)
    return f"needs {isa.name} (host has: {shown})"


def use_geometry(monkeypatch, geo: Geometry) -> None:
    """Make native_plan (gemm_plan's host_geometry, re-exported by gemm_kernel) plan with `geo`."""
    monkeypatch.setattr(gemm_plan, "host_geometry", lambda: geo)
    monkeypatch.setattr(gemm_kernel, "host_geometry", lambda: geo)


def geometry_params(tiny: bool = True) -> list:
    """pytest params (isa key, Geometry) for every ISA, tiny variants too, skipped where the
    host cannot run them."""
    out = []
    for key, isa in ISAS.items():
        variants = [(key, isa.geometry)] + ([(f"{key}-tiny", isa.tiny)] if tiny else [])
        reason = missing(isa)
        for name, geo in variants:
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            out.append(pytest.param(geo, id=name, marks=marks))
    return out
