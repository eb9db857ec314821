"""How a GPU program issues its kernel steps: each KernelStep becomes driver calls (launches of
rendered kernels, cuBLAS GEMMs, device-to-device copies) whose buffers are named by *slot*
(which of the call's base pointers) and byte offset, so that a call resolves every pointer with
one addition and nothing is looked up by name.

Slots of a GPU program, in order: [inputs..., outputs..., constants..., arenas..., the seed]:
one arena per device label of the memory plan, all on the program's GPU (normally one; a pass
that makes values without carrying their device leaves some labelled cpu(0)); the seed is the
per-call buffer that compiled Dropout reads (runtime/dropout_kernel.py).

This module plans; it never touches the driver or device memory (runtime/cuda/program.py does).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from graphc.ops.errors import GraphcError

from ..kernel_ir import Gemm, Kernel, Loop, MemCopy
from ..render_cuda import cuda_pieces, render_cuda

# 'auto' grids: at most this many blocks per multiprocessor; a grid-stride loop covers the rest,
# and more resident blocks than this only add scheduling overhead
BLOCKS_PER_SM = 32


class Unrenderable(GraphcError):
    """A kernel render_cuda has no CUDA for (a statement it cannot spell): the GPU program runs
    the node it computes on the host instead (runtime/cuda/host_fallback.py)."""

    def __init__(self, message, kernel: str, cause: str):
        super().__init__(message)
        self.kernel, self.cause = kernel, cause


@dataclass(frozen=True)
class Launch:
    """A rendered kernel: `name` in the program's module; args: (slot, byte offset) per
    parameter, in the kernel's buffer order."""
    name: str
    grid: tuple
    block: tuple
    args: tuple


@dataclass(frozen=True)
class GemmCall:
    """driver.gemm(g, a, b, c): a, b, c as (slot, byte offset) of the Gemm's buffers."""
    gemm: Gemm
    a: tuple
    b: tuple
    c: tuple


@dataclass(frozen=True)
class CopyCall:
    dst: tuple
    src: tuple
    nbytes: int


class Slots:
    """Maps a memory-plan Placement to (slot, byte offset) for one program's layout. `arenas`:
    the plan's arena labels, each its own slot (all of them live on the program's GPU)."""

    def __init__(self, n_in: int, n_out: int, n_const: int, arenas):
        self.n_in, self.n_out, self.n_const = n_in, n_out, n_const
        first = n_in + n_out + n_const
        self.arenas = {label: first + j for j, label in enumerate(arenas)}
        self.seed = first + len(self.arenas)

    def of(self, p) -> tuple:
        if p.kind == "seed":
            return self.seed, 0
        if p.kind == "input":
            return p.index, p.offset
        if p.kind == "output":
            return self.n_in + p.index, p.offset
        if p.kind == "const":
            return self.n_in + self.n_out + p.index, p.offset
        if p.kind == "arena" and p.device in self.arenas:
            return self.arenas[p.device], p.offset
        raise GraphcError(f"GPU program: no slot for a value placed as {p.kind!r} on {p.device} "
                          f"(arenas: {sorted(self.arenas)})")


def flat_iterations(kernel: Kernel) -> int:
    """The iteration count a grid-stride rendering walks: the product of the outer loop chain
    (all loops of a perfect nest, the kept loops of a reduction), the bytes of a lone copy."""
    body = kernel.body
    if len(body) == 1 and isinstance(body[0], MemCopy):
        return body[0].nbytes
    total = 1
    while len(body) == 1 and isinstance(body[0], Loop):
        total *= body[0].extent
        body = body[0].body
    return total


def _dim3(v) -> tuple:
    if isinstance(v, int):
        return (v, 1, 1)
    v = tuple(int(x) for x in v)
    return v + (1,) * (3 - len(v))


def launch_shape(kernel: Kernel, launch: dict, multiprocessors: int) -> tuple:
    """(grid, block) 3-tuples for one rendered kernel. 'auto' grids run a grid-stride loop, so
    any grid is correct: min(blocks to cover every iteration once, BLOCKS_PER_SM per SM)."""
    block = _dim3(launch["block"])
    grid = launch["grid"]
    if grid == "auto":
        total = launch.get("total")
        if total is None:
            total = flat_iterations(kernel)
        threads = math.prod(block)
        blocks = min(-(-total // threads), BLOCKS_PER_SM * max(1, multiprocessors))
        return (max(1, blocks), 1, 1), block
    return _dim3(grid), block


def excerpt(kernel: Kernel, lines: int = 12) -> str:
    """The kernel's IR text for an error message, cut after `lines` lines."""
    text = str(kernel).splitlines()
    more = f"\n  ... ({len(text) - lines} more lines)" if len(text) > lines else ""
    return "\n".join(text[:lines]) + more


def plan_step(step, slots: Slots, rendered: dict, multiprocessors: int) -> list:
    """Driver calls for one KernelStep. `rendered` (kernel name -> (Kernel, source, launch))
    collects each distinct kernel once: names are content hashes, so equal names are equal
    kernels (an unrolled RNN repeats the same few)."""
    where = {name: slots.of(p) for name, p in step.bindings.items()}

    def at(buf):
        try:
            return where[buf]
        except KeyError:
            raise GraphcError(f"kernel {step.kernel.name}: buffer {buf!r} has no placement "
                              f"(bound: {sorted(where)})") from None
    calls = []
    try:
        pieces = cuda_pieces(step.kernel)
    except NotImplementedError as exc:
        raise Unrenderable(f"GPU program: kernel {step.kernel.name} cannot run on a GPU: {exc}", step.kernel.name,
                           str(exc)) from None
    for kind, what in pieces:
        if kind == "gemm":
            calls.append(GemmCall(what, at(what.a), at(what.b), at(what.c)))
        elif kind == "copy":
            if what.nbytes:
                calls.append(CopyCall(at(what.dst), at(what.src), what.nbytes))
        else:
            if what.name not in rendered:
                try:
                    source, launch = render_cuda(what)
                except (NotImplementedError, TypeError) as exc:
                    raise Unrenderable(f"GPU program: kernel {what.name} cannot be rendered for CUDA: {exc}\n"
                                       f"{excerpt(what)}", what.name, str(exc)) from None
                rendered[what.name] = (what, launch)
            _, launch = rendered[what.name]
            grid, block = launch_shape(what, launch, multiprocessors)
            calls.append(Launch(what.name, grid, block, tuple(at(b.name) for b in what.bufs)))
    return calls


__all__ = ["Unrenderable", "Launch", "GemmCall", "CopyCall", "Slots", "flat_iterations", "launch_shape", "plan_step",
           "BLOCKS_PER_SM", "excerpt"]
