"""The local KVStore sums the copies pushed for a key and pulls the result back."""
import numpy as np
import pytest

import graphc as mx
from graphc import nd


def test_push_sums_and_pull_broadcasts():
    kv = mx.kv.create("local")
    kv.init("w", nd.zeros((2,)))
    kv.push("w", [nd.ones((2,)), nd.ones((2,)) * 2])
    outs = [nd.zeros((2,)), nd.zeros((2,))]
    kv.pull("w", out=outs)
    for o in outs:
        np.testing.assert_array_equal(o.asnumpy(), [3, 3])


def test_unknown_and_distributed_kinds_are_refused():
    with pytest.raises(mx.GraphcError, match="unknown kvstore"):
        mx.kv.create("bogus")
    with pytest.raises(mx.GraphcError, match="MPI"):
        mx.kv.create("dist_sync")
