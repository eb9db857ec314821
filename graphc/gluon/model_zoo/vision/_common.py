"""Pieces the model-zoo networks share: HybridConcurrent (MXNet's gluon.contrib.nn block that
concatenates its children's outputs) and loading pretrained parameters from the model store."""
from __future__ import annotations

from ...nn import HybridSequential
from ..model_store import get_model_file


class HybridConcurrent(HybridSequential):
    """Runs every child on the same input and concatenates their outputs along `axis`."""

    def __init__(self, axis=-1, prefix=None, params=None):
        super().__init__(prefix=prefix, params=params)
        self.axis = axis

    def hybrid_forward(self, F, x):
        outs = [block(x) for block in self._children.values()]
        return F.concat(*outs, dim=self.axis)


def load_pretrained(net, name, pretrained, ctx, root):
    """MXNet's `pretrained=True`: load `<root>/<name>-<hash>.params` into net (never downloads)."""
    if pretrained:
        net.load_parameters(get_model_file(name, root=root), ctx=ctx)
    return net
