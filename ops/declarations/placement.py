"""_CrossDeviceCopy: the one operator the device-partitioning pass (passes/partition.py) inserts,
at every edge whose ends sit on different devices, as MXNet's PlaceDevice pass does.

It is an identity whose result lives on `device`: the multi-device runner moves the array
there (a memory copy on one machine), and its gradient is the same copy in the other direction,
so that each gradient is summed on the device where its forward value lives."""
from __future__ import annotations

from ..attrs import Attr
from ..registry import Elementwise, OpDef, register


def _copy_infer(x, device="cpu(0)", **_):
    return x.with_(device=device)


def _copy_gradient(F, ins, outs, ograds, attrs):
    # back to where the forward value came from (the input's type carries its device)
    return [F._CrossDeviceCopy(ograds[0], device=ins[0].type.device)]


register(OpDef("_CrossDeviceCopy", infer=_copy_infer, compute=lambda x, **_: x.copy(),
               attrs={"device": Attr("str", "cpu(0)")}, gradient=_copy_gradient,
               lowering=Elementwise(lambda x, **_: x),
               doc="The input copied to `device` (inserted by passes.partition at device cuts)."))
