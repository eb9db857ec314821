"""LLVM loop metadata for generated loops (llvmlite builds no self-referential nodes itself)."""
from __future__ import annotations

import llvmlite.ir as ir


class LoopID(ir.values.MDValue):
    """A loop's `distinct !{!self, options...}` metadata node (llvmlite has no self-reference)."""

    def descr(self, buf):
        buf += ("distinct !{{ {0}, {1} }}".format(self.get_reference(), ", ".join(
            o.get_reference() for o in self.operands)), "\n")


def no_unroll(module):
    """A fresh loop ID asking LLVM not to unroll the loop. Kernel IR puts it on every loop that
    holds another: fully unrolling short outer loops (a convolution's taps, a Winograd tile's
    rows) gains nothing once the inner loops are vectorised, and it was 40% of ResNet-18's
    compile time (1.6 s -> 1.0 s with no unrolling at all, which cost 6% of the run time). It
    also goes on innermost loops that only move or sum values (render_llvm._copies_only), which
    memory bounds once vectorised."""
    option = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
    return LoopID(module, (option,), name=str(len(module.metadata)))


__all__ = ["LoopID", "no_unroll"]
