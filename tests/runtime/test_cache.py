"""Compiled programs are cached in memory and on disk ($GRAPHC_CACHE_DIR)."""
import os

import numpy as np

from graphc.compiler import compile_graph
from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType
from graphc.runtime import cache as rt_cache


def _graph(scale=0.5):
    gb = GraphBuilder("cached")
    F = gb.F
    x = gb.var("x", TensorType((3, 50)))
    w = gb.var("w", TensorType((7, 50)), "param")
    return gb.build([F.sigmoid(F.FullyConnected(x * scale, w, no_bias=True, num_hidden=7)) + 1.0])


def test_second_compile_in_a_fresh_program_loads_from_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    x = np.random.default_rng(0).standard_normal((3, 50)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((7, 50)).astype(np.float32)
    p1 = compile_graph(_graph())
    assert p1.source == "compiled"
    files = [f for f in os.listdir(tmp_path) if f.endswith(".o")]
    assert len(files) == 1
    rt_cache._memory.clear()          # a new process: nothing in memory
    p2 = compile_graph(_graph())
    assert p2.source == "disk"
    np.testing.assert_array_equal(p1([x, w])[0], p2([x, w])[0])
    p3 = compile_graph(_graph())
    assert p3.source == "memory"


def test_a_different_constant_is_a_different_program(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    rt_cache._memory.clear()
    compile_graph(_graph(0.5))
    p = compile_graph(_graph(0.25))
    assert p.source == "compiled"
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".o")]) == 2
